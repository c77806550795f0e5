/**
 * One readable line per packet, close to `tcpdump -n`:
 * `0 12:00:01.000000 IP 10.0.0.1.500 > 10.0.0.2.500: UDP IKEv2 IKE_SA_INIT request initiator, ... msgid 0, length 300`
 * (the frame index first; lengths as tcpdump gives them: the UDP payload, the
 * bytes after the IP headers otherwise; ICMP types by name; ARP as ARP).
 */
import { DecodedPacket } from './packet';
import { formatAddress } from './address';
import { LinkType } from '../wire';

const PROTO_NAMES: Record<number, string> = {
  1: 'ICMP', 2: 'IGMP', 6: 'TCP', 17: 'UDP', 41: 'IPv6', 47: 'GRE', 50: 'ESP', 51: 'AH', 58: 'ICMP6',
  59: 'no-next-header', 89: 'OSPF', 103: 'PIM', 132: 'SCTP', 135: 'Mobility',
};

export const IKE_EXCHANGES: Record<number, string> = {
  2: 'Identity Protection', 4: 'Aggressive', 5: 'Informational', 32: 'Quick Mode',
  34: 'IKE_SA_INIT', 35: 'IKE_AUTH', 36: 'CREATE_CHILD_SA', 37: 'INFORMATIONAL',
};

/** ICMP (RFC 792 and successors) and ICMPv6 (RFC 4443, 4861, 3810) type names as tcpdump prints them. */
const ICMP_NAMES: Record<number, string> = {
  0: 'echo reply', 3: 'destination unreachable', 4: 'source quench', 5: 'redirect', 8: 'echo request',
  9: 'router advertisement', 10: 'router solicitation', 11: 'time exceeded in-transit', 12: 'parameter problem',
  13: 'time stamp request', 14: 'time stamp reply',
};
const ICMP6_NAMES: Record<number, string> = {
  1: 'destination unreachable', 2: 'packet too big', 3: 'time exceeded in-transit', 4: 'parameter problem',
  128: 'echo request', 129: 'echo reply', 130: 'multicast listener query', 131: 'multicast listener report',
  132: 'multicast listener done', 133: 'router solicitation', 134: 'router advertisement',
  135: 'neighbor solicitation', 136: 'neighbor advertisement', 137: 'redirect', 143: 'multicast listener report v2',
};

const UDP_HEADER = 8;
const PROTO_UDP = 17, PROTO_ESP = 50, PROTO_ICMP6 = 58;
const LINKTYPE_ETHERNET = LinkType.Ethernet;
const ETHERTYPE_ARP = 0x0806;
const ETHER_HEADER = 14;
const ARP_IPV4_ETHERNET = 28;
const ARP_REQUEST = 1, ARP_REPLY = 2;

/** The frame a line is about, for what the decoded packet does not carry (ARP). */
export interface SummaryFrame { data: Uint8Array; linkType: number }

// "HH:MM:SS" of the last second formatted: consecutive frames mostly share it.
let lastSecond = -1;
let lastClock = '';
function time(t: number): string {
  const sec = Math.floor(t);
  if (sec !== lastSecond) {
    lastSecond = sec;
    lastClock = new Date(sec * 1000).toISOString().slice(11, 19);
  }
  const micro = Math.round((t - sec) * 1e6) % 1e6;
  return `${lastClock}.${micro < 100000 ? String(micro).padStart(6, '0') : micro}`;
}

/** tcpdump's ARP line for Ethernet/IPv4 ARP, or null for other frames. */
function arpText(f: SummaryFrame | undefined): string | null {
  if (!f || f.linkType !== LINKTYPE_ETHERNET || f.data.length < ETHER_HEADER + ARP_IPV4_ETHERNET) return null;
  const d = f.data;
  if (((d[12] << 8) | d[13]) !== ETHERTYPE_ARP) return null;
  const a = ETHER_HEADER;
  const op = (d[a + 6] << 8) | d[a + 7];
  const ip = (at: number): string => `${d[at]}.${d[at + 1]}.${d[at + 2]}.${d[at + 3]}`;
  const length = `length ${d.length - ETHER_HEADER}`;
  if (op === ARP_REQUEST) return `ARP, Request who-has ${ip(a + 24)} tell ${ip(a + 14)}, ${length}`;
  if (op === ARP_REPLY) {
    const mac = Array.from(d.subarray(a + 8, a + 14), (b) => b.toString(16).padStart(2, '0')).join(':');
    return `ARP, Reply ${ip(a + 14)} is-at ${mac}, ${length}`;
  }
  return `ARP, op ${op}, ${length}`;
}

/** Bytes after the IP headers (after the UDP header for UDP), as tcpdump's "length N"; null when unknown. */
function payloadLength(p: DecodedPacket): number | null {
  if (p.totalLength === null || p.l4Offset <= p.l3Offset) return null;
  const n = p.totalLength - (p.l4Offset - p.l3Offset) - (p.proto === PROTO_UDP ? UDP_HEADER : 0);
  return n >= 0 ? n : null;
}

function icmpText(p: DecodedPacket): string {
  const icmp = p.icmp!;
  const name = (p.proto === PROTO_ICMP6 ? ICMP6_NAMES : ICMP_NAMES)[icmp.type];
  return name ? (icmp.code ? `${name} code ${icmp.code}` : name) : `type ${icmp.type} code ${icmp.code}`;
}

function ipsecText(p: DecodedPacket, parts: string[]): void {
  if (p.ah) parts.push(`AH(spi=0x${p.ah.spi.toString(16).padStart(8, '0')})`);
  if (p.natt === 'keepalive') parts.push('NAT-keepalive');
  if (p.natt === 'esp') parts.push('UDP-encap:');
  if (p.spi !== null) parts.push(`ESP(spi=0x${p.spi.toString(16).padStart(8, '0')}${p.espSeq !== null ? `,seq=0x${p.espSeq.toString(16)}` : ''})`);
  if (p.ike) {
    const role = p.ike.version === 2 ? ((p.ike.flags & 0x20 ? ' response' : ' request') + (p.ike.flags & 0x08 ? ' initiator' : ' responder')) : '';
    parts.push(`${p.natt === 'ike' ? 'NONESP-encap ' : ''}IKEv${p.ike.version} ${IKE_EXCHANGES[p.ike.exchange] ?? `exchange ${p.ike.exchange}`}${role}, ${p.ike.ispi}/${p.ike.rspi} msgid ${p.ike.msgid}`);
  }
}

export function summaryLine(index: number, t: number, p: DecodedPacket, frame?: SummaryFrame): string {
  const head = `${index} ${time(t)}`;
  if (p.family === null) {
    const arp = arpText(frame);
    return arp ? `${head} ${arp}` : `${head} non-IP frame${p.malformed ? ` [malformed: ${p.malformed}]` : ''}`;
  }
  const src = formatAddress(p.srcBytes!);
  const dst = formatAddress(p.dstBytes!);
  const proto = p.proto ?? 0;
  const parts: string[] = [head, p.family === 4 ? 'IP' : 'IP6', p.sport !== null ? `${src}.${p.sport} > ${dst}.${p.dport}:` : `${src} > ${dst}:`];
  // ESP prints as tcpdump's ESP(spi=...,seq=...) alone; ICMP6 as "ICMP6, name".
  const name = PROTO_NAMES[proto] ?? `proto ${proto}`;
  if (p.icmp) parts.push(proto === PROTO_ICMP6 ? `${name}, ${icmpText(p)}` : `${name} ${icmpText(p)}`);
  else if (!(proto === PROTO_ESP && p.spi !== null) && p.natt !== 'esp') parts.push(name);
  if (p.fragment !== 'none') parts.push(`(frag ${p.fragment})`);
  ipsecText(p, parts);
  const length = payloadLength(p);
  let line = parts.join(' ');
  if (length !== null) line += `, length ${length}`;
  return p.malformed ? `${line} [malformed: ${p.malformed}]` : line;
}
