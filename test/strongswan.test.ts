/**
 * Real IKE from strongSwan (root, in CI): two charon daemons in network
 * namespaces negotiate IKEv2 (moving to UDP 4500), IKEv2 with forced UDP
 * encapsulation, and IKEv1 Main and Quick Mode; the capture of that traffic
 * is decoded by `nfsieve inspect` and compared with tshark, field by field.
 * (CHILD_SAs cannot be installed on this kernel; the IKE SAs come up.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { Lab, Link, labSkip, sh, TOOLS } from './support/netns';
import { exited, outputContains } from './support/child';
import { haveTshark, compareFile, inspectJson } from './support/tshark';

const labMissing = labSkip([TOOLS.tcpdump]);
const charonPath = '/usr/lib/ipsec/charon';
const haveStrongswan = fs.existsSync(charonPath) && spawnSync('swanctl', ['--help']).status === 0;
if (process.env.CI === 'true' && (!haveStrongswan || !haveTshark())) throw new Error('strongswan-charon, strongswan-swanctl and tshark are required in CI');
const skip = labMissing || (!haveStrongswan && 'strongSwan not installed (apt-get install strongswan-charon strongswan-swanctl)') || (!haveTshark() && 'tshark not installed (apt-get install tshark)');

let lab: Lab;
let a: Link, b: Link;
const daemons: ChildProcess[] = [];
let dir = '';

function config(name: string, me: string, peer: string, ids: [string, string]): void {
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(d, 'strongswan.conf'), `charon {\n  install_routes = no\n  install_virtual_ip = no\n  retransmit_tries = 2\n  plugins {\n    vici { socket = unix://${d}/charon.vici }\n  }\n  filelog { stderr { default = -1 } }\n  syslog { daemon { default = -1 } }\n}\n`);
  const conn = (cname: string, version: number, suffix: string, extra = ''): string =>
    `  ${cname} {\n    version = ${version}\n${extra}    local_addrs = ${me}\n    remote_addrs = ${peer}\n    local {\n      auth = psk\n      id = ${ids[0]}${suffix}\n    }\n    remote {\n      auth = psk\n      id = ${ids[1]}${suffix}\n    }\n    children {\n      c {\n        local_ts = ${me}/32\n        remote_ts = ${peer}/32\n      }\n    }\n  }\n`;
  fs.writeFileSync(path.join(d, 'swanctl.conf'), `connections {\n${conn('v2', 2, '')}${conn('v2natt', 2, 'n', '    encap = yes\n')}${conn('v1', 1, '1')}}\nsecrets {\n  ike-all {\n    secret = "nfsieve-test-secret"\n    id-1 = a\n    id-2 = b\n    id-3 = an\n    id-4 = bn\n    id-5 = a1\n    id-6 = b1\n  }\n}\n`);
}

function swanctl(name: string, args: string[]): string {
  const d = path.join(dir, name);
  const r = spawnSync('swanctl', [...args, '--uri', `unix://${d}/charon.vici`], { encoding: 'utf8', env: { ...process.env, STRONGSWAN_CONF: path.join(d, 'strongswan.conf') }, timeout: 30000 });
  return `${r.stdout}${r.stderr}`;
}

before(async () => {
  if (skip) return;
  lab = new Lab(`nfss${process.pid % 10000}`);
  [a, b] = lab.connect('ikea', 'ikeb', 51);
  // A veth pair reports carrier a moment after it is set up.
  for (let t = 0; t < 50 && !sh(['ip', '-br', 'link', 'show', b.ifname], { ns: b.ns }).includes(' UP '); t++) await new Promise((r) => setTimeout(r, 50));
  dir = lab.file('strongswan', '') && path.join(path.dirname(lab.file('x', '')), 'sw');
  config('A', a.address, b.address, ['a', 'b']);
  config('B', b.address, a.address, ['b', 'a']);
  for (const [name, link] of [['A', a], ['B', b]] as const) {
    const d = path.join(dir, name);
    const child = spawn('ip', ['netns', 'exec', link.ns, 'unshare', '-m', 'sh', '-c', `mount -t tmpfs tmpfs /run && STRONGSWAN_CONF=${d}/strongswan.conf exec ${charonPath}`], { stdio: 'ignore' });
    daemons.push(child);
  }
  for (let t = 0; t < 50 && !(fs.existsSync(path.join(dir, 'A', 'charon.vici')) && fs.existsSync(path.join(dir, 'B', 'charon.vici'))); t++) await new Promise((r) => setTimeout(r, 100));
  for (const name of ['A', 'B']) {
    const out = swanctl(name, ['--load-all', '--file', path.join(dir, name, 'swanctl.conf')]);
    assert.match(out, /successfully loaded 3 connections/, out);
  }
});

after(() => {
  for (const d of daemons) d.kill('SIGKILL');
  if (lab) lab.cleanup();
});

test('inspect agrees with tshark on real IKEv1 and IKEv2 exchanges from strongSwan', { skip }, async () => {
  const capture = path.join(dir, 'ike.pcap');
  const dump = spawn('ip', ['netns', 'exec', b.ns, 'tcpdump', '--immediate-mode', '-i', b.ifname, '-U', '-w', capture, 'udp'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let dumpErr = '';
  dump.stderr!.on('data', (d) => { dumpErr += d; });
  await outputContains(dump, dump.stderr!, 'listening');
  for (const ike of ['v2', 'v2natt', 'v1']) {
    const out = swanctl('A', ['--initiate', '--ike', ike, '--child', 'c', '--timeout', '10']);
    assert.match(out, /IKE_SA .* established/, `${ike}: ${out.slice(-500)}`);
  }
  swanctl('A', ['--terminate', '--ike', 'v2', '--timeout', '5']);
  await new Promise((r) => setTimeout(r, 500));
  dump.kill('SIGINT');
  await exited(dump);
  const size = fs.statSync(capture).size;
  assert.ok(size > 24, `nothing captured on ${b.ifname} (${size} bytes): ${dumpErr}`);
  const packets = inspectJson(capture);
  const ike = packets.filter((p) => p.ike !== null);
  // IKE_SA_INIT, IKE_AUTH (behind the non-ESP marker on 4500), IKEv1 Main and Quick Mode, INFORMATIONAL.
  assert.ok(ike.some((p) => p.ike.version === 2 && p.ike.exchange === 34 && p.natt === null));
  assert.ok(ike.some((p) => p.ike.version === 2 && p.ike.exchange === 35 && p.natt === 'ike'));
  assert.ok(ike.some((p) => p.ike.version === 1 && p.ike.exchange === 2));
  assert.ok(ike.some((p) => p.ike.version === 1 && p.ike.exchange === 32));
  assert.ok(ike.some((p) => p.ike.version === 2 && p.ike.exchange === 37));
  assert.deepEqual(compareFile(capture), []);
});
