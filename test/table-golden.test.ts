/**
 * The compiler's output, pinned: the SHA-256 of the table bytes for every
 * ClassBench fixture, two synthesised 30k sets, the example policies and a
 * spread of random policies (test/support/policies.ts) must equal the digests
 * in test/fixtures/table-digests.json. Speeding up the compiler must not move a
 * byte; a changed digest means a changed table format (see the README there).
 * Regenerate, only for an intended format change:
 * `NFSIEVE_WRITE_DIGESTS=1 node --test build-test/test/table-golden.test.js`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compile } from '../src/compile/compile';
import { loadPolicyFile } from '../src/policy/parse';
import { definePolicy } from '../src/policy/define';
import { Policy } from '../src/policy/model';
import { loadClassbenchRules, parseClassbenchRules } from '../src/classbench/classbench';
import { synthesizeClassbenchText } from '../src/classbench/generate';
import { Rng } from './support/packets';
import { randomPolicy } from './support/policies';
import { ROOT } from './support/compare';

const DIGESTS = path.join(ROOT, 'test', 'fixtures', 'table-digests.json');
const CLASSBENCH = path.join(ROOT, 'test', 'fixtures', 'classbench');
const RANDOM_SEED = 20261130;
const RANDOM_SMALL = 120;
const RANDOM_LARGE = 6;
const SYNTHESISED = 30_000;

/** Every pinned policy by name, built lazily (the large ones take a while to compile). */
function policies(): [string, () => Policy][] {
  const out: [string, () => Policy][] = [];
  for (const f of fs.readdirSync(CLASSBENCH).filter((n) => /_\d+k$/.test(n)).sort()) out.push([`classbench/${f}`, () => loadClassbenchRules(path.join(CLASSBENCH, f))]);
  for (const seed of ['acl1', 'fw1']) {
    out.push([`classbench/${seed}_30k (synthesised)`, () => parseClassbenchRules(synthesizeClassbenchText(fs.readFileSync(path.join(CLASSBENCH, `${seed}_10k`), 'utf8'), SYNTHESISED, 1))]);
  }
  for (const f of fs.readdirSync(path.join(ROOT, 'examples')).filter((n) => /\.(ya?ml|json)$/.test(n)).sort()) out.push([`examples/${f}`, () => loadPolicyFile(path.join(ROOT, 'examples', f))]);
  // Drawn in one sequence, so every policy depends only on RANDOM_SEED and its position.
  const rng = new Rng(RANDOM_SEED);
  for (let i = 0; i < RANDOM_SMALL; i++) {
    const p = definePolicy(randomPolicy(rng, 1 + rng.int(200)));
    out.push([`random/${i}`, () => p]);
  }
  for (let i = 0; i < RANDOM_LARGE; i++) {
    const p = definePolicy(randomPolicy(rng, 1500 + rng.int(3000)));
    out.push([`random-large/${i}`, () => p]);
  }
  return out;
}

const sha256 = (b: Uint8Array): string => crypto.createHash('sha256').update(b).digest('hex');

test('compiled tables are byte for byte the pinned ones (test/fixtures/table-digests.json)', () => {
  const got: Record<string, string> = {};
  for (const [name, make] of policies()) got[name] = sha256(compile(make(), { analyse: false }).table);
  if (process.env.NFSIEVE_WRITE_DIGESTS === '1') {
    fs.writeFileSync(DIGESTS, JSON.stringify(got, null, 2) + '\n');
    return;
  }
  const want = JSON.parse(fs.readFileSync(DIGESTS, 'utf8')) as Record<string, string>;
  assert.deepEqual(Object.keys(got), Object.keys(want), 'the pinned policies changed: regenerate the digests (see the README in test/fixtures)');
  const differ = Object.keys(want).filter((k) => got[k] !== want[k]);
  assert.deepEqual(differ, [], `tables differ from the pinned ones for ${differ.length} policies`);
});

test('the TypeScript sweep writes the pinned tables too (the ClassBench 1k fixtures and the random policies)', () => {
  const want = JSON.parse(fs.readFileSync(DIGESTS, 'utf8')) as Record<string, string>;
  for (const [name, make] of policies()) {
    if (!/^random\/|_1k$/.test(name)) continue;
    assert.equal(sha256(compile(make(), { analyse: false, sweep: 'js' }).table), want[name], name);
  }
});
