/**
 * One definition for every wire constant: native/wire/constants.json is the
 * spec; native/core/wire.h and src/wire.ts are generated from it
 * (scripts/gen-wire.js) and checked in. Regenerated here in memory: a spec
 * edited without regenerating, or a generated file edited by hand, fails.
 * The two languages then agree on a real table: the header the TypeScript
 * writer lays out through src/wire.ts is the one the addon reads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './support/compare';
import { compile } from '../src/compile/compile';
import { definePolicy } from '../src/policy/define';
import { native } from '../src/native';
import { TableHeader, TABLE_HEADER_SIZE, TableFlag, SetKind } from '../src/wire';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const gen = require(path.join(ROOT, 'scripts', 'gen-wire.js')) as { generate(spec: string): Record<string, string>; SPEC: string };

test('native/core/wire.h and src/wire.ts are what scripts/gen-wire.js makes of the spec', () => {
  const files = gen.generate(fs.readFileSync(path.join(ROOT, gen.SPEC), 'utf8'));
  assert.deepEqual(Object.keys(files).sort(), ['native/core/wire.h', 'src/wire.ts']);
  for (const [file, text] of Object.entries(files)) {
    assert.equal(fs.readFileSync(path.join(ROOT, file), 'utf8'), text, `${file} is stale: run node scripts/gen-wire.js`);
  }
});

test('the generator follows the spec (a changed value changes both outputs)', () => {
  const spec = JSON.parse(fs.readFileSync(path.join(ROOT, gen.SPEC), 'utf8')) as { groups: { name: string; values: Record<string, number> }[] };
  spec.groups.find((g) => g.name === 'SetKind')!.values.Spi = 9;
  const files = gen.generate(JSON.stringify(spec));
  assert.match(files['native/core/wire.h'], /constexpr uint8_t kSetKindSpi = 9;/);
  assert.match(files['src/wire.ts'], /Spi: 9,/);
});

test('the header offsets cover the header without gaps, in order', () => {
  const sizes: Record<string, number> = { reserved: 20, version: 2, headerSize: 2, reserved0: 2, defaultVerdict: 1, flags: 1 };
  let at = 0;
  for (const [name, off] of Object.entries(TableHeader)) {
    assert.equal(off, at, name);
    at += sizes[name] ?? 4;
  }
  assert.equal(at, TABLE_HEADER_SIZE);
});

test('a table written through src/wire.ts is read by the addon through wire.h', () => {
  const policy = definePolicy({
    sets: { peers: { type: 'address', elements: ['10.0.0.1'] }, spis: { type: 'spi', elements: [0x100] } },
    rules: [{ src: '@peers', spi: '@spis', ctstate: 'new', action: 'drop' }],
    default: 'accept',
  });
  const table = compile(policy).table;
  const v = new DataView(table.buffer, table.byteOffset, table.byteLength);
  assert.equal(v.getUint16(TableHeader.headerSize, true), TABLE_HEADER_SIZE);
  assert.equal(v.getUint32(TableHeader.totalSize, true), table.byteLength);
  assert.equal(v.getUint32(TableHeader.setCount, true), 2);
  assert.equal(v.getUint8(TableHeader.flags) & TableFlag.NeedsCtState, TableFlag.NeedsCtState);
  const kinds = [0, 1].map((i) => v.getUint8(v.getUint32(TableHeader.setsOff, true) + 16 * i)).sort();
  assert.deepEqual(kinds, [SetKind.Address, SetKind.Spi]);
  const c = new (native().Classifier)(table);
  assert.equal(c.ruleCount, 1);
});
