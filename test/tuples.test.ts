// classifyTuples: ClassBench-style 5-tuples. When every IPv4 field of the
// table is one of the five, the keys come straight from the tuples
// (native/core/lanes.cc, classify_tuples); otherwise each tuple becomes a
// packet record first. Both must give the same rule for every tuple: the
// same policy with and without a last rule on a sixth field (which a tuple's
// record never matches) takes one path each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Classifier } from '../src/classifier';
import { definePolicy, PolicyInput, RuleInput } from '../src/policy/define';
import { compile } from '../src/compile/compile';
import { IndexOptions } from '../src/native';
import { Rng } from './support/packets';
import { randomPolicy } from './support/policies';

const SEED = Number(process.env.NFSIEVE_SEED ?? Date.now() % 0x7fffffff);
const KEEP = new Set(['name', 'action', 'limit', 'family', 'src', 'dst', 'proto', 'ip-proto', 'sport', 'dport', 'in', 'out', 'mark']);

function fiveTuplePolicy(rng: Rng): PolicyInput {
  const input = randomPolicy(rng, 1 + rng.int(60));
  for (const r of input.rules as unknown as Record<string, unknown>[]) {
    for (const key of Object.keys(r)) if (!KEEP.has(key)) delete r[key];
  }
  return input;
}

function randomTuples(rng: Rng, count: number): Uint32Array {
  const t = new Uint32Array(5 * count);
  for (let i = 0; i < count; i++) {
    const addr = (): number => (rng.chance(0.8) ? ((10 << 24) | (rng.int(4) << 16) | (rng.int(4) << 8) | (1 + rng.int(8))) >>> 0 : rng.u32());
    // Ports and protocols above their widths too: the records keep 16 and 8 bits.
    const port = (): number => rng.pick([500, 4500, 53, 1701, 33434 + rng.int(200), rng.int(2000), rng.int(65536), 65536 + 500, rng.u32()]);
    t.set([addr(), addr(), port(), port(), rng.pick([6, 17, 1, 50, 51, 0, 256 + 17, rng.u32()])], 5 * i);
  }
  return t;
}

test(`classifyTuples: keys from the tuples equal keys from packet records (60 random policies, seed ${SEED})`, () => {
  const rng = new Rng(SEED);
  const configs: (IndexOptions | undefined)[] = [undefined, { cuts: 'always' }, { cuts: 'always', trees: 'splits', simd: false },
    { cuts: false, combine: false }, { cuts: 'always', trees: 'cuts', cutsMemory: 256 }];
  let nonDefault = 0;
  for (let p = 0; p < 60; p++) {
    const input = fiveTuplePolicy(rng);
    const sixth: PolicyInput = { ...input, rules: [...input.rules, { family: 4, icmp: 8, action: 'accept' } as RuleInput] };
    const index = configs[p % configs.length];
    const direct = new Classifier(compile(definePolicy(input), { analyse: false }), { index });
    const records = new Classifier(compile(definePolicy(sixth), { analyse: false }), { index });
    assert.equal(direct.lookupInfo()[0].tupleKeys, true);
    assert.equal(records.lookupInfo()[0].tupleKeys, false);
    const tuples = randomTuples(rng, 3000);
    const a = new Int32Array(3000), b = new Int32Array(3000);
    direct.native.classifyTuples(tuples, a);
    records.native.classifyTuples(tuples, b);
    for (let i = 0; i < 3000; i++) {
      if (a[i] !== b[i]) {
        assert.fail(`seed ${SEED} policy ${p} index ${JSON.stringify(index)} tuple ${[...tuples.subarray(5 * i, 5 * i + 5)].join(' ')}: from the tuple ${a[i]}, through a record ${b[i]}\n${JSON.stringify(input)}`);
      }
      if (a[i] >= 0) nonDefault++;
    }
  }
  assert.ok(nonDefault > 10_000, `rules decided only ${nonDefault} tuples`);
});
