/**
 * One readable line per packet, in the spirit of tcpdump:
 * `12:00:01.000000 IP 10.0.0.1.500 > 10.0.0.2.500: UDP IKEv2 IKE_SA_INIT initiator, msgid 0`
 */
import { DecodedPacket } from './packet';
import { formatAddress } from './address';

const PROTO_NAMES: Record<number, string> = {
  1: 'ICMP', 2: 'IGMP', 6: 'TCP', 17: 'UDP', 41: 'IPv6', 47: 'GRE', 50: 'ESP', 51: 'AH', 58: 'ICMPv6',
  59: 'no-next-header', 89: 'OSPF', 103: 'PIM', 132: 'SCTP', 135: 'Mobility',
};

export const IKE_EXCHANGES: Record<number, string> = {
  2: 'Identity Protection', 4: 'Aggressive', 5: 'Informational', 32: 'Quick Mode',
  34: 'IKE_SA_INIT', 35: 'IKE_AUTH', 36: 'CREATE_CHILD_SA', 37: 'INFORMATIONAL',
};

function time(t: number): string {
  const d = new Date(Math.floor(t * 1000));
  const micro = Math.round((t - Math.floor(t)) * 1e6) % 1e6;
  return `${d.toISOString().slice(11, 19)}.${String(micro).padStart(6, '0')}`;
}

export function summaryLine(index: number, t: number, p: DecodedPacket, _frame?: { data: Uint8Array; linkType: number; originalLength: number }): string {
  const head = `${index} ${time(t)}`;
  if (p.family === null) return `${head} non-IP frame${p.malformed ? ` [malformed: ${p.malformed}]` : ''}`;
  const src = formatAddress(p.srcBytes!);
  const dst = formatAddress(p.dstBytes!);
  const proto = p.proto ?? 0;
  const ports = p.sport !== null;
  const parts: string[] = [`${head} ${p.family === 4 ? 'IP' : 'IP6'}`];
  parts.push(ports ? `${src}.${p.sport} > ${dst}.${p.dport}:` : `${src} > ${dst}:`);
  parts.push(PROTO_NAMES[proto] ?? `proto ${proto}`);
  if (p.fragment !== 'none') parts.push(`(frag ${p.fragment})`);
  if (p.ah) parts.push(`AH(spi=0x${p.ah.spi.toString(16).padStart(8, '0')})`);
  if (p.natt === 'keepalive') parts.push('NAT-keepalive');
  if (p.natt === 'esp' || p.spi !== null) {
    if (p.natt === 'esp') parts.push('UDP-encap');
    if (p.spi !== null) parts.push(`ESP(spi=0x${p.spi.toString(16).padStart(8, '0')}${p.espSeq !== null ? `,seq=0x${p.espSeq.toString(16)}` : ''})`);
  }
  if (p.ike) {
    const role = p.ike.version === 2 ? ((p.ike.flags & 0x20 ? ' response' : ' request') + (p.ike.flags & 0x08 ? ' initiator' : ' responder')) : '';
    parts.push(`${p.natt === 'ike' ? 'NONESP-encap ' : ''}IKEv${p.ike.version} ${IKE_EXCHANGES[p.ike.exchange] ?? `exchange ${p.ike.exchange}`}${role}, ${p.ike.ispi}/${p.ike.rspi} msgid ${p.ike.msgid}`);
  }
  if (p.icmp) parts.push(`type ${p.icmp.type} code ${p.icmp.code}`);
  if (p.malformed) parts.push(`[malformed: ${p.malformed}]`);
  return parts.join(' ');
}
