/**
 * Random policies for property tests, drawn from the same small value pools
 * as the packet generator (support/packets.ts) so that rules actually match:
 * every condition kind, negations, lists, named sets, and every action,
 * including non-terminal ones and forward skips.
 */
import { PolicyInput, RuleInput } from '../../src/policy/define';
import { Rng } from './packets';
import assert from 'node:assert/strict';
import { parsePolicyText, PolicyError } from '../../src/policy/parse';
import { ikeHeader, ipPacket, udp } from '../../src/craft';

const ADDR4 = (rng: Rng): string => {
  const base = `10.${rng.int(4)}.${rng.int(4)}.${1 + rng.int(8)}`;
  return rng.pick([base, `${base}/32`, `10.${rng.int(4)}.0.0/16`, `10.0.0.0/${8 + rng.int(17)}`, `10.1.${rng.int(4)}.1-10.1.3.8`]);
};
const ADDR6 = (rng: Rng): string => rng.pick([`fd00::${1 + rng.int(8)}`, 'fd00::/16', `fd00::/${100 + rng.int(29)}`, 'fd00::1-fd00::5', '::/0']);

function some<T>(rng: Rng, gen: () => T, max = 3): T | T[] {
  const n = 1 + rng.int(max);
  return n === 1 ? gen() : Array.from({ length: n }, gen);
}

function maybeNot<T>(rng: Rng, v: T): T | { not: T } {
  return rng.chance(0.2) ? { not: v } : v;
}

const PORT = (rng: Rng): number | string => rng.pick([500, 4500, 53, 1701, `${33434 + rng.int(100)}-33633`, `0-${rng.int(2000)}`, rng.int(65536)]);

export function randomPolicy(rng: Rng, rules = 1 + rng.int(40)): PolicyInput {
  const sets: PolicyInput['sets'] = {
    gw: { type: 'address', elements: Array.from({ length: 1 + rng.int(4) }, () => rng.chance(0.7) ? ADDR4(rng).replace(/-.*/, '') : ADDR6(rng).replace(/-.*/, '')) },
    spis: { type: 'spi', elements: Array.from({ length: 1 + rng.int(3) }, () => rng.chance(0.5) ? 0x100 : `${rng.int(1000)}-${1000 + rng.u32() % 0x7fffffff}`) },
  };
  const list: RuleInput[] = [];
  for (let i = 0; i < rules; i++) {
    const r: RuleInput = { action: 'accept' };
    const n = rng.int(4);
    for (let k = 0; k < n; k++) addCondition(rng, r);
    const a = rng.int(12);
    r.action = a < 3 ? 'accept' : a < 6 ? 'drop' : a === 6 ? 'reject' : a === 7 ? 'count' : a === 8 ? { queue: rng.int(4) }
      : a === 9 ? { mark: `0x${(1 + rng.int(15)).toString(16)}/0xff`, then: rng.pick(['accept', 'continue', 'repeat'] as const) } : a === 10 ? 'repeat' : 'accept';
    if (rng.chance(0.3)) r.name = `r${i}`;
    if (rng.chance(0.15)) r.limit = randomLimit(rng);
    list.push(r);
  }
  // A few forward skips (the shape of flattened iptables chains).
  const input: PolicyInput & { rules: (RuleInput & { action: unknown })[] } = { default: rng.pick(['accept', 'drop', 'reject'] as const), sets, rules: list };
  for (let i = 0; i < list.length - 1; i++) {
    if (rng.chance(0.05)) (list[i] as { action: unknown }).action = { 'skip-to': i + 2 + rng.int(list.length - i) };
  }
  return input;
}

function addCondition(rng: Rng, r: RuleInput): void {
  switch (rng.int(20)) {
    case 0: r.family = rng.pick([4, 6] as const); break;
    case 1: r.src = maybeNot(rng, some(rng, () => (rng.chance(0.7) ? ADDR4(rng) : ADDR6(rng)))); break;
    case 2: r.dst = maybeNot(rng, some(rng, () => (rng.chance(0.7) ? ADDR4(rng) : ADDR6(rng)))); break;
    case 3: r.src = maybeNot(rng, '@gw'); break;
    case 4: r.proto = maybeNot(rng, some(rng, () => rng.pick(['udp', 'tcp', 'esp', 'icmp', 'icmpv6', 'ah', 47, 59]))); break;
    case 5: r.dport = maybeNot(rng, some(rng, () => PORT(rng))); break;
    case 6: r.sport = maybeNot(rng, some(rng, () => PORT(rng))); break;
    case 7: r.spi = rng.chance(0.5) ? maybeNot(rng, '@spis') : maybeNot(rng, some(rng, () => rng.pick([0x100, `0-${rng.u32()}`]))); break;
    case 8: r['ah-spi'] = maybeNot(rng, some(rng, () => rng.pick([0x100, `0x100-0x${rng.u32().toString(16)}`]))); break;
    case 9: if (r.icmpv6) break; r.icmp = maybeNot(rng, some(rng, () => rng.pick(['echo-request', 'destination-unreachable', 'fragmentation-needed', 3, '11/1', 5]))); break;
    case 10: if (r.icmp) break; r.icmpv6 = maybeNot(rng, some(rng, () => rng.pick(['echo-request', 'packet-too-big', 135, 129]))); break;
    case 11: r.ike = { ...(rng.chance(0.5) ? { version: maybeNot(rng, rng.pick([1, 2])) } : {}), ...(rng.chance(0.5) ? { exchange: some(rng, () => rng.pick(['ike_sa_init', 'ike_auth', 'informational', 32, 2])) } : {}), ...(rng.chance(0.4) ? { initiator: rng.chance(0.5) } : {}), ...(rng.chance(0.3) ? { response: rng.chance(0.5) } : {}), ...(rng.chance(0.3) ? { initial: rng.chance(0.7) } : {}), ...(rng.chance(0.2) ? { cookie: rng.chance(0.7) } : {}) }; break;
    case 12: r.natt = maybeNot(rng, some(rng, () => rng.pick(['ike', 'esp', 'keepalive', 'none'] as const))); break;
    case 13: r.fragment = maybeNot(rng, some(rng, () => rng.pick(['none', 'first', 'later'] as const))); break;
    case 14: r.in = maybeNot(rng, some(rng, () => rng.pick(['eth0', 'ipsec+', 'ipsec0', 'ppp+', 'lo']))); break;
    case 15: r.out = maybeNot(rng, some(rng, () => rng.pick(['eth1', 'ipsec+', 'e+']))); break;
    case 16: r.ctstate = maybeNot(rng, some(rng, () => rng.pick(['new', 'established', 'related', 'invalid', 'untracked'] as const))); break;
    case 17: r.mark = rng.pick([`0x${rng.int(16).toString(16)}/0xff`, rng.int(4), { not: 1 }]); break;
    case 18: r.length = maybeNot(rng, some(rng, () => `${rng.int(60)}-${60 + rng.int(200)}`)); break;
    default: r.malformed = rng.chance(0.5); break;
  }
}

export function randomMeta(rng: Rng): { in?: string; out?: string; ctstate?: 'new' | 'established' | 'related' | 'invalid' | 'untracked'; mark?: number } {
  const m: ReturnType<typeof randomMeta> = {};
  if (rng.chance(0.7)) m.in = rng.pick(['eth0', 'ipsec0', 'ipsec12', 'ppp0', 'lo', 'e']);
  if (rng.chance(0.5)) m.out = rng.pick(['eth1', 'ipsec1', 'e']);
  if (rng.chance(0.7)) m.ctstate = rng.pick(['new', 'established', 'related', 'invalid', 'untracked'] as const);
  if (rng.chance(0.5)) m.mark = rng.int(20);
  return m;
}

/** A small limit, so that buckets run dry within a round: per rule or per source, tiny max-sources to force evictions. */
export function randomLimit(rng: Rng): NonNullable<RuleInput['limit']> {
  const l: NonNullable<RuleInput['limit']> = { rate: `${1 + rng.int(50)}/${rng.pick(['s', 'sec', 'second', 'min', 'h', 'day'])}` };
  if (rng.chance(0.7)) l.burst = 1 + rng.int(6);
  if (rng.chance(0.5)) {
    l.per = 'src';
    if (rng.chance(0.6)) l['max-sources'] = 1 + rng.int(6);
    if (rng.chance(0.3)) l['per-prefix4'] = rng.pick([8, 16, 24, 30, 32]);
    if (rng.chance(0.3)) l['per-prefix6'] = rng.pick([16, 64, 120, 128]);
  }
  return l;
}

const IKE_NOTIFY = 41, COOKIE = 16390;

/**
 * A raw IPv4/IPv6 packet carrying an IKE message close to an initial request:
 * IKEv2 IKE_SA_INIT or IKEv1 Main/Aggressive Mode, on 500 or 4500 (after the
 * non-ESP marker), responder SPI zero or not, flags varied, first payload a
 * COOKIE notify (whole or cut short), another notify, or an SA payload.
 */
export function ikeInitialFrame(rng: Rng): Uint8Array {
  const v2 = rng.chance(0.7);
  const notify = rng.pick([COOKIE, COOKIE, 16388, 0]);
  const payloadLength = rng.pick([8, 8, 12, 4]);
  const body = notify ? [0, 0, payloadLength >> 8, payloadLength & 0xff, 0, 0, notify >> 8, notify & 0xff].slice(0, rng.chance(0.9) ? 8 : rng.int(8)) : [];
  const ike = ikeHeader({
    ispi: rng.bytes(8), rspi: rng.chance(0.85) ? new Uint8Array(8) : rng.bytes(8),
    nextPayload: notify ? IKE_NOTIFY : 33, version: v2 ? 0x20 : 0x10,
    exchange: v2 ? rng.pick([34, 34, 34, 35]) : rng.pick([2, 4, 5]), flags: rng.pick([0x08, 0x08, 0x28, 0x20, 0]),
  });
  const msg = new Uint8Array([...ike, ...body]);
  new DataView(msg.buffer).setUint32(24, msg.length);
  const natt = rng.chance(0.3);
  const upper = natt ? udp(4500, 4500, new Uint8Array([0, 0, 0, 0, ...msg])) : udp(500, 500, msg);
  const family = rng.chance(0.7) ? 4 : 6;
  const src = family === 4 ? new Uint8Array([10, rng.int(4), rng.int(4), 1 + rng.int(8)]) : new Uint8Array([0xfd, 0, ...new Uint8Array(12), rng.int(2), 1 + rng.int(8)]);
  const dst = family === 4 ? new Uint8Array([10, 0, 0, 1]) : new Uint8Array([0xfd, 0, ...new Uint8Array(13), 1]);
  return ipPacket({ family, src, dst, proto: 17, upper });
}

/** The lines of the PolicyError a policy text (as p.yaml) is refused with; fails the test if it is accepted. */
export function policyErrors(text: string): string[] {
  try {
    parsePolicyText(text, 'p.yaml');
  } catch (e) {
    if (e instanceof PolicyError) return e.message.split('\n');
    throw e;
  }
  assert.fail('policy was accepted');
}
