import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ICMP_TYPES } from '../src/policy/model';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parsePolicyText, loadPolicyFile } from '../src/policy/parse';
import { definePolicy } from '../src/policy/define';
import { policyErrors as errors } from './support/policies';

test('YAML syntax errors point at FILE:LINE:COL', () => {
  const e = errors('default: drop\nrules:\n  - proto: [udp\n');
  assert.equal(e.length >= 1, true);
  assert.match(e[0], /^p\.yaml:\d+:\d+: /);
});

test('bad values are reported at the value, every one of them', () => {
  const text = [
    'default: drop',          // 1
    'rules:',                 // 2
    '  - name: a',            // 3
    '    dport: 70000',       // 4
    '    action: accept',     // 5
    '  - proto: udpx',        // 6
    '    action: drop',       // 7
    '  - src: 10.0.0.0/33',   // 8
    '    action: accept',     // 9
    '  - icmp: echo-requst',  // 10
    '    action: fly',        // 11
  ].join('\n');
  assert.deepEqual(errors(text), [
    'p.yaml:4:12: port: 70000 is out of range (0-65535)',
    "p.yaml:6:12: unknown protocol 'udpx' (use a number 0-255 or one of icmp, igmp, ipip, tcp, egp, udp, ipv6, rsvp, gre, esp, ah, icmpv6, ipv6-icmp, ospf, pim, vrrp, l2tp, sctp, mh, udplite, all)",
    "p.yaml:8:10: prefix length /33 is too long for '10.0.0.0/33' (at most 32)",
    "p.yaml:10:11: unknown icmp type 'echo-requst' (use a number or one of " + Object.keys(ICMP_TYPES).join(', ') + ')',
    "p.yaml:11:13: unknown action 'fly' (accept, drop, reject, repeat, count, {queue: N}, {mark: VALUE[/MASK], then: accept|continue|repeat})",
  ]);
});

test('structural mistakes: unknown keys, missing default and action, unknown sets, mixed set lists', () => {
  assert.deepEqual(errors('rules:\n  - proto: udp\n'), [
    "p.yaml:1:1: missing 'default' (accept, drop or reject)",
    "p.yaml:2:5: rule has no 'action'",
  ]);
  assert.deepEqual(errors('default: drop\nrules:\n  - dstport: 1\n    action: drop\n'), ["p.yaml:3:5: unknown rule key 'dstport'"]);
  assert.deepEqual(errors('default: drop\nrules:\n  - src: "@peers"\n    action: drop\n'), ["p.yaml:3:10: unknown set '@peers' (define it under sets:)"]);
  assert.deepEqual(errors('default: drop\nsets:\n  g: {type: address, elements: [10.0.0.1]}\nrules:\n  - src: ["@g", 10.0.0.2]\n    action: drop\n'),
    ['p.yaml:5:10: a list that names a set (@name) may hold only set names: put the other values in a set, or in a rule of their own']);
  assert.deepEqual(errors('default: maybe\nrules: []\n'), ['p.yaml:1:10: default must be accept, drop or reject, not "maybe"']);
});

test('JSON policies report positions too', () => {
  try {
    parsePolicyText('{\n  "default": "drop",\n  "rules": [\n    {"dport": "80-70", "action": "drop"}\n  ]\n}\n', 'p.json');
    assert.fail('accepted');
  } catch (e) {
    assert.equal((e as Error).message, 'p.json:4:15: port: range 80-70 is empty (start above end)');
  }
});

test('set files are read relative to the policy and their bad lines named', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-sets-'));
  try {
    fs.writeFileSync(path.join(dir, 'gw.txt'), '# peers\n192.0.2.1\n192.0.2.300\n');
    fs.writeFileSync(path.join(dir, 'p.yaml'), 'default: drop\nsets:\n  gw:\n    file: gw.txt\nrules:\n  - src: "@gw"\n    action: accept\n');
    assert.throws(() => loadPolicyFile(path.join(dir, 'p.yaml')), (e: Error) => e.message === `${path.join(dir, 'p.yaml')}:4:11: ${path.join(dir, 'gw.txt')}:3: bad IPv4 address '192.0.2.300'`);
    fs.writeFileSync(path.join(dir, 'gw.txt'), '192.0.2.1\n2001:db8::/32\n');
    const p = loadPolicyFile(path.join(dir, 'p.yaml'));
    assert.equal(p.sets.get('gw')!.addresses.length, 2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('policies built in code get the same checks, with paths instead of lines', () => {
  assert.throws(() => definePolicy({ default: 'drop', rules: [{ dport: '1-0', action: 'drop' }] }), { message: '<code>: rules[0].dport: port: range 1-0 is empty (start above end)' });
  const p = definePolicy({ default: 'drop', rules: [{ name: 'ike', proto: 'udp', dport: [500, 4500], action: 'accept' }] });
  assert.equal(p.rules[0].name, 'ike');
});

test('a file that is not a policy by its name is refused before reading', () => {
  assert.throws(() => loadPolicyFile('rules.txt'), { message: 'rules.txt: a policy file ends in .yaml, .yml or .json (iptables-save files need --iptables)' });
});
