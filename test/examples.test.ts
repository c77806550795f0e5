/**
 * Every shipped example policy, whatever it contains, classified natively and
 * by the reference evaluator on generated packets: addresses taken from the
 * policy itself (rule prefixes and ranges, set elements) so that its rules
 * decide, plus random and header-chain packets, under varied metadata.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadPolicyFile } from '../src/policy/parse';
import { Classifier, toNativeMeta } from '../src/classifier';
import { compile } from '../src/compile/compile';
import { referenceDecode } from '../src/decode/reference';
import { initialSets, LimitState, Meta, referenceEvaluate } from '../src/reference/evaluate';
import { AddressItem, Conditions, Policy, ruleLabel } from '../src/policy/model';
import { Rng, ipPacket, randomUpper, mutate, randomFrameWide, PacketSpec } from './support/packets';
import { randomChainPacket } from './support/headers';
import { randomMeta } from './support/policies';
import { hex, ROOT } from './support/compare';

const SEED = Number(process.env.NFSIEVE_SEED ?? Date.now() % 0x7fffffff);
const EXAMPLES = path.join(ROOT, 'examples');

/** Every address the policy names (the first address of each prefix or range, and one past it), per family. */
function policyAddresses(policy: Policy): Uint8Array[] {
  const out: Uint8Array[] = [];
  const item = (it: AddressItem): void => {
    const bytes = it.kind === 'prefix' ? it.prefix.bytes : it.range.lo;
    out.push(bytes);
    const next = bytes.slice();
    next[next.length - 1] ^= 1;
    out.push(next);
  };
  const walk = (c: Conditions): void => {
    for (const key of ['src', 'dst'] as const) {
      const cond = c[key];
      if (cond && !('sets' in cond)) cond.values.forEach(item);
    }
  };
  for (const r of policy.rules) [r.conditions, ...(r.extra ?? [])].forEach(walk);
  for (const s of policy.sets.values()) for (const p of s.addresses) item({ kind: 'prefix', prefix: p });
  return out;
}

function packetFor(rng: Rng, addrs: Uint8Array[]): Uint8Array {
  const pick = (family: 4 | 6): Uint8Array => {
    const own = addrs.filter((a) => a.length === (family === 4 ? 4 : 16));
    if (own.length && rng.chance(0.8)) return rng.pick(own);
    return family === 4 ? new Uint8Array([10, 0, 0, 1 + rng.int(8)]) : new Uint8Array([0xfd, ...new Array<number>(14).fill(0), 1 + rng.int(8)]);
  };
  const family: 4 | 6 = rng.chance(0.5) ? 4 : 6;
  const [src, dst] = [pick(family), pick(family)];
  const kind = rng.int(10);
  if (kind < 2) return randomChainPacket(rng, family, src, dst);
  if (kind === 2) return randomFrameWide(rng, 101).data;
  const { proto, upper } = randomUpper(rng, family);
  const spec: PacketSpec = { family, src, dst, proto, upper };
  if (rng.chance(0.1)) spec.ahSpi = rng.u32();
  const ip = ipPacket(spec);
  return rng.chance(0.2) ? mutate(rng, ip) : ip;
}

for (const file of fs.readdirSync(EXAMPLES).filter((f) => /\.(ya?ml|json)$/.test(f)).sort()) {
  test(`examples/${file}: native and reference decide alike on 50,000 generated packets (seed ${SEED})`, () => {
    const policy = loadPolicyFile(path.join(EXAMPLES, file));
    const classifier = new Classifier(compile(policy, { analyse: false }));
    const sets = initialSets(policy);
    const addrs = policyAddresses(policy);
    const rng = new Rng(SEED);
    const byRule = new Set<number>();
    // Rate limits (if the example has any) see one injected clock: a batch shares one time, rounds move it on.
    const limits = new LimitState();
    let now = 1_000_000_000n;
    for (let round = 0; round < 50; round++) {
      now += BigInt(rng.pick([0, 1000, 50_000_000, 1_000_000_000]));
      const meta = randomMeta(rng);
      const nm = toNativeMeta(meta)!;
      const refMeta: Meta = { in: meta.in, out: meta.out, ctstate: nm.ctstate, mark: meta.mark, now };
      const frames = Array.from({ length: 1000 }, () => packetFor(rng, addrs));
      const got = classifier.classifyBatch(frames, { meta: { ...meta, now } });
      frames.forEach((f, i) => {
        const ref = referenceEvaluate(policy, referenceDecode(101, f), refMeta, sets, limits);
        const want = { verdict: ref.verdict, rule: ref.rule >= 0 ? ruleLabel(policy.rules[ref.rule], ref.rule) : null, mark: ref.mark, queue: ref.queue };
        const have = { verdict: got[i].verdict, rule: got[i].rule, mark: got[i].mark, queue: got[i].queue };
        if (JSON.stringify(have) !== JSON.stringify(want)) {
          assert.fail(`seed ${SEED}, ${file}, meta ${JSON.stringify(meta)}, packet ${hex(f)}:\n native ${JSON.stringify(have)}\n reference ${JSON.stringify(want)}`);
        }
        if (ref.rule >= 0) byRule.add(ref.rule);
      });
    }
    console.log(`# ${file}: ${byRule.size} of ${policy.rules.length} rules decided some packet`);
    // Not vacuous: the generated packets make the policy's own rules decide.
    assert.ok(byRule.size >= Math.min(3, policy.rules.length), `${file}: only ${byRule.size} of ${policy.rules.length} rules ever decided`);
  });
}
