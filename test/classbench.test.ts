import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadClassbenchRules, parseClassbenchRules } from '../src/classbench/classbench';
import { generateTrace, synthesizeRules, synthesizeClassbenchText } from '../src/classbench/generate';
import { packTupleRules, randomTuples } from './support/linear';
import { testkit } from './support/testkit';
import { compile } from '../src/compile/compile';
import { IndexOptions, native } from '../src/native';
import { CLASSBENCH } from './support/compare';
import { Classifier } from '../src/classifier';
import { Rng } from '../src/craft';
import { widestTreeSimd } from './support/cpu';

const SETS = ['acl1_1k', 'fw1_1k', 'ipc1_1k', 'acl2_1k', 'fw3_1k', 'ipc2_1k', 'acl1_10k', 'fw1_10k', 'ipc1_10k'];

function agree(name: string, policy: ReturnType<typeof loadClassbenchRules>, count: number, seed: number, index?: IndexOptions): number {
  const trace = generateTrace(policy, count, seed);
  const table = new (native().Classifier)(compile(policy, { analyse: false }).table, index);
  const got = new Int32Array(trace.count);
  table.classifyTuples(trace.tuples, got);
  const want = new Int32Array(trace.count);
  testkit().linearClassifyTuples(packTupleRules(policy), trace.tuples, want);
  for (let i = 0; i < trace.count; i++) {
    if (got[i] !== want[i]) assert.fail(`${name} seed ${seed} index ${JSON.stringify(index)}: header ${i} (${[...trace.tuples.subarray(5 * i, 5 * i + 5)].join(' ')}): table ${got[i]}, linear scan ${want[i]}`);
    // The generator's rule contains the header, so some rule at or before it matches.
    assert.ok(want[i] >= 0 && want[i] <= trace.expected[i]);
  }
  return trace.count;
}

test('the decision table equals the linear first-match scan on ClassBench traces (acl, fw, ipc; 1k and 10k)', () => {
  for (const name of SETS) {
    const policy = loadClassbenchRules(path.join(CLASSBENCH, name));
    assert.ok(policy.rules.length > 500, name);
    agree(name, policy, name.endsWith('10k') ? 20_000 : 10_000, 11);
    // Without pre-combined fields, and with it stopped early: the same rules.
    agree(name, policy, 5_000, 12, { combine: false });
    agree(name, policy, 5_000, 13, { work: 20_000 });
    // The final stage's pairs read densely (AVX2) at 1k and through their summaries without SIMD: the same rules.
    agree(name, policy, 5_000, 14, { simd: false });
  }
});

// Every ClassBench set of the fixtures through the cut trees (cuts: 'always'
// builds them whatever the rule set): as chosen, equal cuts and one split
// tree forced, AVX2 and scalar, equal cuts with a tree for every group
// (groupIndex: false) or without the address-block maps (addressFilters:
// false), trees cut short by a tiny budget, and no index at all.
test('cut trees and split trees equal the linear first-match scan on every ClassBench set (AVX2, scalar, cut short, off)', () => {
  const configs: IndexOptions[] = [
    { cuts: 'always' }, { cuts: 'always', simd: false }, { cuts: 'always', cutsMemory: 512 },
    { cuts: 'always', trees: 'cuts' }, { cuts: 'always', trees: 'cuts', simd: false }, { cuts: 'always', trees: 'cuts', groupIndex: false },
    { cuts: 'always', trees: 'cuts', addressFilters: false },
    { cuts: 'always', trees: 'splits' }, { cuts: 'always', trees: 'splits', simd: false }, { cuts: 'always', trees: 'splits', simd: 'avx2' },
    { cuts: 'always', trees: 'splits', cutsMemory: 2048 },
    { combine: false, cuts: false as const },
  ];
  const names = fs.readdirSync(CLASSBENCH).filter((n) => /^[a-z]+\d_\d+k$/.test(n)).sort();
  assert.ok(names.length >= 6, `ClassBench sets in ${CLASSBENCH}: ${names.join(', ')}`);
  for (const name of names) {
    const policy = loadClassbenchRules(path.join(CLASSBENCH, name));
    configs.forEach((index, i) => agree(name, policy, 2_000, 30 + i, index));
  }
});

// The split walk takes AVX-512 where the CPU has F and BW, AVX2 where it has
// only that; NFSIEVE_SIMD (read at each load) and index.simd cap it. Each
// path gets the same inputs, and lookupInfo() says which one a load took.
test('NFSIEVE_SIMD=scalar and =avx2 give the scalar and AVX2 paths the same inputs as the widest', () => {
  const policy = loadClassbenchRules(path.join(CLASSBENCH, 'fw1_10k'));
  // acl1_10k takes one split tree (fw1_10k's blows its budget when forced).
  const acl1 = compile(loadClassbenchRules(path.join(CLASSBENCH, 'acl1_10k')), { analyse: false });
  const walk = (index: IndexOptions): string => new Classifier(acl1, { index: { cuts: 'always', ...index } }).lookupInfo()[0].treeSimd;
  const widest = widestTreeSimd();
  const saved = process.env.NFSIEVE_SIMD;
  try {
    for (const env of ['scalar', 'avx2']) {
      process.env.NFSIEVE_SIMD = env;
      assert.equal(walk({}), env === 'avx2' && widest === 'scalar' ? 'scalar' : env, `NFSIEVE_SIMD=${env}`);
      agree(`fw1_10k ${env}`, policy, 5_000, 41, { cuts: 'always' });
      agree(`fw1_10k ${env} split tree`, policy, 5_000, 41, { cuts: 'always', trees: 'splits' });
    }
  } finally {
    if (saved === undefined) delete process.env.NFSIEVE_SIMD;
    else process.env.NFSIEVE_SIMD = saved;
  }
  assert.equal(walk({}), widest, 'by default the widest the CPU has');
  assert.equal(walk({ simd: 'avx2' }), widest === 'scalar' ? 'scalar' : 'avx2', "simd: 'avx2'");
  assert.equal(walk({ simd: false }), 'scalar', 'simd: false');
  assert.throws(() => new Classifier(acl1, { index: { simd: 'avx512' as 'avx2' } }), { name: 'TypeError', message: "index.simd must be a boolean or 'avx2'" });
  agree(`fw1_10k ${widest}`, policy, 5_000, 41, { cuts: 'always' });
  agree(`fw1_10k ${widest} split tree`, policy, 5_000, 41, { cuts: 'always', trees: 'splits' });
});

test('synthesised larger rule sets keep the equality (30k rules from fw1)', () => {
  const big = synthesizeRules(loadClassbenchRules(path.join(CLASSBENCH, 'fw1_1k')), 30_000, 3);
  assert.equal(big.rules.length, 30_000);
  agree('fw1 x30k', big, 5_000, 5);
  agree('fw1 x30k cut trees', big, 5_000, 6, { cuts: 'always' });
  agree('fw1 x30k split tree', big, 5_000, 7, { cuts: 'always', trees: 'splits' });
});

test('synthesised ClassBench files draw every field from the seed and read back as rules', () => {
  const seedText = fs.readFileSync(path.join(CLASSBENCH, 'ipc1_1k'), 'utf8');
  const text = synthesizeClassbenchText(seedText, 3_000, 9);
  assert.equal(synthesizeClassbenchText(seedText, 3_000, 9), text, 'deterministic for a seed');
  const lines = text.trim().split('\n');
  assert.equal(lines.length, 3_000);
  const seedLines = seedText.split('\n').filter((l) => l.startsWith('@')).map((l) => l.trim().split(/\s+/));
  const column = (rows: string[][], i: number): Set<string> => new Set(rows.map((f) => f[i]));
  const got = lines.map((l) => l.trim().split(/\s+/));
  for (const [i, what] of [[0, 'source'], [1, 'destination'], [8, 'protocol']] as const) {
    const allowed = column(seedLines, i);
    for (const f of got) assert.ok(allowed.has(f[i]), `${what} ${f[i]} is not in the seed`);
    assert.ok(column(got, i).size > 1, `${what} varies`);
  }
  const policy = parseClassbenchRules(text);
  assert.equal(policy.rules.length, 3_000);
  agree('ipc1 synthesised text x3k', policy, 3_000, 21);
});

test('ClassBench files are read exactly, and bad lines are named', () => {
  const p = parseClassbenchRules('@10.0.0.0/8\t192.168.1.1/32\t0 : 65535\t500 : 500\t0x11/0xFF\t0x0000/0x0000\t\n@0.0.0.0/0\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00\t0x0000/0x0000\n', 'r');
  assert.equal(p.rules.length, 2);
  assert.deepEqual(p.rules[0].conditions.dport, { negate: false, values: [{ lo: 500, hi: 500 }] });
  assert.deepEqual(p.rules[0].conditions.proto?.values, [17]);
  assert.equal(p.rules[0].conditions.sport, undefined);
  assert.deepEqual(Object.keys(p.rules[1].conditions), ['family']);
  assert.throws(() => parseClassbenchRules('@10.0.0.0/8 1.1.1.1/32 0 : 65535\n', 'r'), { message: 'r:1:1: not a ClassBench rule (@SRC/LEN DST/LEN LO : HI LO : HI 0xPROTO/0xMASK 0xFLAGS/0xMASK)' });
  assert.throws(() => parseClassbenchRules('@10.0.0.0/8\t1.1.1.1/32\t9 : 1\t0 : 1\t0x06/0xFF\t0x0000/0x0000\n', 'r'), { message: 'r:1:1: bad sport range 9 : 1' });
});

// When both kinds of tree run out of work (cutsWork), equal cuts cut short
// are weighed against the vector index by the miss model (docs/algorithm.md):
// fw1_10k without pre-combined fields (five operands ANDed) keeps the trees,
// with them (or with a budget too small to separate anything) the vector
// index. Either way the answers are the linear scan's, AVX2 and scalar.
// Its group wide in both addresses takes most of the work as a tree, so
// these run with a tree for every group (groupIndex: false); with the
// group's vector index, 300,000 visits finish the trees, and 80,000 leave
// them short even with the weighing's twice as many, priced below the
// combined vector index.
test('trees out of work are kept or dropped by the miss model, and answer as the linear scan', () => {
  const policy = loadClassbenchRules(path.join(CLASSBENCH, 'fw1_10k'));
  const compiled = compile(policy, { analyse: false });
  const classifier = (index: IndexOptions): Classifier => new Classifier(compiled, { index: { groupIndex: false, ...index } });
  const bytes = (index: IndexOptions): number => classifier(index).indexBytes;
  const vectorOnly = bytes({ cuts: false, combine: false });
  assert.ok(bytes({ cutsWork: 300_000, combine: false }) > vectorOnly, 'cut-short trees kept beside the uncombined vector index');
  assert.equal(bytes({ cutsWork: 300_000, combine: false }), bytes({ cutsWork: 300_000, combine: false }), 'deterministic');
  assert.equal(bytes({ cutsWork: 1_000, combine: false }), vectorOnly, 'trees of one long leaf per group: the vector index');
  assert.equal(bytes({ cutsWork: 300_000 }), bytes({ cuts: false }), 'pre-combined fields: the vector index');
  // Forced kinds and an explicit cutsMemory keep their meaning: no weighing.
  assert.ok(bytes({ cutsWork: 1_000, combine: false, cutsMemory: 1 << 30 }) > vectorOnly, 'cutsMemory keeps trees cut short');
  assert.equal(bytes({ cutsWork: 1_000, combine: false, trees: 'cuts' }), vectorOnly, 'a forced kind out of work is dropped');
  const info = (index: IndexOptions): object => classifier({ groupIndex: true, ...index }).lookupInfo()[0];
  // No split tree to walk: the leaf scans' AVX2 is the widest SIMD used.
  const treeSimd = widestTreeSimd() === 'scalar' ? 'scalar' : 'avx2';
  assert.deepEqual(info({ cutsWork: 300_000 }), { family: 4, structure: 'cuts', cutShort: false, covered: 23, groupIndexes: 1, splitGroups: 0, wideSplits: 0, addressFilters: 3, treeSimd, tupleKeys: true });
  assert.deepEqual(info({ cutsWork: 80_000 }), { family: 4, structure: 'cuts', cutShort: true, covered: 23, groupIndexes: 1, splitGroups: 0, wideSplits: 0, addressFilters: 3, treeSimd, tupleKeys: true });
  for (const [i, index] of ([
    { cutsWork: 300_000, combine: false }, { cutsWork: 300_000, combine: false, simd: false },
    { cutsWork: 1_000, combine: false }, { cutsWork: 300_000 }, { cuts: 'always', cutsWork: 3_000, combine: false, simd: false },
    { cutsWork: 80_000, groupIndex: true }, { cutsWork: 80_000, groupIndex: true, simd: false },
  ] as IndexOptions[]).entries()) agree(`fw1_10k ${JSON.stringify(index)}`, policy, 5_000, 50 + i, { groupIndex: false, ...index });
  assert.throws(() => new Classifier(compiled, { index: { cutsWork: -1 } }), RangeError);
});

test('index.trees reaches the native side and is validated', () => {
  const policy = loadClassbenchRules(path.join(CLASSBENCH, 'acl1_10k'));
  const compiled = compile(policy, { analyse: false });
  const bytes = (trees: 'auto' | 'cuts' | 'splits'): number => new Classifier(compiled, { index: { cuts: 'always', trees } }).indexBytes;
  // acl1_10k: nearly every rule is small in both addresses, so the choice is the split tree.
  assert.equal(bytes('auto'), bytes('splits'));
  assert.notEqual(bytes('cuts'), bytes('splits'));
  assert.throws(() => new Classifier(compiled, { index: { trees: 'hicuts' as 'cuts' } }), TypeError);
});

// Between 8,192 and 16,384 rules that can be first, a split tree over a
// quarter of them decides (cuts.cc, small_split_tree): acl3_10k's rules
// separate with few copies (2.3 lines per sampled rule, the bound 2.75), so
// one split tree serves it; ipc1_10k's (3.1) and fw1_10k's (13) do not, so
// equal cuts do.
// Equal cuts serve the group of rules wide in both addresses with the vector
// index over them when its last stage names the rule (cuts.h): a few
// hundred rules in fw1-5, acl2 and ipc1 at 10k. Without it (groupIndex:
// false) that group gets a tree; the answers are the same.
test('equal cuts serve the group wide in both addresses by a vector index, or by a tree when told, answering as the linear scan', () => {
  for (const name of ['fw1_10k', 'ipc1_10k', 'fw1_1k']) {
    const policy = loadClassbenchRules(path.join(CLASSBENCH, name));
    const compiled = compile(policy, { analyse: false });
    const index: IndexOptions = { cuts: 'always', trees: 'cuts' };
    const on = new Classifier(compiled, { index }), off = new Classifier(compiled, { index: { ...index, groupIndex: false } });
    assert.equal(on.lookupInfo()[0].structure, 'cuts');
    assert.equal(on.lookupInfo()[0].groupIndexes, 1, `${name}: ${JSON.stringify(on.lookupInfo())}`);
    assert.equal(off.lookupInfo()[0].groupIndexes, 0, name);
    assert.equal(on.lookupInfo()[1].groupIndexes, 0, `${name}: no IPv6 rules`);
    assert.notEqual(on.indexBytes, off.indexBytes, `${name}: the group's index replaces its tree`);
    agree(`${name} group index`, policy, 10_000, 71, index);
    agree(`${name} no group index`, policy, 10_000, 71, { ...index, groupIndex: false });
    agree(`${name} group index, scalar`, policy, 5_000, 72, { ...index, simd: false });
  }
  // One split tree has no groups.
  const acl = compile(loadClassbenchRules(path.join(CLASSBENCH, 'acl1_10k')), { analyse: false });
  assert.equal(new Classifier(acl).lookupInfo()[0].groupIndexes, 0);
  assert.throws(() => new Classifier(acl, { index: { groupIndex: 1 as unknown as boolean } }), { name: 'TypeError', message: 'index.groupIndex must be a boolean' });
});

// Equal cuts build each group's tree, then a split tree over the same rules,
// and keep the one the hit model prices lower (cuts.cc, group_tree()):
// ipc1_10k's three address groups take split trees (its equal-cut leaves are
// long), fw1_10k's none. trees: 'cuts' keeps every group on equal cuts.
test('a group gets a split tree where the hit model prices it below equal cuts, deterministically, answering as the linear scan', () => {
  const groups: Record<string, number> = { ipc1_10k: 3, fw1_10k: 0 };
  for (const [name, want] of Object.entries(groups)) {
    const policy = loadClassbenchRules(path.join(CLASSBENCH, name));
    const compiled = compile(policy, { analyse: false });
    const info = (index: IndexOptions) => new Classifier(compiled, { index }).lookupInfo()[0];
    const chosen = info({});
    assert.equal(chosen.structure, 'cuts', name);
    assert.equal(chosen.splitGroups, want, `${name}: ${JSON.stringify(chosen)}`);
    assert.deepEqual(info({}), chosen, `${name}: the same choice on a second load`);
    assert.equal(info({ trees: 'cuts' }).splitGroups, 0, `${name}: equal cuts forced`);
    assert.equal(info({ cutsMemory: 512 }).splitGroups, 0, `${name}: trees cut short by a budget try no split tree`);
    assert.equal(info({ simd: false }).splitGroups, want, `${name}: the choice does not depend on the scan`);
    agree(`${name} split groups`, policy, 10_000, 81);
    agree(`${name} split groups, scalar`, policy, 10_000, 82, { simd: false });
    agree(`${name} split groups, AVX2`, policy, 10_000, 82, { simd: 'avx2' });
    agree(`${name} split groups, no group index`, policy, 5_000, 83, { groupIndex: false });
    agree(`${name} split groups, no address maps`, policy, 5_000, 84, { addressFilters: false });
  }
});

test('a sampled split tree chooses the structure of a 10k set, deterministically, answering as the linear scan', () => {
  const structures: Record<string, string> = { acl3_10k: 'splits', fw1_10k: 'cuts', ipc1_10k: 'cuts' };
  for (const [name, want] of Object.entries(structures)) {
    const policy = loadClassbenchRules(path.join(CLASSBENCH, name));
    const compiled = compile(policy, { analyse: false });
    const first = new Classifier(compiled).lookupInfo()[0];
    assert.equal(first.structure, want, `${name}: ${JSON.stringify(first)}`);
    assert.deepEqual(new Classifier(compiled).lookupInfo()[0], first, `${name}: the same choice on a second load`);
    agree(`${name} as chosen`, policy, 10_000, 61);
  }
});

// A split tree's leaf-sized node that a large share of headers uniform over
// the key space would reach (the miss model's headers: scans, floods from
// random sources) is split further where they then compare fewer boxes
// (splits.cc, "Wide leaves"). Random headers are the ones that reach those
// nodes; the linear scan judges them on the tree as built, scalar, cut short
// by a budget and without the index.
test('split trees split the leaves random headers reach most, deterministically, answering random headers as the linear scan', () => {
  const rng = new Rng(20261202);
  for (const name of ['acl1_10k', 'acl3_10k']) {
    const policy = loadClassbenchRules(path.join(CLASSBENCH, name));
    const compiled = compile(policy, { analyse: false });
    const info = (index: IndexOptions) => new Classifier(compiled, { index }).lookupInfo()[0];
    const chosen = info({});
    assert.equal(chosen.structure, 'splits', name);
    assert.ok(chosen.wideSplits > 0, `${name}: ${JSON.stringify(chosen)}`);
    assert.deepEqual(info({}), chosen, `${name}: the same tree on a second load`);
    assert.equal(info({ simd: false }).wideSplits, chosen.wideSplits, `${name}: the tree does not depend on the scan`);
    assert.equal(info({ cuts: 'always', trees: 'cuts' }).wideSplits, 0, `${name}: equal cuts have none`);
    const rules = packTupleRules(policy);
    const tuples = randomTuples(rng, 20_000);
    const want = new Int32Array(tuples.length / 5);
    testkit().linearClassifyTuples(rules, tuples, want);
    for (const index of [{}, { simd: false }, { trees: 'splits', cutsMemory: 2048 }, { cuts: false }] as IndexOptions[]) {
      const got = new Int32Array(tuples.length / 5);
      new (native().Classifier)(compiled.table, index).classifyTuples(tuples, got);
      const i = got.findIndex((g, j) => g !== want[j]);
      if (i >= 0) assert.fail(`${name} ${JSON.stringify(index)}: header ${[...tuples.subarray(5 * i, 5 * i + 5)].join(' ')}: ${got[i]}, linear scan ${want[i]}`);
    }
  }
});
