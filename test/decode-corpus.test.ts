import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { readCapture } from '../src/capture/pcap';
import { decodeFrames, packetJson } from '../src/decode/packet';
import { referenceDecode } from '../src/decode/reference';
import { packetDiff, PCAPS, PCAP_COUNT, fixtureCaptures } from './support/compare';


function decodeFile(name: string) {
  const frames = readCapture(path.join(PCAPS, name));
  const byLink = new Map<number, number[]>();
  frames.forEach((f, i) => byLink.set(f.linkType, [...(byLink.get(f.linkType) ?? []), i]));
  const packets = new Array(frames.length);
  for (const [lt, idx] of byLink) {
    const decoded = decodeFrames(lt, idx.map((i) => frames[i].data));
    idx.forEach((i, k) => (packets[i] = decoded[k]));
  }
  return { frames, packets: packets as ReturnType<typeof decodeFrames> };
}

test('every capture of the fixtures decodes identically in native and reference decoders', () => {
  const files = fixtureCaptures();
  let read = 0;
  for (const name of files) {
    read++;
    const { frames, packets } = decodeFile(name);
    assert.ok(frames.length > 0, `${name} has frames`);
    frames.forEach((f, i) => {
      const diff = packetDiff(packets[i], referenceDecode(f.linkType, f.data));
      assert.equal(diff, null, `${name} frame ${i}: ${diff}`);
    });
  }
  assert.equal(read, PCAP_COUNT, 'every capture was read');
});

test('crash reproducers are reported malformed, not read past their end', () => {
  const expect: Record<string, string> = {
    'esp_truncated.pcap': 'udp-length',
    'ip6_frag_asan.pcap': 'ext-truncated',
    'isakmp-delete-segfault.pcap': 'udp-length',
  };
  for (const [name, reason] of Object.entries(expect)) {
    const { packets } = decodeFile(name);
    assert.equal(packets[0].malformed, reason, name);
  }
  const asan = decodeFile('ip6_frag_asan.pcap').packets[0];
  assert.equal(asan.proto, 44);
  assert.equal(asan.family, 6);
});

test('NAT-T capture: IKE behind the non-ESP marker, ESP-in-UDP SPI and four keepalives', () => {
  const { packets } = decodeFile('isakmp4500.pcap');
  assert.equal(packets.length, 35);
  assert.equal(packets.filter((p) => p.natt === 'keepalive').length, 4);
  assert.equal(packets.filter((p) => p.family === null).length, 8); // ARP
  const esp = packets.filter((p) => p.natt === 'esp');
  assert.ok(esp.length >= 8);
  for (const p of esp) assert.equal(p.spi, 0xf4dc0ae5);
  const ikeOver4500 = packets.filter((p) => p.natt === 'ike');
  assert.ok(ikeOver4500.every((p) => p.ike && p.ike.version === 1));
  assert.ok(ikeOver4500.some((p) => p.ike!.exchange === 32)); // Quick Mode
});

test('IKEv2 capture on the BSD loopback link type decodes the IKE header', () => {
  const { packets } = decodeFile('ikev2four.pcap');
  const first = packetJson(0, packets[0]);
  assert.deepEqual(first, {
    index: 0, family: 4, src: '192.168.1.2', dst: '192.168.1.1', proto: 17, fragment: 'none', sport: 500, dport: 500,
    spi: null, ah: null, icmp: null,
    ike: { version: 2, exchange: 34, flags: 8, ispi: 'a88875a8198992a6', rspi: '0000000000000000', msgid: 0 },
    natt: null, malformed: null,
  });
  assert.equal(packets[1].ike!.flags, 0x20);
});

test('AH over IPv6 is walked through to the upper layer and its SPI reported', () => {
  const { packets } = decodeFile('OSPFv3_with_AH.pcap');
  for (const p of packets) {
    assert.equal(p.proto, 89);
    assert.equal(p.ipProto, 51);
    assert.deepEqual(p.ah, { spi: 0x100 });
  }
});
