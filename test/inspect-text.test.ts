/**
 * `nfsieve inspect` text against `tcpdump -n` on every fixture capture: ARP
 * and ESP lines are tcpdump's own words, and every "length N" agrees.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, PCAPS, fixtureCaptures } from './support/compare';
import { toolSkip, TOOLS } from './support/netns';

const BIN = path.join(ROOT, 'bin', 'nfsieve.js');
const skip = toolSkip([TOOLS.tcpdump]);

function lines(cmd: string, args: string[]): string[] {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' }, maxBuffer: 1 << 26 });
  return r.stdout.split('\n').filter((l) => l !== '');
}

test('inspect text agrees with tcpdump -n: ARP and ESP lines word for word, every length', { skip }, () => {
  let arp = 0, esp = 0, lengths = 0;
  for (const name of fixtureCaptures()) {
    const file = path.join(PCAPS, name);
    const theirs = lines('tcpdump', ['-nr', file]);
    const ours = lines(process.execPath, [BIN, 'inspect', file]).map((l) => l.replace(/^\d+ /, ''));
    assert.equal(ours.length, theirs.length, name);
    ours.forEach((o, i) => {
      const t = theirs[i];
      if (/ ARP, (Request|Reply) /.test(t)) { assert.equal(o, t, `${name} frame ${i}`); arp++; }
      if (/ > \S+: (UDP-encap: )?ESP\(spi=0x[0-9a-f]+,seq=0x[0-9a-f]+\), length \d+$/.test(t)) { assert.equal(o, t, `${name} frame ${i}`); esp++; }
      // tcpdump ends a tunnelled packet (IPv6 in IPv6...) with the inner length; we describe the outer one.
      const tunnelled = t.split(' > ').length > 2;
      const tl = tunnelled ? null : /, length (\d+)$/.exec(t);
      const ol = /, length (\d+)(?: \[malformed: [^\]]+\])?$/.exec(o);
      if (tl && ol) { assert.equal(ol[1], tl[1], `${name} frame ${i}: ${o} / ${t}`); lengths++; }
    });
  }
  assert.ok(arp >= 2 && esp >= 30 && lengths >= 100, `compared ${arp} ARP, ${esp} ESP lines, ${lengths} lengths`);
});

test('ICMP and ICMPv6 types are named as tcpdump names them', () => {
  const out = lines(process.execPath, [BIN, 'inspect', path.join(PCAPS, 'icmpv6.pcap')]);
  assert.match(out[0], /: ICMP6, router advertisement, length 176$/);
  assert.match(out[1], /: ICMP6, multicast listener report v2, length 28$/);
  const ping = lines(process.execPath, [BIN, 'explain', path.join(ROOT, 'examples', 'freeswan-gateway.yaml'), '--hex', '4500001c00000000400100000808080 8c000020108000000000000 00'.replace(/ /g, '')]);
  assert.match(ping[0], /^packet: IP 8\.8\.8\.8 > 192\.0\.2\.1: ICMP echo request, length 8$/);
});
