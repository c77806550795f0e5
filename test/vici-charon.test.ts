/**
 * `nfsieve run --vici` against real charon daemons (root, in CI): two charons
 * in network namespaces; the gateway's `nfsieve run` follows its charon over
 * vici and learns the peer's addresses into the `gateways` set, which decides
 * whether ESP from the peer passes the queue (counted by iptables rules after
 * it). IKE SAs come up on this kernel; CHILD_SAs need ESP in the kernel and
 * fail to install, which does not matter here: the IKE SAs are what is learnt.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { Lab, Link, labSkip, sh, ruleCount, espFrame } from './support/netns';
import { ipPacket, esp } from './support/packets';
import { ROOT } from './support/compare';
import { parseAddress } from '../src/decode/address';
import { onJsonLines } from '../src/cli/output';

const labMissing = labSkip();
const charonPath = '/usr/lib/ipsec/charon';
const haveStrongswan = fs.existsSync(charonPath) && spawnSync('swanctl', ['--help']).status === 0;
if (process.env.CI === 'true' && !haveStrongswan) throw new Error('strongswan-charon and strongswan-swanctl are required in CI');
const skip = labMissing || (!haveStrongswan && 'strongSwan not installed (apt-get install strongswan-charon strongswan-swanctl)');
const BIN = path.join(ROOT, 'bin', 'nfsieve.js');
const QUEUE = '23';

let lab: Lab;
let a: Link, b: Link;
let a6 = '', b6 = '';
let dir = '';
const charons = new Map<string, ChildProcess>();
let run: { child: ChildProcess; notes: string[]; exited: Promise<unknown> };

function writeConfig(name: string, me: [string, string], peer: [string, string], ids: [string, string], socket: string): void {
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(d, 'strongswan.conf'), `charon {\n  install_routes = no\n  install_virtual_ip = no\n  retransmit_tries = 2\n  plugins {\n    vici { socket = unix://${socket} }\n  }\n  filelog { stderr { default = -1 } }\n  syslog { daemon { default = -1 } }\n}\n`);
  const conn = (cname: string, local: string, remote: string, suffix: string): string =>
    `  ${cname} {\n    version = 2\n    local_addrs = ${local}\n    remote_addrs = ${remote}\n    local {\n      auth = psk\n      id = ${ids[0]}${suffix}\n    }\n    remote {\n      auth = psk\n      id = ${ids[1]}${suffix}\n    }\n    children {\n      c {\n        local_ts = ${local}\n        remote_ts = ${remote}\n      }\n    }\n  }\n`;
  fs.writeFileSync(path.join(d, 'swanctl.conf'), `connections {\n${conn('v4', me[0], peer[0], '')}${conn('v4b', me[0], peer[0], 'b')}${conn('v6', me[1], peer[1], '6')}}\nsecrets {\n  ike-all {\n    secret = "nfsieve-vici-test"\n    id-1 = a\n    id-2 = b\n    id-3 = ab\n    id-4 = bb\n    id-5 = a6\n    id-6 = b6\n  }\n}\n`);
}

const socketOf = (name: string): string => path.join(dir, name, 'charon.vici');

function swanctl(name: string, args: string[]): string {
  const d = path.join(dir, name);
  const r = spawnSync('swanctl', [...args, '--uri', `unix://${socketOf(name)}`], { encoding: 'utf8', env: { ...process.env, STRONGSWAN_CONF: path.join(d, 'strongswan.conf') }, timeout: 30000 });
  return `${r.stdout}${r.stderr}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, fn: () => boolean, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; nfsieve notes:\n${run?.notes.join('\n')}`);
    await sleep(50);
  }
}

/** Start charon `name` in its namespace (a private /run), with its vici socket at `socket`; loads the connections. */
async function startCharon(name: string, link: Link, socket: string): Promise<void> {
  const d = path.join(dir, name);
  const child = spawn('ip', ['netns', 'exec', link.ns, 'unshare', '-m', 'sh', '-c', `mount -t tmpfs tmpfs /run && STRONGSWAN_CONF=${d}/strongswan.conf exec ${charonPath}`], { stdio: 'ignore' });
  charons.set(name, child);
  for (let t = 0; t < 100 && !fs.existsSync(socket); t++) await sleep(100);
  const r = spawnSync('swanctl', ['--load-all', '--file', path.join(d, 'swanctl.conf'), '--uri', `unix://${socket}`], { encoding: 'utf8', env: { ...process.env, STRONGSWAN_CONF: path.join(d, 'strongswan.conf') } });
  assert.match(`${r.stdout}${r.stderr}`, /successfully loaded 3 connections/, `${r.stdout}${r.stderr}`);
}

async function stopCharon(name: string): Promise<void> {
  const child = charons.get(name);
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
}

/** ESP from the peer that the queue accepted (counted by the rules after the NFQUEUE rule). */
const accepted4 = (): number => ruleCount(b.ns, 'filter', 'INPUT', 'vici-esp-accepted');
const accepted6 = (): number => ruleCount(b.ns, 'filter', 'INPUT', 'vici-esp-accepted', 'ip6tables');
const queued4 = (): number => ruleCount(b.ns, 'mangle', 'INPUT', `NFQUEUE num ${QUEUE}`);
const queued6 = (): number => ruleCount(b.ns, 'mangle', 'INPUT', `NFQUEUE num ${QUEUE}`, 'ip6tables');

function espFrame6(seq: number): Uint8Array {
  const ip = ipPacket({ family: 6, src: parseAddress(a6)!, dst: parseAddress(b6)!, proto: 50, upper: esp(0x2000, seq) });
  const mac = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));
  return new Uint8Array([...mac(b.mac), ...mac(a.mac), 0x86, 0xdd, ...ip]);
}

/** Send 10 ESP packets of a family; resolves with how many the queue accepted once all 10 reached it. */
async function espAccepted(family: 4 | 6): Promise<number> {
  const [queued, acc] = family === 4 ? [queued4, accepted4] : [queued6, accepted6];
  const q0 = queued(), a0 = acc();
  const frames = Array.from({ length: 10 }, (_, i) => (family === 4 ? espFrame(b.mac, a.mac, a.address, b.address, 0x2000, i + 1) : espFrame6(i + 1)));
  assert.equal(lab.send(a, frames), 10);
  await waitFor(`10 ESP packets (IPv${family}) queued`, () => queued() - q0 >= 10);
  await sleep(200); // their verdicts: the accepted ones go on to the counting rule
  return acc() - a0;
}

const notesMatching = (re: RegExp): string[] => run.notes.filter((n) => re.test(n));

before(async () => {
  if (skip) return;
  lab = new Lab(`nfsv${process.pid % 10000}`);
  [a, b] = lab.connect('vicia', 'vicib', 52);
  a6 = 'fd00:200:52::1'; b6 = 'fd00:200:52::2';
  for (let t = 0; t < 50 && !sh(['ip', '-br', 'link', 'show', b.ifname], { ns: b.ns }).includes(' UP '); t++) await sleep(50);
  dir = path.join(path.dirname(lab.file('x', '')), 'sw');
  writeConfig('A', [a.address, a6], [b.address, b6], ['a', 'b'], socketOf('A'));
  writeConfig('B', [b.address, b6], [a.address, a6], ['b', 'a'], socketOf('B'));
  await startCharon('A', a, socketOf('A'));
  await startCharon('B', b, socketOf('B'));
  for (const cmd of ['iptables', 'ip6tables']) {
    // The queue in mangle: an accepted packet goes on to the next hook (filter), where it is counted.
    sh([cmd, '-t', 'mangle', '-A', 'INPUT', '-p', 'esp', '-j', 'NFQUEUE', '--queue-num', QUEUE, '--queue-bypass'], { ns: b.ns });
    sh([cmd, '-A', 'INPUT', '-p', 'esp', '-m', 'comment', '--comment', 'vici-esp-accepted'], { ns: b.ns });
  }
  const policy = lab.file('learn.yaml', 'default: drop\nsets:\n  gateways:\n    type: address\n    elements: []\nrules:\n  - name: esp-from-gateways\n    src: "@gateways"\n    proto: esp\n    action: accept\n');
  const child = lab.spawn(b.ns, [process.execPath, BIN, 'run', policy, '--queue', QUEUE, '--json', '--stats-every', '0', '--vici-socket', socketOf('B')]);
  const notes: string[] = [];
  onJsonLines(child.stdout!, (o) => { if (o.event === 'note') notes.push(String(o.message)); });
  run = { child, notes, exited: new Promise((r) => child.once('exit', r)) };
  await waitFor('the first vici synchronisation', () => notes.some((n) => n.startsWith('vici: following charon')));
});

after(async () => {
  if (run && run.child.exitCode === null) {
    run.child.kill('SIGTERM');
    await run.exited;
  }
  for (const name of charons.keys()) await stopCharon(name);
  if (lab) lab.cleanup();
});

test('the peer enters the set when its IKE SA comes up and leaves when its last IKE SA is deleted', { skip }, async () => {
  assert.deepEqual(notesMatching(/^vici: following charon/), [`vici: following charon at ${socketOf('B')}: 0 IKE SA(s) up to 0 host(s) in set 'gateways' (+0 -0)`]);
  assert.equal(await espAccepted(4), 0, 'an unknown peer is refused');

  assert.match(swanctl('A', ['--initiate', '--ike', 'v4', '--child', 'c', '--timeout', '10']), /IKE_SA v4\[\d+\] established/);
  await waitFor('the peer learnt', () => notesMatching(/^vici: learnt /).length === 1);
  assert.equal(notesMatching(/^vici: learnt /)[0], `vici: learnt ${a.address} (set 'gateways')`);
  assert.equal(await espAccepted(4), 10);

  // A second IKE SA to the same host, then the first goes: the host stays.
  assert.match(swanctl('A', ['--initiate', '--ike', 'v4b', '--child', 'c', '--timeout', '10']), /IKE_SA v4b\[\d+\] established/);
  assert.match(swanctl('A', ['--terminate', '--ike', 'v4', '--timeout', '10']), /terminate completed successfully/);
  assert.equal(await espAccepted(4), 10, 'one IKE SA to the host remains up');
  assert.equal(notesMatching(/^vici: forgot /).length, 0);

  assert.match(swanctl('A', ['--terminate', '--ike', 'v4b', '--timeout', '10']), /terminate completed successfully/);
  await waitFor('the peer forgotten', () => notesMatching(/^vici: forgot /).length === 1);
  assert.equal(notesMatching(/^vici: forgot /)[0], `vici: forgot ${a.address} (set 'gateways')`);
  assert.equal(await espAccepted(4), 0);

  // IPv6: the host as charon writes it.
  assert.match(swanctl('A', ['--initiate', '--ike', 'v6', '--child', 'c', '--timeout', '10']), /IKE_SA v6\[\d+\] established/);
  await waitFor('the IPv6 peer learnt', () => notesMatching(/^vici: learnt /).length === 2);
  assert.equal(notesMatching(/^vici: learnt /)[1], `vici: learnt ${a6} (set 'gateways')`);
  assert.equal(await espAccepted(6), 10);
});

test('charon restarts: one log line for the outage, then a resynchronisation drops vanished SAs and adds new ones', { skip }, async () => {
  // State from the test above: the IPv6 SA is up, the IPv4 host is not learnt.
  await stopCharon('B');
  await waitFor('the outage noticed', () => notesMatching(/^vici: charon at .* is not reachable/).length === 1);
  // The new charon listens elsewhere until its SA is up, then its socket moves into place:
  // the reconnect finds an SA it never heard an event for, and misses the old one.
  const staging = path.join(dir, 'B', 'staging.vici');
  writeConfig('B', [b.address, b6], [a.address, a6], ['b', 'a'], staging);
  await startCharon('B', b, staging);
  await sleep(1000); // several reconnect attempts fail meanwhile (ECONNREFUSED on the dead socket)
  const r = spawnSync('swanctl', ['--initiate', '--ike', 'v4', '--child', 'c', '--timeout', '10', '--uri', `unix://${socketOf('A')}`], { encoding: 'utf8', env: { ...process.env, STRONGSWAN_CONF: path.join(dir, 'A', 'strongswan.conf') } });
  assert.match(r.stdout, /IKE_SA v4\[\d+\] established/, r.stdout + r.stderr);
  fs.renameSync(staging, socketOf('B'));
  await waitFor('the resynchronisation', () => notesMatching(/^vici: reconnected to charon/).length === 1);
  assert.equal(notesMatching(/^vici: charon at .* is not reachable/).length, 1, 'one line per outage, not per attempt');
  assert.equal(notesMatching(/^vici: reconnected to charon/)[0], `vici: reconnected to charon at ${socketOf('B')}: 1 IKE SA(s) up to 1 host(s) in set 'gateways' (+1 -1)`);
  assert.deepEqual(notesMatching(/^vici: (learnt|forgot) /).slice(-2), [`vici: learnt ${a.address} (set 'gateways')`, `vici: forgot ${a6} (set 'gateways')`]);
  assert.equal(await espAccepted(4), 10);
  assert.equal(await espAccepted(6), 0);
});
