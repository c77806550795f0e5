/**
 * From the keys of a packet-space shape (src/compile/space.ts) to a real
 * packet and metadata: the witness a test hands to the reference evaluator to
 * show that a rule `nfsieve check` calls live does match something.
 */
import { Field } from '../../src/compile/fields';
import { Interval, Key, Residual } from '../../src/compile/normalize';
import { esp, icmp, ikeHeader, ipPacket, PacketSpec, tcp, udp } from '../../src/craft';
import { Meta } from '../../src/reference/evaluate';
import { PolicyInput, RuleInput } from '../../src/policy/define';
import { Rng } from '../../src/craft';

const IPV6_EXTENSIONS = new Set([0, 43, 44, 51, 60, 135, 139, 140, 253, 254]);

function addressBytes(key: Key | undefined, family: 4 | 6): Uint8Array {
  if (family === 4) {
    const k = Number(key ?? 0x0a000001);
    return new Uint8Array([k >>> 24, (k >>> 16) & 0xff, (k >>> 8) & 0xff, k & 0xff]);
  }
  let k = BigInt(key ?? 0xfd000000000000000000000000000001n);
  const out = new Uint8Array(16);
  for (let i = 15; i >= 0; i--) { out[i] = Number(k & 0xffn); k >>= 8n; }
  return out;
}

/** A protocol number in the box that the decoder keeps as the upper layer (IPv6: not an extension header). */
function upperProto(box: Interval[] | undefined, family: 4 | 6, fallback: number): number {
  if (!box) return fallback;
  for (const iv of box) for (let p = Number(iv.lo); p <= Number(iv.hi) && p <= 255; p++) {
    if (family === 4 ? p !== 51 : !IPV6_EXTENSIONS.has(p)) return p;
  }
  return Number(box[0].lo);
}

function ike(keys: Map<Field, Key>): Uint8Array {
  const version = Math.min(Number(keys.get(Field.IkeVersion) ?? 2), 15);
  const exchange = Math.min(Number(keys.get(Field.IkeExchange) ?? 34), 255);
  const flags = Math.min(Number(keys.get(Field.IkeFlags) ?? 8), 255);
  return ikeHeader({ version: version << 4, exchange, flags });
}

function udpPayload(shape: string, keys: Map<Field, Key>): Uint8Array {
  switch (shape) {
    case 'udp/ike': return ike(keys);
    case 'udp/natt-ike': return new Uint8Array([0, 0, 0, 0, ...ike(keys)]);
    case 'udp/natt-esp': return esp(Math.max(1, Math.min(Number(keys.get(Field.Spi) ?? 1), 0xffffffff)), 1);
    case 'udp/natt-keepalive': return new Uint8Array([0xff]);
    default: return new Uint8Array(0);
  }
}

/** The packet bytes for a shape and its keys (absent keys are replaced by present ones where the shape needs them). */
export function witnessPacket(shape: string, keys: Map<Field, Key>, box: Map<Field, Interval[]>, family: 4 | 6): Uint8Array {
  const port = (f: Field): number => Math.min(Number(keys.get(f) ?? 1), 65535);
  const icmpProto = family === 4 ? 1 : 58;
  let proto: number;
  let upper: Uint8Array;
  if (shape === 'tcp') { proto = 6; upper = tcp(port(Field.Sport), port(Field.Dport)); }
  else if (shape === 'udp-short') { proto = 17; upper = new Uint8Array([0, 53]); }
  else if (shape.startsWith('udp')) { proto = 17; upper = udp(port(Field.Sport), port(Field.Dport), udpPayload(shape, keys)); }
  else if (shape === 'icmp') {
    const k = Math.min(Number(keys.get(Field.Icmp) ?? 0x0800), 65535);
    proto = icmpProto; upper = icmp(k >> 8, k & 0xff);
  } else if (shape === 'esp') { proto = 50; upper = esp(Math.min(Number(keys.get(Field.Spi) ?? 1), 0xffffffff), 1); }
  else { proto = upperProto(box.get(Field.Proto), family, 59); upper = new Uint8Array(16); }
  const spec: PacketSpec = { family, src: addressBytes(keys.get(Field.Src), family), dst: addressBytes(keys.get(Field.Dst), family), proto, upper };
  const fragment = Number(keys.get(Field.Fragment) ?? 0);
  if (fragment === 1) { spec.fragOffset = 0; spec.moreFragments = true; }
  if (fragment === 2) { spec.fragOffset = 10; spec.moreFragments = false; }
  const ah = keys.get(Field.AhSpi);
  if (ah !== undefined && Number(ah) <= 0xffffffff) {
    if (family === 6 && fragment === 2) return ahBeforeFragment(spec, Number(ah));
    spec.ahSpi = Number(ah);
  }
  return ipPacket(spec);
}

/** IPv6 with AH before a later fragment's header (craft places AH in the upper layer, where a later fragment hides it). */
function ahBeforeFragment(spec: PacketSpec, spi: number): Uint8Array {
  const be32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  const frag = [spec.proto, 0, ((10 << 3) >> 8) & 0xff, (10 << 3) & 0xff, 0, 0, 0, 1];
  const ah = [44, 4, 0, 0, ...be32(spi), ...be32(1), ...new Array<number>(12).fill(0)];
  const body = [...ah, ...frag, ...spec.upper];
  return new Uint8Array([0x60, 0, 0, 0, body.length >> 8, body.length & 0xff, 51, 64, ...spec.src, ...spec.dst, ...body]);
}

/** Metadata passing the residual checks (interfaces, marks) and the ctstate key. */
export function witnessMeta(keys: Map<Field, Key>, residuals: Residual[]): Meta {
  const meta: Meta = {};
  const ct = keys.get(Field.CtState);
  if (ct !== undefined && Number(ct) !== 0) meta.ctstate = Number(ct);
  for (const r of residuals) {
    if (r.kind === 'mark') meta.mark = r.negate ? ((r.value ^ r.mask) & r.mask) >>> 0 || (~r.value >>> 0) : r.value;
    else if ((r.kind === 'in' || r.kind === 'out') && !r.negate) {
      const p = r.patterns[0];
      meta[r.kind] = p.endsWith('+') ? `${p.slice(0, -1)}7` : p;
    }
  }
  return meta;
}

/** Conditions whose keys the witness builder can produce (no named sets, no ip-proto/length/malformed). */
export function witnessablePolicy(rng: Rng): PolicyInput {
  const port = (): number | string => rng.pick([500, 4500, 53, 1701, '33434-33633', `0-${rng.int(2000)}`, rng.int(65536)]);
  const not = <T>(v: T): T | { not: T } => (rng.chance(0.2) ? { not: v } : v);
  const conds: ((r: RuleInput) => void)[] = [
    (r) => { r.family = rng.pick([4, 6] as const); },
    (r) => { r.src = not(rng.pick(['10.0.0.0/8', '10.1.2.3', 'fd00::/16', 'fd00::7', ['10.0.0.1', 'fd00::1']])); },
    (r) => { r.dst = not(rng.pick(['10.2.0.0/16', 'fd00::/64', '10.0.0.9-10.0.0.20'])); },
    (r) => { r.proto = not(rng.pick(['udp', 'tcp', 'esp', 'icmp', 'icmpv6', 47, ['tcp', 'udp'], ['esp', 'udp']])); },
    (r) => { r.dport = not(port()); },
    (r) => { r.sport = not(port()); },
    (r) => { r.spi = not(rng.pick([0, 0x100, `0-${rng.u32()}`, '1-5'])); },
    (r) => { r['ah-spi'] = not(rng.pick([0x100, '0x100-0x2000'])); },
    (r) => { if (!r.icmpv6) r.icmp = not(rng.pick(['echo-request', 'destination-unreachable', '11/1', 5])); },
    (r) => { if (!r.icmp) r.icmpv6 = not(rng.pick(['echo-request', 'packet-too-big', 135])); },
    (r) => { r.ike = { ...(rng.chance(0.5) ? { version: not(rng.pick([1, 2])) } : {}), ...(rng.chance(0.5) ? { exchange: rng.pick(['ike_sa_init', 'ike_auth', 34]) } : {}), ...(rng.chance(0.4) ? { initiator: rng.chance(0.5) } : {}) }; },
    (r) => { r.natt = not(rng.pick(['ike', 'esp', 'keepalive', 'none'] as const)); },
    (r) => { r.fragment = not(rng.pick(['none', 'first', 'later'] as const)); },
    (r) => { r.in = not(rng.pick(['eth0', 'ipsec+', ['ppp+', 'lo']])); },
    (r) => { r.ctstate = not(rng.pick(['new', 'established', 'invalid'] as const)); },
    (r) => { r.mark = rng.pick(['0x3/0xff', 1, { not: 1 }, '0x100/0xff']); },
  ];
  const rules: RuleInput[] = Array.from({ length: 1 + rng.int(20) }, () => {
    const r: RuleInput = { action: rng.pick(['accept', 'drop'] as const) };
    for (let k = 1 + rng.int(4); k > 0; k--) rng.pick(conds)(r);
    return r;
  });
  return { default: 'accept', rules };
}

