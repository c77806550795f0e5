import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Classifier, toNativeMeta } from '../src/classifier';
import { IndexOptions } from '../src/native';
import { definePolicy, PolicyInput } from '../src/policy/define';
import { compile } from '../src/compile/compile';
import { referenceDecode } from '../src/decode/reference';
import { referenceEvaluate, initialSets, LimitState, Meta } from '../src/reference/evaluate';
import { ruleLabel } from '../src/policy/model';
import { parsePrefix, parseRange } from '../src/policy/values';
import { Rng, randomFrameWide as randomFrame, LINK_TYPES } from './support/packets';
import { randomPolicy, randomMeta, ikeInitialFrame } from './support/policies';
import { hex } from './support/compare';

const SEED = Number(process.env.NFSIEVE_SEED ?? Date.now() % 0x7fffffff);

test(`native table and reference evaluator agree: 100 random policies x 10,000 random packets (seed ${SEED})`, () => {
  const rng = new Rng(SEED);
  let decided = 0;
  let byRule = 0;
  let limitRules = 0, overLimit = 0;
  for (let p = 0; p < 100; p++) {
    const input: PolicyInput = randomPolicy(rng);
    const policy = definePolicy(input);
    // The lookup index must never change a verdict: full pre-combination,
    // none, budgets small enough to stop it half-way; cut trees (chosen when
    // no stage names the rule; 'always' forces them), cut short by a tiny
    // budget, equal cuts scalar; one split tree forced, cut short or scalar;
    // trees out of work, weighed against the vector index by the miss model
    // (with and without pre-combined fields, AVX2 and scalar); no index; the
    // vector index over the rules that can be first (compact.h: few rules,
    // kind of tree not forced).
    const index = [undefined, { combine: false }, { work: 1 + (p % 7) * 300, memory: 1 << 16 }, { cuts: 'always' as const, cutsMemory: 64 },
      { cuts: 'always' as const, trees: 'cuts' as const, simd: false }, { cuts: 'always' as const, trees: 'splits' as const, cutsMemory: 256 },
      { cuts: 'always' as const, trees: 'splits' as const, simd: false }, { combine: false, cuts: false as const },
      { cuts: 'always' as const, cutsWork: 1 + (p % 7) * 40, combine: p % 4 === 0 },
      { cuts: 'always' as const, cutsWork: 1 + (p % 7) * 40, combine: false, simd: false },
      { cuts: 'always' as const, combine: p % 3 !== 0 }][p % 11];
    const classifier = new Classifier(compile(policy, { analyse: false }), { index });
    const sets = initialSets(policy);
    const limits = new LimitState();
    const hits = new Array<number>(policy.rules.length + 1).fill(0);
    // Rate limits see one injected clock: a batch shares one time, rounds move it on.
    let now = BigInt(rng.u32()) * 1000n;
    for (let round = 0; round < 10; round++) {
      now += BigInt(rng.pick([0, 1, 1000, 50_000_000, 1_000_000_000, 3_600_000_000_000]) + rng.int(1_000_000));
      if (round === 5) {
        // Live set changes, mirrored in the reference's set contents.
        const addr = rng.pick(['10.0.0.1', '10.1.2.3', 'fd00::2', '10.2.0.0/16']);
        classifier.addToSet('gw', addr);
        const pre = parsePrefix(addr);
        const list = sets.addresses.get('gw')!;
        if (!list.some((x) => x.length === pre.length && x.bytes.every((b, i) => b === pre.bytes[i]))) list.push(pre);
        const victim = input.sets!.gw.elements![0] as string;
        classifier.deleteFromSet('gw', victim);
        const vp = parsePrefix(victim);
        sets.addresses.set('gw', list.filter((x) => !(x.length === vp.length && x.bytes.every((b, i) => b === vp.bytes[i]))));
        classifier.addToSet('spis', 7);
        sets.spis.get('spis')!.push(parseRange(7, 0xffffffff, 'spi'));
      }
      const meta = randomMeta(rng);
      const nm = toNativeMeta(meta)!;
      const refMeta: Meta = { in: meta.in, out: meta.out, ctstate: nm.ctstate, mark: meta.mark, now };
      const linkType = rng.pick(LINK_TYPES);
      // IKE initial requests (COOKIE retries among them) on raw-IP rounds, so the ike conditions and limits meet them.
      const frames = Array.from({ length: 1000 }, () => (linkType === 101 && rng.chance(0.1) ? ikeInitialFrame(rng) : randomFrame(rng, linkType).data));
      const results = classifier.classifyBatch(frames, { linkType, meta: { ...meta, now } });
      frames.forEach((frame, i) => {
        const ref = referenceEvaluate(policy, referenceDecode(linkType, frame), refMeta, sets, limits);
        const got = results[i];
        const want = {
          verdict: ref.verdict,
          rule: ref.rule >= 0 ? ruleLabel(policy.rules[ref.rule], ref.rule) : null,
          mark: ref.mark,
          queue: ref.queue,
        };
        const have = { verdict: got.verdict, rule: got.rule, mark: got.mark, queue: got.queue };
        if (JSON.stringify(have) !== JSON.stringify(want)) {
          assert.fail(`seed ${SEED}, policy ${p}, index ${JSON.stringify(index)}, link type ${linkType}, meta ${JSON.stringify(meta)}, frame ${hex(frame)}:\n native ${JSON.stringify(have)}\n reference ${JSON.stringify(want)}\n policy ${JSON.stringify(input)}`);
        }
        for (const r of ref.matched) hits[r]++;
        if (ref.verdict !== null && ref.rule === -1) hits[policy.rules.length]++;
        if (ref.verdict !== null) decided++;
        if (ref.rule >= 0) byRule++;
      });
    }
    const counters = classifier.counters();
    assert.deepEqual(counters.map((c) => Number(c.hits)), hits, `seed ${SEED}, policy ${p}: per-rule hit counters`);
    const over = policy.rules.map((_, i) => limits.overLimit.get(i) ?? 0);
    assert.deepEqual(counters.slice(0, -1).map((c) => Number(c.overLimit)), over, `seed ${SEED}, policy ${p}: over-limit counters`);
    const evicted = policy.rules.map((_, i) => limits.evictions.get(i) ?? 0);
    assert.deepEqual(counters.slice(0, -1).map((c) => Number(c.evictions)), evicted, `seed ${SEED}, policy ${p}: evictions`);
    limitRules += policy.rules.filter((r) => r.limit).length;
    overLimit += over.reduce((a, b) => a + b, 0);
  }
  // The generators must make rules decide, not only the default.
  assert.ok(byRule > 100_000, `too few packets decided by a rule: ${byRule}`);
  assert.ok(decided > 500_000);
  // Limits must both pass and refuse packets, or the comparison says little.
  assert.ok(limitRules > 20 && overLimit > 1000, `limits exercised too little: ${limitRules} rules, ${overLimit} over limit`);
});

// Equal cuts serve the group of rules wide in both addresses through the
// vector index over them (cuts.h) when its last stage names the rule. On
// fixed seeds, every random policy that gets one answers as with a tree for
// every group, with the trees cut short by a tiny budget, scalar, and with no
// index at all (which the test above holds to the reference).
test('equal cuts with the group index answer as without it, cut short, scalar and unindexed (random policies, seeds 1-3)', () => {
  let grouped = 0, decided = 0;
  for (let seed = 1; seed <= 3; seed++) {
    const rng = new Rng(seed);
    for (let p = 0; p < 100; p++) {
      const input = randomPolicy(rng);
      const compiled = compile(definePolicy(input), { analyse: false });
      const make = (index: IndexOptions): Classifier => new Classifier(compiled, { index });
      const on = make({ cuts: 'always', trees: 'cuts' });
      if (!on.lookupInfo().some((f) => f.groupIndexes > 0)) continue;
      grouped++;
      const others = [make({ cuts: 'always', trees: 'cuts', groupIndex: false }), make({ cuts: 'always', trees: 'cuts', cutsMemory: 64 }),
        make({ cuts: 'always', trees: 'cuts', addressFilters: false }),
        make({ cuts: 'always', trees: 'cuts', simd: false }), make({ combine: false, cuts: false })];
      const meta = randomMeta(rng);
      const frames = Array.from({ length: 2000 }, () => randomFrame(rng, 101).data);
      const verdicts = (c: Classifier): string[] => c.classifyBatch(frames, { linkType: 101, meta }).map((r) => `${r.verdict} ${r.rule}`);
      const want = verdicts(on);
      decided += want.filter((v) => !v.endsWith(' null')).length;
      others.forEach((c, k) => {
        const got = verdicts(c);
        const i = got.findIndex((v, j) => v !== want[j]);
        if (i >= 0) assert.fail(`seed ${seed}, policy ${p}, classifier ${k}: frame ${hex(frames[i])}: ${got[i]} against ${want[i]} with the group index\n policy ${JSON.stringify(input)}`);
      });
    }
  }
  assert.ok(grouped >= 30, `only ${grouped} of 300 random policies got a group index`);
  assert.ok(decided > 20_000, `too few frames decided by a rule: ${decided}`);
});
