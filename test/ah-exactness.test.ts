/**
 * AH against the kernel: the packets of issue 11's three disagreements and
 * the length boundaries around them, each with the decision Linux 6.18 made
 * (measured with ip6tables-legacy rule counters in a namespace; the kernel
 * comparison in kernel-diff.test.ts keeps checking the same code paths).
 * The imported policy (native classifier), the chain interpreter and the
 * oracle written from the kernel's code must all reach the kernel's
 * decision, and both decoders must agree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importIptables } from '../src/iptables/import';
import { Classifier } from '../src/classifier';
import { compile } from '../src/compile/compile';
import { referenceDecode } from '../src/decode/reference';
import { decodeFrame } from '../src/decode/packet';
import { initialSets } from '../src/reference/evaluate';
import { isHotdrop, parseChains, runChains } from './support/iptables';
import { hex } from './support/compare';
import { oracleRun, readTable } from './support/kernel-oracle';

const SRC6 = [0xfd, 0, 0x02, 0, 0, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const DST6 = [0xfd, 0, 0x02, 0, 0, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const ip6 = (next: number, body: number[]): Uint8Array =>
  new Uint8Array([0x60, 0, 0, 0, body.length >> 8, body.length & 0xff, next, 64, ...SRC6, ...DST6, ...body]);
const ip4 = (proto: number, body: number[]): Uint8Array => {
  const total = 20 + body.length;
  return new Uint8Array([0x45, 0, total >> 8, total & 0xff, 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1, ...body]);
};
/** AH: next header, length field, SPI 256, sequence 1, then `icv` bytes. */
const ah = (next: number, lengthField: number, icv: number[] = []): number[] => [next, lengthField, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, ...icv];
const ICMP6_ECHO = [128, 0, 0, 0, 0, 0, 0, 0];
const UDP_500 = [0x01, 0xf4, 0x01, 0xf4, 0, 8, 0, 0];

type Outcome = 'DEFAULT' | 'HOTDROP' | `R${number}`;

/** The decision for one packet, as kernel-diff.test.ts names the kernel's: rule line, hotdrop or the policy. */
function decide(text: string, family: 4 | 6, packet: Uint8Array): Outcome {
  const policy = importIptables(text, 'ah.rules', { family });
  const c = new Classifier(compile(policy, { analyse: false }));
  const r = c.classify(packet);
  const rule = r.index >= 0 ? policy.rules[r.index] : null;
  const ours = (rule === null ? 'DEFAULT' : isHotdrop(rule) ? 'HOTDROP' : `R${r.line}`) as Outcome;
  // The chain interpreter must agree (a hotdrop is a drop at the rule's line there).
  const p = referenceDecode(101, packet);
  const chains = runChains(parseChains(text, family), p, {}, initialSets(policy));
  const want = ours === 'DEFAULT' ? null : r.line;
  assert.equal(chains.line, want, `chain interpreter vs imported policy on ${hex(packet)}`);
  // And the oracle written from the kernel's code (its own parse, raw bytes).
  assert.equal(oracleRun(readTable(text, family, 'legacy'), packet, {}, new Map()).line, want, `kernel-code oracle vs imported policy on ${hex(packet)}`);
  assert.deepEqual(decodeFrame(101, packet), p, `native vs reference decoder on ${hex(packet)}`);
  return ours;
}

const RULES6 = (...lines: string[]): string => `*filter\n:INPUT ACCEPT [0:0]\n${lines.join('\n')}\nCOMMIT\n`;

test('AH with length field 0 (8 bytes) is walked over and flagged, in both families', () => {
  const v6 = referenceDecode(101, ip6(51, ah(58, 0).slice(0, 8).concat(ICMP6_ECHO)));
  assert.equal(v6.proto, 58);
  assert.deepEqual(v6.icmp, { type: 128, code: 0 });
  assert.equal(v6.ah?.spi, 256);
  assert.equal(v6.malformed, 'ah-length');
  const v4 = referenceDecode(101, ip4(51, ah(17, 0).slice(0, 8).concat(UDP_500)));
  assert.deepEqual([v4.proto, v4.ipProto, v4.sport, v4.dport, v4.malformed], [17, 51, 500, 500, 'ah-length']);
});

test('issue 11 (1): ip6tables sees the ICMPv6 type behind an 8-byte AH', () => {
  const text = RULES6('-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j DROP');
  assert.equal(decide(text, 6, ip6(51, ah(58, 0).slice(0, 8).concat(ICMP6_ECHO))), 'R3');
});

test('issue 11 (1), IPv4: -p udp is the IP header field, so UDP behind AH does not match; -m ah reads the SPI at the transport offset', () => {
  const text = '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -m udp --dport 500 -j DROP\n-A INPUT -p ah -m ah --ahspi 256 -j REJECT\nCOMMIT\n';
  assert.equal(decide(text, 4, ip4(51, ah(17, 0).slice(0, 8).concat(UDP_500))), 'R4');
  assert.equal(decide(text, 4, ip4(51, ah(17, 4, new Array(12).fill(0)).concat(UDP_500))), 'R4');
});

test('issue 11 (2): -m ah matches an AH before the fragment header of a later fragment', () => {
  const text = RULES6('-A INPUT -m ah --ahspi 256 -j DROP');
  const laterFrag = [17, 0, 0, 16, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8];
  assert.equal(decide(text, 6, ip6(51, ah(44, 4, new Array(12).fill(0)).concat(laterFrag))), 'R3');
  // With a destination-options or routing header in between.
  const dst = [51, 0, 1, 4, 0, 0, 0, 0];
  assert.equal(decide(text, 6, ip6(60, dst.concat(ah(44, 1), laterFrag))), 'R3');
  const rt = [51, 0, 0, 0, 0, 0, 0, 0];
  assert.equal(decide(text, 6, ip6(43, rt.concat(ah(44, 1), laterFrag))), 'R3');
  // A later fragment's header before AH stops the search: no match, no drop.
  const fragFirst = [51, 0, 0, 16, 0, 0, 0, 1];
  assert.equal(decide(text, 6, ip6(44, fragFirst.concat(ah(17, 1), UDP_500))), 'DEFAULT');
  // An offset-0 fragment header is walked over.
  const frag0 = [51, 0, 0, 1, 0, 0, 0, 1];
  assert.equal(decide(text, 6, ip6(44, frag0.concat(ah(17, 1), UDP_500))), 'R3');
});

test('issue 11 (3): -m ah drops an AH whose declared length runs past the packet; -p walks past it', () => {
  const cut = ip6(51, ah(30, 20, [0, 0, 0, 0]));
  assert.equal(decide(RULES6('-A INPUT -p udp -j ACCEPT', '-A INPUT -m ah --ahspi 256 -j ACCEPT'), 6, cut), 'HOTDROP');
  assert.equal(decide(RULES6('-A INPUT -p 30 -j DROP', '-A INPUT -m ah --ahspi 256 -j ACCEPT'), 6, cut), 'R3');
});

test('IPv6 -m ah at the length boundaries, as measured on the kernel', () => {
  const text = RULES6('-A INPUT -m ah --ahspi 256 -j DROP');
  // [AH bytes present, length field, kernel decision]
  const cases: [number[], Outcome][] = [
    [ah(30, 2, [0, 0, 0, 0]), 'R3'], // 16 of 16
    [ah(30, 2, [0, 0, 0, 0, 9]), 'R3'], // 16, one byte more
    [ah(30, 3, [0, 0, 0, 0]), 'HOTDROP'], // 20 declared, 16 there
    [ah(30, 3, [0, 0, 0, 0, 1, 2, 3]), 'HOTDROP'], // 20 declared, 19 there
    [ah(30, 1), 'R3'], // 12 of 12
    [ah(30, 1).slice(0, 11), 'HOTDROP'], // 11 of 12
    [ah(30, 0, [0, 0, 0, 0]), 'R3'], // 8 declared, 16 there
    [ah(30, 0).slice(0, 10), 'HOTDROP'], // 8 declared, but under the fixed 12
    [ah(30, 0).slice(0, 8), 'HOTDROP'],
  ];
  for (const [body, want] of cases) assert.equal(decide(text, 6, ip6(51, body)), want, hex(new Uint8Array(body)));
  // A complete AH followed by a header cut short, a later fragment or a cut AH: the first AH decides.
  assert.equal(decide(text, 6, ip6(51, ah(60, 1).concat([17, 5, 0, 0]))), 'R3');
  assert.equal(decide(text, 6, ip6(51, ah(44, 1).concat([17, 0, 0, 16, 0, 0, 0, 1]))), 'R3');
  assert.equal(decide(text, 6, ip6(51, ah(51, 2, [0, 0, 0, 0]).concat([17, 9, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1]))), 'R3');
  // A destination-options header before AH whose length runs past the packet: AH unreadable, dropped.
  assert.equal(decide(text, 6, ip6(60, [51, 0, 1, 4, 0, 0, 0, 0].concat(ah(30, 3, [0, 0, 0, 0])))), 'HOTDROP');
});

test('ip6tables: -p drops when ipv6_find_hdr() fails, -m ah only when its own search does', () => {
  // AH complete, then a routing header of which 1 byte is there: -p fails (drop), -m ah alone matches.
  const packet = ip6(51, ah(43, 1).concat([17]));
  assert.equal(decide(RULES6('-A INPUT -m ah --ahspi 256 -j DROP'), 6, packet), 'R3');
  assert.equal(decide(RULES6('-A INPUT -p udp -m ah --ahspi 256 -j DROP'), 6, packet), 'HOTDROP');
  // Both fail: a cut AH first.
  const both = ip6(51, [43, 9]);
  assert.equal(decide(RULES6('-A INPUT -m ah --ahspi 256 -j ACCEPT'), 6, both), 'HOTDROP');
  assert.equal(decide(RULES6('-A INPUT -p udp -j ACCEPT'), 6, both), 'HOTDROP');
});
