// Equal cuts keep, for each group of rules small in an address, the map of
// the 2^16 address blocks (IPv4 /16s) those rules touch; a header whose block
// is not in the map skips the group's tree (native/core/cuts.h, Tree::filter).
// These tests hold the trees with and without the maps to the linear scan:
// on ClassBench sets with their own traces and with random headers (which the
// maps turn away), and on address ranges that straddle block edges, probed at
// every range end and block edge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { loadClassbenchRules } from '../src/classbench/classbench';
import { generateTrace } from '../src/classbench/generate';
import { compile } from '../src/compile/compile';
import { definePolicy, RuleInput } from '../src/policy/define';
import { IndexOptions, native } from '../src/native';
import { Classifier } from '../src/classifier';
import { packTupleRules, randomTuples } from './support/linear';
import { testkit } from './support/testkit';
import { CLASSBENCH } from './support/compare';
import { Rng } from '../src/craft';

const CUTS: IndexOptions = { cuts: 'always', trees: 'cuts' };
const VARIANTS: IndexOptions[] = [
  CUTS, { ...CUTS, addressFilters: false }, { ...CUTS, simd: false }, { ...CUTS, cutsMemory: 512 }, { ...CUTS, groupIndex: false },
];

function classify(table: Uint8Array, index: IndexOptions, tuples: Uint32Array): Int32Array {
  const out = new Int32Array(tuples.length / 5);
  new (native().Classifier)(table, index).classifyTuples(tuples, out);
  return out;
}

function firstDifference(got: Int32Array, want: Int32Array): number {
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) return i;
  return -1;
}

test('ClassBench sets: the trees answer as the linear scan with and without their address-block maps, on their traces and on random headers', () => {
  const rng = new Rng(20261201);
  for (const name of ['fw1_10k', 'ipc1_10k', 'fw1_1k', 'ipc1_1k']) {
    const policy = loadClassbenchRules(path.join(CLASSBENCH, name));
    const compiled = compile(policy, { analyse: false });
    const on = new Classifier(compiled, { index: CUTS }).lookupInfo()[0];
    const off = new Classifier(compiled, { index: { ...CUTS, addressFilters: false } }).lookupInfo()[0];
    assert.equal(on.structure, 'cuts', name);
    assert.ok(on.addressFilters >= 2, `${name}: ${JSON.stringify(on)}`);
    assert.equal(off.addressFilters, 0, name);
    const rules = packTupleRules(policy);
    for (const tuples of [generateTrace(policy, 5_000, 7).tuples, randomTuples(rng, 20_000)]) {
      const want = new Int32Array(tuples.length / 5);
      testkit().linearClassifyTuples(rules, tuples, want);
      for (const index of VARIANTS) {
        const got = classify(compiled.table, index, tuples);
        const i = firstDifference(got, want);
        if (i >= 0) assert.fail(`${name} ${JSON.stringify(index)}: header ${[...tuples.subarray(5 * i, 5 * i + 5)].join(' ')}: ${got[i]}, linear scan ${want[i]}`);
      }
    }
  }
  // One split tree holds every group: no maps.
  const acl = compile(loadClassbenchRules(path.join(CLASSBENCH, 'acl1_10k')), { analyse: false });
  assert.equal(new Classifier(acl).lookupInfo()[0].addressFilters, 0);
  assert.throws(() => new Classifier(acl, { index: { addressFilters: 'no' as unknown as boolean } }), { name: 'TypeError', message: 'index.addressFilters must be a boolean' });
});

interface Box { lo: number[]; hi: number[]; proto: number }  // src, dst, sport, dport; proto -1: any

const ip = (v: number): string => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
const BLOCK = 0x10000;

// A small address range (narrower than a block) in 10.0.0.0/13, ending near a
// block edge half the time so that it straddles two blocks.
function smallRange(rng: Rng): [number, number] {
  const block = 0x0a000000 + rng.int(8) * BLOCK;
  const lo = rng.chance(0.5) ? block + BLOCK - 1 - rng.int(300) : block + rng.int(BLOCK - 700);
  return [lo, lo + rng.int(600)];
}

function randomBoxes(rng: Rng, count: number): Box[] {
  const boxes: Box[] = [];
  for (let i = 0; i < count; i++) {
    const kind = rng.int(5);  // small src, small dst, both, neither (twice)
    const src: [number, number] = kind === 0 || kind === 2 ? smallRange(rng) : [0, 0xffffffff];
    const dst: [number, number] = kind === 1 || kind === 2 ? smallRange(rng) : [0, 0xffffffff];
    const port = (): [number, number] => {
      if (rng.chance(0.5)) return [0, 65535];
      const p = rng.int(65000);
      return [p, p + rng.int(50)];
    };
    const sp = port(), dp = port();
    // Ports are conditions of TCP and UDP: a rule on them names one.
    const ports = sp[1] - sp[0] < 65535 || dp[1] - dp[0] < 65535;
    boxes.push({ lo: [src[0], dst[0], sp[0], dp[0]], hi: [src[1], dst[1], sp[1], dp[1]], proto: rng.pick(ports ? [6, 17] : [-1, 6, 17]) });
  }
  boxes.push({ lo: [0, 0, 0, 0], hi: [0xffffffff, 0xffffffff, 65535, 65535], proto: -1 });
  return boxes;
}

function ruleOf(b: Box): RuleInput {
  const r: RuleInput = { action: 'accept' };
  if (b.hi[0] - b.lo[0] < 0xffffffff) r.src = `${ip(b.lo[0])}-${ip(b.hi[0])}`;
  if (b.hi[1] - b.lo[1] < 0xffffffff) r.dst = `${ip(b.lo[1])}-${ip(b.hi[1])}`;
  if (b.proto >= 0) r.proto = b.proto;
  if (b.hi[2] - b.lo[2] < 65535) r.sport = `${b.lo[2]}-${b.hi[2]}`;
  if (b.hi[3] - b.lo[3] < 65535) r.dport = `${b.lo[3]}-${b.hi[3]}`;
  return r;
}

// Headers at each range end, one key past it, and at the edges of the
// blocks the range touches, the other fields inside the rule; then random ones.
function probes(rng: Rng, boxes: Box[]): Uint32Array {
  const out: number[] = [];
  const inside = (b: Box, d: number): number => b.lo[d] + rng.int(Math.min(b.hi[d] - b.lo[d] + 1, 2 ** 31));
  for (const b of boxes) {
    for (const d of [0, 1]) {
      if (b.hi[d] - b.lo[d] >= BLOCK) continue;
      const edge = Math.floor(b.hi[d] / BLOCK) * BLOCK;
      for (const v of [b.lo[d], b.hi[d], b.lo[d] - 1, b.hi[d] + 1, edge, edge - 1, Math.floor(b.lo[d] / BLOCK) * BLOCK]) {
        const t = [0, 1, 2, 3].map((k) => (k === d ? v >>> 0 : inside(b, k)));
        out.push(...t, b.proto >= 0 ? b.proto : rng.pick([6, 17]));
      }
    }
  }
  const rand = randomTuples(rng, 4_000);
  for (let i = 0; i < rand.length; i++) out.push(rand[i]);
  return Uint32Array.from(out);
}

function linear(boxes: Box[], tuples: Uint32Array): Int32Array {
  const out = new Int32Array(tuples.length / 5);
  for (let i = 0; i < out.length; i++) {
    const t = tuples.subarray(5 * i, 5 * i + 5);
    out[i] = boxes.findIndex((b) => [0, 1, 2, 3].every((d) => t[d] >= b.lo[d] && t[d] <= b.hi[d]) && (b.proto < 0 || b.proto === t[4]));
  }
  return out;
}

test('address ranges that straddle block edges: the maps hold every block a rule touches (seeds 1-4, every range end and block edge)', () => {
  let filtered = 0, matched = 0;
  for (let seed = 1; seed <= 4; seed++) {
    const rng = new Rng(seed);
    const boxes = randomBoxes(rng, 300);
    const compiled = compile(definePolicy({ default: 'drop', rules: boxes.map(ruleOf) }), { analyse: false });
    const info = new Classifier(compiled, { index: CUTS }).lookupInfo()[0];
    assert.equal(info.structure, 'cuts', `seed ${seed}`);
    filtered += info.addressFilters;
    const tuples = probes(rng, boxes);
    const want = linear(boxes, tuples);
    matched += want.filter((r) => r >= 0 && r < boxes.length - 1).length;
    for (const index of VARIANTS) {
      const got = classify(compiled.table, index, tuples);
      const i = firstDifference(got, want);
      if (i >= 0) assert.fail(`seed ${seed} ${JSON.stringify(index)}: header ${[...tuples.subarray(5 * i, 5 * i + 5)].join(' ')}: ${got[i]}, linear scan ${want[i]} (${JSON.stringify(boxes[want[i]])})`);
    }
  }
  assert.ok(filtered >= 8, `only ${filtered} trees got a map`);
  assert.ok(matched > 5_000, `too few headers matched a rule before the catch-all: ${matched}`);
});
