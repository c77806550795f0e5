/**
 * Inputs for the lookup driver (bench/native/lookup_driver.cc): for each named
 * ClassBench set, its compiled table and the bench's three traces (the same
 * generators and seeds as bench/classify.ts) with the linear scan's answers,
 * as files the driver reads. Not a benchmark by itself; run:
 *   npm run pretest && node build-test/bench/lookup-dump.js OUTDIR acl1_10k fw1_10k acl1_100k ...
 * A NAME_100k set is synthesised from NAME_10k as bench/classify.ts does.
 * Per set: NAME.table, NAME.TRACE.tuples (u32 src dst sport dport proto),
 * NAME.TRACE.want (i32 rule or -1).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseClassbenchRules } from '../src/classbench/classbench';
import { synthesizeClassbenchText } from '../src/classbench/generate';
import { compile } from '../src/compile/compile';
import { packTupleRules } from '../test/support/linear';
import { testkit } from '../test/support/testkit';
import { TRACES, makeTrace } from './classify';

const corpus = path.join(__dirname, '..', '..', '..', 'shared', 'corpus', 'classbench');

function setText(name: string): string {
  const m = /^(\w+?)_100k$/.exec(name);
  if (!m) return fs.readFileSync(path.join(corpus, name), 'utf8');
  return synthesizeClassbenchText(fs.readFileSync(path.join(corpus, `${m[1]}_10k`), 'utf8'), 100_000, 1);
}

function dump(out: string, name: string): void {
  const policy = parseClassbenchRules(setText(name), name);
  const compiled = compile(policy, { analyse: false });
  fs.writeFileSync(path.join(out, `${name}.table`), compiled.table);
  const packed = packTupleRules(policy);
  for (const t of TRACES) {
    const tuples = makeTrace(policy, t.key);
    const want = new Int32Array(tuples.length / 5);
    testkit().linearClassifyTuples(packed, tuples, want);
    fs.writeFileSync(path.join(out, `${name}.${t.key}.tuples`), Buffer.from(tuples.buffer, tuples.byteOffset, tuples.byteLength));
    fs.writeFileSync(path.join(out, `${name}.${t.key}.want`), Buffer.from(want.buffer, want.byteOffset, want.byteLength));
  }
  process.stdout.write(`${name}: ${policy.rules.length} rules, table ${compiled.table.length} bytes\n`);
}

const [out, ...names] = process.argv.slice(2);
if (!out || names.length === 0) {
  process.stderr.write('usage: lookup-dump OUTDIR SET...\n');
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });
for (const name of names) dump(out, name);
