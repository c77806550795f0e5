/**
 * Random policies for property tests, drawn from the same small value pools
 * as the packet generator (support/packets.ts) so that rules actually match:
 * every condition kind, negations, lists, named sets, and every action,
 * including non-terminal ones and forward skips.
 */
import { PolicyInput, RuleInput } from '../../src/policy/define';
import { Rng } from './packets';

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
    case 11: r.ike = { ...(rng.chance(0.5) ? { version: maybeNot(rng, rng.pick([1, 2])) } : {}), ...(rng.chance(0.5) ? { exchange: some(rng, () => rng.pick(['ike_sa_init', 'ike_auth', 'informational', 32, 2])) } : {}), ...(rng.chance(0.4) ? { initiator: rng.chance(0.5) } : {}), ...(rng.chance(0.3) ? { response: rng.chance(0.5) } : {}) }; break;
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
