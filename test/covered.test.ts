// Covered rules (native/core/covered.cc): a rule whose box lies inside an
// earlier rule's exact box is never the first candidate, so the trees leave
// it out, whatever the earlier rule does (continue, mark, skip, residual
// checks, limits); the scan that resumes after such a rule still finds it in
// the table. A rule whose conditions are not one box (a negation, a list)
// covers nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Classifier, toNativeMeta } from '../src/classifier';
import { definePolicy, PolicyInput } from '../src/policy/define';
import { compile } from '../src/compile/compile';
import { IndexOptions } from '../src/native';
import { referenceDecode } from '../src/decode/reference';
import { referenceEvaluate, initialSets, LimitState, Meta } from '../src/reference/evaluate';
import { ruleLabel } from '../src/policy/model';
import { parseClassbenchRules } from '../src/classbench/classbench';
import { generateTrace, synthesizeClassbenchText } from '../src/classbench/generate';
import { Rng, randomFrameWide } from './support/packets';
import { randomMeta } from './support/policies';
import { packTupleRules } from './support/linear';
import { testkit } from './support/testkit';
import { CLASSBENCH, hex } from './support/compare';

// Every coverer kind, each followed by rules inside its box, and the two
// rules that only look covered.
const POLICY: PolicyInput = {
  default: 'drop',
  sets: { gw: { type: 'address', elements: ['10.1.0.7', '10.2.0.0/16'] } },
  rules: [
    { name: 'mark-continue', src: '10.1.0.0/16', action: { mark: '0x1/0xff', then: 'continue' } },
    { name: 'in-mark', src: '10.1.1.0/24', dport: 500, action: 'drop' },
    { name: 'marked', dst: '10.1.0.0/16', mark: '0x1/0xff', action: 'accept' },
    { name: 'in-marked', src: '10.2.0.0/24', dst: '10.1.2.0/24', action: 'reject' },
    { name: 'from-gw', src: '@gw', dst: '10.3.0.0/16', proto: 'udp', action: { queue: 1 } },
    { name: 'in-from-gw', src: '10.3.0.0/16', dst: '10.3.2.0/24', proto: 'udp', dport: '0-1000', action: 'accept' },
    { name: 'limited', dst: '10.3.0.0/16', limit: { rate: '1/hour', burst: 2 }, action: 'accept' },
    { name: 'in-limited', dst: '10.3.1.0/24', proto: 'tcp', action: 'drop' },
    { name: 'skip', src: '10.2.0.0/16', proto: 'tcp', action: { 'skip-to': 11 } },
    { name: 'in-skip', src: '10.2.3.0/24', proto: 'tcp', dport: 53, action: 'reject' },
    { name: 'counted', proto: 'udp', action: 'count' },
    { name: 'in-counted', src: '10.0.0.0/8', proto: 'udp', dport: 4500, action: 'drop' },
    { name: 'not-net', src: { not: '10.0.0.0/16' }, action: 'count' },
    { name: 'only-looks-covered', src: '10.0.1.0/24', action: 'reject' },
    { name: 'list', dport: [53, 1701], action: 'count' },
    { name: 'between-list-items', dport: '54-1000', proto: 'tcp', action: 'accept' },
  ],
};

// The structure each serves IPv4 with: trees forced, or (few rules can be
// first) the vector index over the rules that can be first (compact.h).
const CONFIGS: [IndexOptions, string][] = [
  [{ cuts: 'always' }, 'compact'], [{ cuts: 'always', trees: 'cuts' }, 'cuts'], [{ cuts: 'always', trees: 'cuts', simd: false }, 'cuts'],
  [{ cuts: 'always', trees: 'splits' }, 'splits'], [{ cuts: 'always', trees: 'splits', simd: false }, 'splits'],
];

test('rules covered by an earlier rule leave the trees, whatever that rule does; verdicts equal the reference', () => {
  const policy = definePolicy(POLICY);
  const compiled = compile(policy, { analyse: false });
  const names = policy.rules.map((r, i) => ruleLabel(r, i));
  for (const [index, structure] of CONFIGS) {
    const c = new Classifier(compiled, { index });
    const [v4] = c.lookupInfo();
    assert.equal(v4.structure, structure, JSON.stringify(index));
    // in-mark, in-marked, in-from-gw, in-limited, in-skip, in-counted; the
    // last two look covered by hulls (a negation, a list) and are not.
    assert.equal(v4.covered, 6, `${JSON.stringify(index)}: ${JSON.stringify(c.lookupInfo())}`);
    const rng = new Rng(0xc0fe + (index.simd === false ? 1 : 0));
    const sets = initialSets(policy);
    const limits = new LimitState();
    const seen = new Set<string | number>();
    for (let round = 0; round < 20; round++) {
      const meta = randomMeta(rng);
      const nm = toNativeMeta(meta)!;
      const refMeta: Meta = { in: meta.in, out: meta.out, ctstate: nm.ctstate, mark: meta.mark, now: 0n };
      // Frames from the same small pools as the rules (10.0-3.x.x, ports 53, 500, 4500, 1701...).
      const frames = Array.from({ length: 500 }, () => randomFrameWide(rng, 101).data);
      const got = c.classifyBatch(frames, { linkType: 101, meta: { ...meta, now: 0n } });
      frames.forEach((frame, i) => {
        const ref = referenceEvaluate(policy, referenceDecode(101, frame), refMeta, sets, limits);
        const want = { verdict: ref.verdict, rule: ref.rule >= 0 ? names[ref.rule] : null, mark: ref.mark, queue: ref.queue };
        const have = { verdict: got[i].verdict, rule: got[i].rule, mark: got[i].mark, queue: got[i].queue };
        if (JSON.stringify(have) !== JSON.stringify(want)) {
          assert.fail(`${JSON.stringify(index)}, meta ${JSON.stringify(meta)}, frame ${hex(frame)}:\n native ${JSON.stringify(have)}\n reference ${JSON.stringify(want)}`);
        }
        if (want.rule) seen.add(want.rule);
      });
    }
    // Covered rules are reached through their coverers and decide packets
    // (in-skip never does: every packet it holds skips past it).
    for (const name of ['in-mark', 'in-marked', 'in-from-gw', 'in-limited', 'in-counted', 'only-looks-covered', 'between-list-items']) {
      assert.ok(seen.has(name), `${name} decided no packet (${[...seen].join(', ')})`);
    }
  }
});

test('a synthesised set mostly covered by early wide rules: the vector index or trees over the rules that can be first, answers as the linear scan', () => {
  const seed = fs.readFileSync(path.join(CLASSBENCH, 'fw1_1k'), 'utf8');
  const policy = parseClassbenchRules(synthesizeClassbenchText(seed, 20_000, 4), 'fw1 x20k');
  const compiled = compile(policy, { analyse: false });
  const packed = packTupleRules(policy);
  // Few rules can be first: the vector index over them serves (compact.h),
  // unless a kind of tree is forced.
  const configs: [IndexOptions | undefined, string][] = [[undefined, 'compact'], [{ simd: false }, 'compact'],
    [{ cuts: 'always', trees: 'cuts' }, 'cuts'], [{ cuts: 'always', trees: 'splits', simd: false }, 'splits']];
  for (const [index, structure] of configs) {
    const c = new Classifier(compiled, { index });
    const [v4] = c.lookupInfo();
    assert.ok(v4.covered > 15_000, `${JSON.stringify(index)}: ${JSON.stringify(v4)}`);
    assert.equal(v4.structure, structure, JSON.stringify(index));
    for (const [k, trace] of [generateTrace(policy, 20_000, 8)].entries()) {
      const want = new Int32Array(trace.count);
      testkit().linearClassifyTuples(packed, trace.tuples, want);
      const got = new Int32Array(trace.count);
      c.native.classifyTuples(trace.tuples, got);
      for (let i = 0; i < trace.count; i++) {
        if (got[i] !== want[i]) assert.fail(`${JSON.stringify(index)} trace ${k} header ${i}: table ${got[i]}, linear scan ${want[i]}`);
      }
    }
    // Random headers, most matching no rule or only the last ones.
    const rng = new Rng(17);
    const tuples = new Uint32Array(5 * 20_000).map((_, i) => (i % 5 === 4 ? rng.pick([6, 17, 1, 0]) : i % 5 >= 2 ? rng.int(65536) : rng.u32()));
    const want = new Int32Array(20_000), got = new Int32Array(20_000);
    testkit().linearClassifyTuples(packed, tuples, want);
    c.native.classifyTuples(tuples, got);
    assert.deepEqual(got, want);
  }
});
