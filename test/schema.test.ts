import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import Ajv2020 from 'ajv/dist/2020';
import { ROOT } from './support/compare';

const schema = JSON.parse(fs.readFileSync(path.join(ROOT, 'schema', 'policy.schema.json'), 'utf8'));
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);

test('every shipped example policy validates against the JSON Schema', () => {
  const files = fs.readdirSync(path.join(ROOT, 'examples')).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 3);
  for (const f of files) {
    const doc = parse(fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8'));
    assert.ok(validate(doc), `${f}: ${JSON.stringify(validate.errors)}`);
  }
});

test('the schema refuses what the policy reader refuses: unknown keys, bad actions, missing default', () => {
  assert.equal(validate({ default: 'drop', rules: [{ dstport: 1, action: 'drop' }] }), false);
  assert.equal(validate({ default: 'drop', rules: [{ action: 'fly' }] }), false);
  assert.equal(validate({ rules: [] }), false);
  assert.equal(validate({ default: 'drop', rules: [{ proto: 'udp', dport: { not: [500, '4500'] }, action: { mark: '0x1/0xff', then: 'accept' } }] }), true);
});

test('the schema lists exactly the rule keys the reader understands', () => {
  const src = fs.readFileSync(path.join(ROOT, 'src', 'policy', 'interpret.ts'), 'utf8');
  const m = /const RULE_KEYS = new Set\(\[([\s\S]*?)\]\)/.exec(src)!;
  const keys = [...m[1].matchAll(/'([^']+)'/g)].map((x) => x[1]).sort();
  assert.deepEqual(Object.keys(schema.properties.rules.items.properties).sort(), keys);
});
