import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatAddress, parseIpv6, parseIpv4 } from '../src/decode/address';

test('IPv6 text is RFC 5952, with mixed notation exactly where Wireshark prints it', () => {
  // Expected strings are tshark 4.0's ipv6.src for the same addresses.
  const cases: [string, string][] = [
    ['0000000000000000000000000102030a', '::1.2.3.10'],
    ['00000000000000000000ffff0102030a', '::ffff:1.2.3.10'],
    ['0064ff9b00000000000000000102030a', '64:ff9b::102:30a'],
    ['00000000000000000000000000000001', '::1'],
    ['00000000000000000000000000000002', '::2'],
    ['00000000000000000000000000000000', '::'],
    ['0000000000000000000000000000ffff', '::ffff'],
    ['00000000000000000000ffff00000000', '::ffff:0.0.0.0'],
    ['00000000000000000000000000010000', '::0.1.0.0'],
    ['00000000000000000000000100000000', '::1:0:0'],
    ['0000000000000000ffff000001020304', '::ffff:0:102:304'],
    ['fe800000000000000200000000000001', 'fe80::200:0:0:1'],
    ['20010db8000000010000000000000001', '2001:db8:0:1::1'],
    ['20010db8000000000001000000000000', '2001:db8:0:0:1::'],
  ];
  for (const [hex, text] of cases) {
    assert.equal(formatAddress(Buffer.from(hex, 'hex')), text, hex);
    assert.deepEqual(Buffer.from(parseIpv6(text)!).toString('hex'), hex, text);
  }
});

test('address parsing refuses malformed text', () => {
  for (const bad of ['1.2.3', '1.2.3.256', '01.2.3.4', '1.2.3.4.5', '']) assert.equal(parseIpv4(bad), null, bad);
  for (const bad of ['1::2::3', ':::', '12345::', 'g::1', '1:2:3:4:5:6:7:8:9', '::1.2.3']) assert.equal(parseIpv6(bad), null, bad);
});
