/**
 * The packet space, as the fields of a decision table see it: which
 * combinations of keys a decoded packet can actually produce.
 *
 * Each field of the table is an independent dimension, so the compiled form of
 * a rule is a box (one interval set per field). But the fields of a packet are
 * not independent: a TCP packet has no ICMP key (its key is the "absent"
 * sentinel), an ESP packet has no ports, a later fragment has neither, IKE
 * fields exist only for UDP with a port 500 or NAT-T's non-ESP marker on
 * 4500... A rule whose box meets no packet can never match, even though every
 * one of its fields alone is satisfiable.
 *
 * So the space is described as a union of boxes too: one **shape** per kind of
 * packet the decoder can produce (TCP, UDP split by how the IKE/NAT-T ports
 * sit, ICMP of the packet's own family, ESP, any other protocol, a later
 * fragment), each giving the keys its fields can take (native/core/decode.cc
 * and lanes.cc are the source: which `present` bits each protocol sets, and
 * each field's absent key). A field a shape does not name is unconstrained.
 * A rule is live in a family when its box meets at least one shape; the
 * intersection then holds the keys of a packet that reaches the rule (its
 * witness, used by the tests to build that packet). The description
 * over-approximates (for example truncated headers, whose keys are "absent",
 * are folded into the shapes, and addresses, ip-proto, nf-proto, lengths,
 * ctstate, malformed and truncation are taken as free), so a rule reported
 * dead is dead; a rule that is dead only through one of those free fields is
 * not reported.
 */
import { Field, fieldInfo, IKE_COOKIE_KEYS, IKE_INITIAL_KEYS } from './fields';
import { canonical, complement, FamilyRule, intersect, Interval, Key } from './normalize';

export type Shape = { name: string; dims: Map<Field, Interval[]> };

const IKE_PORT = 500;
const NATT_PORT = 4500;
const PORTS_ABSENT: Interval[] = [{ lo: 65536, hi: 65536 }];
const SPI_ABSENT: Interval[] = [{ lo: 0x100000000, hi: 0x100000000 }];
const ICMP_ABSENT: Interval[] = [{ lo: 65536, hi: 65536 }];
const IKE_ABSENT: [Field, Interval[]][] = [
  [Field.IkeVersion, [{ lo: 16, hi: 16 }]], [Field.IkeExchange, [{ lo: 256, hi: 256 }]], [Field.IkeFlags, [{ lo: 256, hi: 256 }]],
  [Field.IkeInitial, [{ lo: IKE_INITIAL_KEYS.absent, hi: IKE_INITIAL_KEYS.absent }]], [Field.IkeCookie, [{ lo: IKE_COOKIE_KEYS.absent, hi: IKE_COOKIE_KEYS.absent }]],
];
/** IKE keys: any present value, or absent when the IKE header is cut short. */
const IKE_ANY: [Field, Interval[]][] = [
  [Field.IkeVersion, [{ lo: 0, hi: 16 }]], [Field.IkeExchange, [{ lo: 0, hi: 256 }]], [Field.IkeFlags, [{ lo: 0, hi: 256 }]],
  [Field.IkeInitial, [{ lo: 0, hi: IKE_INITIAL_KEYS.absent }]], [Field.IkeCookie, [{ lo: 0, hi: IKE_COOKIE_KEYS.absent }]],
];
const NATT_KEY = { none: 0, ike: 1, esp: 2, keepalive: 3 } as const;
const FRAGMENT_KEY = { none: 0, first: 1, later: 2 } as const;
/** IP protocol numbers (IANA). */
export const PROTO_ICMP = 1, PROTO_TCP = 6, PROTO_UDP = 17, PROTO_ESP = 50, PROTO_AH = 51, PROTO_ICMPV6 = 58, PROTO_SCTP = 132;

const one = (k: number): Interval[] => [{ lo: k, hi: k }];
const span = (lo: number, hi: number): Interval[] => [{ lo, hi }];
const ports = (list: number[]): Interval[] => canonical(list.map((p) => ({ lo: p, hi: p })));
const portsBut = (list: number[]): Interval[] => complement(ports(list), 65535);

function shape(name: string, entries: [Field, Interval[]][]): Shape {
  return { name, dims: new Map(entries) };
}

/** Transport fields of a packet whose upper layer was not decoded. */
const noUpper = (): [Field, Interval[]][] => [
  [Field.Sport, PORTS_ABSENT], [Field.Dport, PORTS_ABSENT], [Field.Spi, SPI_ABSENT], [Field.Icmp, ICMP_ABSENT],
  ...IKE_ABSENT, [Field.Natt, one(NATT_KEY.none)],
];

/** The UDP shapes: the port pair decides whether IKE or NAT-T is decoded. */
function udpShapes(decoded: Interval[]): Shape[] {
  const base = (name: string, sport: Interval[], dport: Interval[], rest: [Field, Interval[]][]): Shape =>
    shape(name, [[Field.Fragment, decoded], [Field.Proto, one(PROTO_UDP)], [Field.Sport, sport], [Field.Dport, dport],
      [Field.Icmp, ICMP_ABSENT], ...rest]);
  const plain: [Field, Interval[]][] = [[Field.Spi, SPI_ABSENT], ...IKE_ABSENT, [Field.Natt, one(NATT_KEY.none)]];
  const ike: [Field, Interval[]][] = [[Field.Spi, SPI_ABSENT], ...IKE_ANY, [Field.Natt, one(NATT_KEY.none)]];
  const out: Shape[] = [
    base('udp', portsBut([IKE_PORT, NATT_PORT]), portsBut([IKE_PORT, NATT_PORT]), plain),
    base('udp/ike', one(IKE_PORT), span(0, 65535), ike),
    base('udp/ike', portsBut([IKE_PORT]), one(IKE_PORT), ike),
  ];
  // 4500 on one side and 500 on neither: RFC 3948's three payloads, or none.
  const nattPorts: [Interval[], Interval[]][] = [[one(NATT_PORT), portsBut([IKE_PORT])], [portsBut([IKE_PORT, NATT_PORT]), one(NATT_PORT)]];
  for (const [sport, dport] of nattPorts) {
    out.push(base('udp/natt-none', sport, dport, plain));
    out.push(base('udp/natt-ike', sport, dport, [[Field.Spi, SPI_ABSENT], ...IKE_ANY, [Field.Natt, one(NATT_KEY.ike)]]));
    // The SPI after a NAT-T marker is never 0 (0 is the marker); a cut-short ESP header has none.
    out.push(base('udp/natt-esp', sport, dport, [[Field.Spi, [{ lo: 1, hi: 0x100000000 }]], ...IKE_ABSENT, [Field.Natt, one(NATT_KEY.esp)]]));
    out.push(base('udp/natt-keepalive', sport, dport, [[Field.Spi, SPI_ABSENT], ...IKE_ABSENT, [Field.Natt, one(NATT_KEY.keepalive)]]));
  }
  // A UDP header cut short before its ports: no ports, nothing above.
  out.push(shape('udp-short', [...noUpper(), [Field.Fragment, decoded], [Field.Proto, one(PROTO_UDP)]]));
  return out;
}

/** Every kind of packet of one family, as boxes over the table's fields. */
export function packetShapes(family: 4 | 6): Shape[] {
  const decoded = span(FRAGMENT_KEY.none, FRAGMENT_KEY.first);
  const icmpProto = family === 4 ? PROTO_ICMP : PROTO_ICMPV6;
  const known = [PROTO_TCP, PROTO_UDP, PROTO_ESP, icmpProto];
  const upper = (name: string, proto: Interval[], entries: [Field, Interval[]][]): Shape => {
    const dims = new Map(noUpper());
    for (const [f, ivs] of entries) dims.set(f, ivs);
    dims.set(Field.Fragment, decoded);
    dims.set(Field.Proto, proto);
    return { name, dims };
  };
  return [
    // A truncated TCP header has no ports: absent is folded in (rules never ask for it).
    upper('tcp', one(PROTO_TCP), [[Field.Sport, span(0, 65536)], [Field.Dport, span(0, 65536)]]),
    ...udpShapes(decoded),
    upper('icmp', one(icmpProto), [[Field.Icmp, span(0, 65536)]]),
    upper('esp', one(PROTO_ESP), [[Field.Spi, span(0, 0x100000000)]]),
    // ICMP of the other family has no ICMP key (lanes.cc: right_proto).
    upper('other', complement(ports(known), 255), []),
    // IPv4 AH sits in the fragmented payload, so a later fragment has none; IPv6 may carry AH before the fragment header.
    shape('later-fragment', [...noUpper(), [Field.Fragment, one(FRAGMENT_KEY.later)], ...(family === 4 ? [[Field.AhSpi, SPI_ABSENT] as [Field, Interval[]]] : [])]),
  ];
}

const SHAPES = { 4: packetShapes(4), 6: packetShapes(6) };

/** The rule's box cut by one shape: the keys a matching packet of that shape can have, or null. */
export function meet(rule: FamilyRule, s: Shape, family: 4 | 6): Map<Field, Interval[]> | null {
  const out = new Map<Field, Interval[]>();
  for (const [f, ivs] of s.dims) out.set(f, ivs);
  for (const [f, ivs] of rule.dims) {
    const prev = out.get(f);
    const next = prev ? intersect(prev, ivs) : ivs;
    if (next.length === 0) return null;
    out.set(f, next);
  }
  // A set condition on an SPI needs the SPI to be there (classify.cc, residuals_hold).
  for (const r of rule.residuals) {
    if (r.kind !== 'set' || (r.field !== 'spi' && r.field !== 'ah-spi')) continue;
    const f = r.field === 'spi' ? Field.Spi : Field.AhSpi;
    const present: Interval[] = [{ lo: 0, hi: fieldInfo(f, family).present }];
    const next = intersect(out.get(f) ?? present, present);
    if (next.length === 0) return null;
    out.set(f, next);
  }
  return out;
}

/** Residual checks that no packet can pass: a mark condition with value bits outside its mask. */
function residualsPossible(rule: FamilyRule): boolean {
  return rule.residuals.every((r) => {
    if (r.kind !== 'mark') return true;
    const reachable = ((r.value & ~r.mask) >>> 0) === 0;
    // Negated: some mark must differ under the mask, impossible only when the mask is 0 and the value 0.
    return r.negate ? !(reachable && r.mask === 0) : reachable;
  });
}

export interface Witness {
  shape: string;
  /** One key per constrained field. */
  keys: Map<Field, Key>;
  /** Everything the rule accepts within the shape, to choose other keys from. */
  box: Map<Field, Interval[]>;
}

/**
 * Keys of a packet of this family that the rule's interval conditions accept,
 * or null when none exists. Each field takes the lowest key it can, present
 * keys before absent ones.
 */
export function witness(rule: FamilyRule | null, family: 4 | 6): Witness | null {
  if (!rule || !residualsPossible(rule)) return null;
  for (const s of SHAPES[family]) {
    const box = meet(rule, s, family);
    if (!box) continue;
    const keys = new Map<Field, Key>();
    for (const [f, ivs] of box) {
      const present = fieldInfo(f, family).present;
      const inside = ivs.find((iv) => !(present < iv.lo));
      keys.set(f, inside ? inside.lo : ivs[0].lo);
    }
    return { shape: s.name, keys, box };
  }
  return null;
}

/** Can any packet of this family pass the rule's interval conditions? */
export function live(rule: FamilyRule | null, family: 4 | 6): boolean {
  return witness(rule, family) !== null;
}
