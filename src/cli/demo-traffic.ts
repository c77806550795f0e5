/**
 * The demo's frames: Ethernet + IPv4 (checksummed, or the kernel drops them)
 * carrying IKE, NAT-T and ESP, built with the packet crafter of src/craft.ts.
 */
import { ipPacket, udp, esp, ikeHeader } from '../craft';

export interface End { ns: string; ifname: string; mac: string; ip: string }

/** IKEv2 exchange types and the initiator flag (RFC 7296 section 3.1). */
export const IKE_SA_INIT = 34;
export const IKE_AUTH = 35;
export const FLAG_INITIATOR = 0x08;
export const ETHERTYPE_IPV4 = [0x08, 0x00];
export const PROTO_UDP = 17;
export const PROTO_ESP = 50;

const octets = (s: string): Uint8Array => Uint8Array.from(s.split('.').map(Number));
const macBytes = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));

/** An Ethernet frame from `src` (at address `srcIp`, spoofed or not) to `dst`. */
export function frame(src: End, dst: End, proto: number, upper: Uint8Array, srcIp = src.ip): string {
  const ip = ipPacket({ family: 4, src: octets(srcIp), dst: octets(dst.ip), proto, upper });
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (ip[i] << 8) | ip[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = (~sum >> 8) & 0xff; ip[11] = ~sum & 0xff;
  return Buffer.from([...macBytes(dst.mac), ...macBytes(src.mac), ...ETHERTYPE_IPV4, ...ip]).toString('hex');
}

/** An initiator's IKE_SA_INIT request: a fresh initiator SPI, responder SPI zero. */
export function ikeSaInit(src: End, dst: End, spi: number, srcIp?: string): string {
  const ispi = Uint8Array.from([0x4e, 0x46, 0, 0, (spi >>> 24) & 255, (spi >>> 16) & 255, (spi >>> 8) & 255, spi & 255]);
  return frame(src, dst, PROTO_UDP, udp(500, 500, ikeHeader({ ispi, exchange: IKE_SA_INIT, flags: FLAG_INITIATOR })), srcIp);
}

/** What an established peer sends: IKE_AUTH behind the non-ESP marker on 4500, and ESP. */
export function tunnelTraffic(src: End, dst: End): string[] {
  const ispi = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), rspi = Uint8Array.from([8, 7, 6, 5, 4, 3, 2, 1]);
  const auth = ikeHeader({ ispi, rspi, exchange: IKE_AUTH, flags: FLAG_INITIATOR, msgid: 1 });
  return [
    frame(src, dst, PROTO_UDP, udp(4500, 4500, Uint8Array.from([0, 0, 0, 0, ...auth]))),
    frame(src, dst, PROTO_ESP, esp(0xc0ffee01, 1)),
    frame(src, dst, PROTO_ESP, esp(0xc0ffee01, 2)),
  ];
}

/** IKE_SA_INIT from `sources` spoofed addresses (10.99.0.1, 10.99.1.1, ...), one frame each. */
export function spoofedInits(src: End, dst: End, sources: number): string[] {
  return Array.from({ length: sources }, (_, i) => ikeSaInit(src, dst, 0x10000 + i, `10.${99 + (i >> 8)}.${i & 255}.1`));
}
