/**
 * The control socket without root: the request parser, a Classifier-backed
 * server (the same ControlService and ControlServer `run` uses) driven by the
 * real CLI commands, malformed and oversize requests, permissions, the state
 * file, and `nfsieve updown` with the environments strongSwan and Libreswan set.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { ROOT } from './support/compare';
import { parseRequest, ControlError, MAX_LINE_BYTES } from '../src/control/protocol';
import { readState, writeState, StateError, recordPeer, emptyState } from '../src/control/state';
import { Classifier } from '../src/classifier';
import { ControlService } from '../src/control/service';
import { updownAction } from '../src/cli/updown';

const BIN = path.join(ROOT, 'bin', 'nfsieve.js');
const SERVER = path.join(ROOT, 'build-test', 'test', 'support', 'control-server.js');
const POLICY = `
default: drop
sets:
  gateways:
    elements: [10.1.0.1, 10.2.0.0/16]
  spis:
    type: spi
    elements: [256, 1000-2000]
rules:
  - name: gw
    src: "@gateways"
    action: accept
  - name: esp
    spi: "@spis"
    action: accept
`;

let dir: string;
let policy: string;
let server: ChildProcess;
let sock: string;

function startServer(socket: string, state?: string, env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, [SERVER, policy, socket, ...(state ? [state] : [])], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d) => { err += d; });
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`control server exited ${code}: ${err}`)));
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NFSIEVE_CONTROL: sock, ...env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Send raw lines on one connection; resolve with the response lines once `count` arrived. */
function converse(socket: string, payload: string | Buffer, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socket);
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(payload));
    s.on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n').slice(0, -1).filter(Boolean);  // complete lines only
      if (lines.length >= count) { s.destroy(); resolve(lines.slice(0, count)); }
    });
    s.on('error', reject);
  });
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-control-'));
  policy = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policy, POLICY);
  sock = path.join(dir, 'ctl', 'nfsieve.sock');
  server = await startServer(sock);
});

after(async () => {
  await stop(server);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('parseRequest: sound requests parse, every fault is an error with its code, never a throw', () => {
  const ok = parseRequest('{"v":1,"id":7,"cmd":"set.add","set":"gateways","values":["10.0.0.1",5],"timeout":30}');
  assert.ok(!(ok instanceof ControlError));
  assert.deepEqual(ok, { v: 1, id: 7, cmd: 'set.add', set: 'gateways', values: ['10.0.0.1', 5], timeout: 30 });
  assert.deepEqual(parseRequest('{"v":1,"cmd":"set.flush","set":"g"}'), { v: 1, id: null, cmd: 'set.flush', set: 'g', origin: 'live' });
  assert.deepEqual(parseRequest('{"v":1,"cmd":"set.del","set":"g","values":["1.2.3.4"]}'), { v: 1, id: null, cmd: 'set.del', set: 'g', values: ['1.2.3.4'], origin: 'all' });
  const cases: [string, string][] = [
    ['not json', 'bad-json'],
    ['[1,2]', 'bad-request'],
    ['null', 'bad-request'],
    ['{"cmd":"ping"}', 'unsupported-version'],
    ['{"v":2,"cmd":"ping"}', 'unsupported-version'],
    ['{"v":1,"cmd":"set.explode"}', 'unknown-command'],
    ['{"v":1,"cmd":5}', 'bad-request'],
    ['{"v":1,"id":{},"cmd":"ping"}', 'bad-request'],
    ['{"v":1,"cmd":"set.add","set":"g","values":[]}', 'bad-request'],
    ['{"v":1,"cmd":"set.add","set":"g","values":"10.0.0.1"}', 'bad-request'],
    ['{"v":1,"cmd":"set.add","set":"g","values":[{}]}', 'bad-request'],
    ['{"v":1,"cmd":"set.add","set":"g","values":[-1]}', 'bad-request'],
    ['{"v":1,"cmd":"set.add","set":"g","values":["a"],"timeout":1.5}', 'bad-request'],
    ['{"v":1,"cmd":"set.add","set":"","values":["a"]}', 'bad-request'],
    ['{"v":1,"cmd":"set.flush","set":"g","origin":"kernel"}', 'bad-request'],
    ['{"v":1,"cmd":"set.test","set":"g"}', 'bad-request'],
    ['{"v":1,"cmd":"peer.up","set":"g","peer":"10.0.0.1"}', 'bad-request'],
    [`{"v":1,"cmd":"ping","pad":"${'x'.repeat(MAX_LINE_BYTES)}"}`, 'line-too-long'],
  ];
  for (const [line, code] of cases) {
    const r = parseRequest(line);
    assert.ok(r instanceof ControlError, line.slice(0, 80));
    assert.equal(r.code, code, line.slice(0, 80));
  }
  assert.equal((parseRequest('{"v":1,"id":"a","cmd":"nope"}') as ControlError).id, 'a');
});

test('set add / test / list / del / flush through the CLI against a running server', () => {
  assert.equal(cli(['set', 'add', 'gateways', '10.9.9.9', '10.8.0.0/24', '--timeout', '300']).code, 0);
  assert.equal(cli(['set', 'test', 'gateways', '10.9.9.9']).code, 0);
  assert.equal(cli(['set', 'test', 'gateways', '10.8.0.77']).code, 0, 'inside a member prefix');
  assert.equal(cli(['set', 'test', 'gateways', '10.2.3.0/24']).code, 0, 'a prefix inside a member prefix');
  assert.equal(cli(['set', 'test', 'gateways', '10.2.0.0/15']).code, 1, 'a prefix wider than the member');
  assert.equal(cli(['set', 'test', 'gateways', '10.7.7.7']).code, 1);
  assert.equal(cli(['set', 'test', 'spis', '1500']).code, 0);
  const list = JSON.parse(cli(['set', 'list', 'gateways', '--json']).stdout);
  assert.equal(list.length, 1);
  const byValue = new Map<string, { origins: string[]; timeout: number | null }>(list[0].members.map((m: { value: string }) => [m.value, m]));
  assert.deepEqual(byValue.get('10.1.0.1'), { value: '10.1.0.1', origins: ['file'], timeout: null });
  assert.deepEqual(byValue.get('10.9.9.9')!.origins, ['live']);
  assert.ok(byValue.get('10.9.9.9')!.timeout! > 250 && byValue.get('10.9.9.9')!.timeout! <= 300);
  assert.deepEqual([list[0].file, list[0].live], [2, 2]);
  // del removes whatever the origin: a file member stops matching at once.
  assert.equal(cli(['set', 'del', 'gateways', '10.1.0.1']).code, 0);
  assert.equal(cli(['set', 'test', 'gateways', '10.1.0.1']).code, 1);
  assert.equal(cli(['set', 'flush', 'gateways']).code, 0);  // --live by default
  assert.equal(cli(['set', 'test', 'gateways', '10.9.9.9']).code, 1);
  assert.equal(cli(['set', 'test', 'gateways', '10.2.1.1']).code, 0, 'file members stay after flush --live');
  assert.equal(cli(['set', 'flush', 'gateways', '--file']).code, 0);
  assert.equal(cli(['set', 'test', 'gateways', '10.2.1.1']).code, 1);
  const human = cli(['set', 'list']);
  assert.match(human.stdout, /set gateways \(address\): 0 members/);
  assert.match(human.stdout, /set spis \(spi\): 2 members/);
});

test('refusals: unknown set, bad value, usage errors; exit codes 1 and 2', () => {
  const unknown = cli(['set', 'add', 'nope', '10.0.0.1']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no set named 'nope'.*unknown-set/);
  assert.equal(cli(['set', 'add', 'gateways', 'banana']).code, 1);
  assert.equal(cli(['set', 'add', 'gateways', '10.0.0.1', '--timeout', '-3']).code, 2);
  assert.equal(cli(['set', 'test', 'nope', '10.0.0.1']).code, 2, 'a refused test is an error, not "no"');
  assert.equal(cli(['set', 'test', 'gateways']).code, 2);
  assert.equal(cli(['set', 'frobnicate', 'gateways']).code, 2);
  assert.equal(cli(['set', 'flush', 'gateways', '--live', '--all']).code, 2);
  // A refused multi-value add changes nothing.
  assert.equal(cli(['set', 'add', 'gateways', '10.44.0.1', 'banana']).code, 1);
  assert.equal(cli(['set', 'test', 'gateways', '10.44.0.1']).code, 1);
});

test('no daemon: exactly "no nfsieve run is listening on PATH" and exit 2, for every client command', () => {
  const nowhere = path.join(dir, 'nobody.sock');
  for (const args of [['set', 'test', 'gateways', '10.0.0.1'], ['set', 'add', 'gateways', '10.0.0.1'], ['set', 'list'], ['stats'], ['reload']]) {
    const r = cli([...args, '--control', nowhere]);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stderr, `no nfsieve run is listening on ${nowhere}\n`);
  }
  // NFSIEVE_CONTROL is the default for every command; a socket file nobody listens on counts as nobody.
  const r = cli(['stats'], { NFSIEVE_CONTROL: nowhere });
  assert.equal(r.stderr, `no nfsieve run is listening on ${nowhere}\n`);
  const stale = path.join(dir, 'stale.sock');
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`]);
  const s = cli(['stats'], { NFSIEVE_CONTROL: stale });
  assert.equal(s.code, 2);
  assert.equal(s.stderr, `no nfsieve run is listening on ${stale}\n`);
});

test('1,000 malformed requests get 1,000 error responses; the connection and the server stay up', async () => {
  const junk: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const k = i % 8;
    junk.push(k === 0 ? '{' : k === 1 ? `{"v":1,"cmd":"set.add","set":"gateways","values":[${i}]}` : k === 2 ? '"str"'
      : k === 3 ? `{"v":1,"id":${i},"cmd":"bogus${i}"}` : k === 4 ? '{"v":1,"cmd":"set.test","set":"nope","value":"1.2.3.4"}'
      : k === 5 ? `{"v":1,"cmd":"set.add","set":"gateways","values":["300.1.1.${i % 250}"]}` : k === 6 ? '\u0000\u00ff{]' : '{"v":1,"cmd":"set.flush","set":"spis","origin":7}');
  }
  const answers = await converse(sock, junk.join('\n') + '\n{"v":1,"id":"last","cmd":"ping"}\n', 1001);
  for (let i = 0; i < 1000; i++) {
    const r = JSON.parse(answers[i]);
    assert.equal(r.ok, false, junk[i]);
    assert.equal(typeof r.error.code, 'string');
  }
  assert.deepEqual(JSON.parse(answers[1000]), { v: 1, id: 'last', ok: true, pong: true });
  assert.equal(server.exitCode, null);
});

test('an oversize line is answered with line-too-long, skipped to the next newline, and the connection goes on', async () => {
  const big = Buffer.alloc(MAX_LINE_BYTES + 5000, 'a'.charCodeAt(0));
  const answers = await converse(sock, Buffer.concat([big, Buffer.from('\n{"v":1,"id":1,"cmd":"ping"}\n')]), 2);
  assert.equal(JSON.parse(answers[0]).error.code, 'line-too-long');
  assert.deepEqual(JSON.parse(answers[1]), { v: 1, id: 1, ok: true, pong: true });
});

test('the socket is mode 0600; another user (uid 65534) is refused', { skip: process.getuid?.() !== 0 && 'needs root to act as another user' }, () => {
  assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
  fs.chmodSync(path.dirname(sock), 0o755);
  fs.chmodSync(dir, 0o755);
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'set', 'test', 'gateways', '10.2.0.1', '--control', sock], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /permission denied/);
});

test('--control-group: mode 0660 and the group', async () => {
  const gsock = path.join(dir, 'group.sock');
  const child = await startServer(gsock, undefined, { CONTROL_GROUP: String(process.getgid?.() ?? 0) });
  try {
    const st = fs.statSync(gsock);
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.gid, process.getgid?.());
  } finally {
    await stop(child);
  }
});

test('a stale socket file is replaced; a live one is an error naming it', async () => {
  const ssock = path.join(dir, 'stale2.sock');
  // A socket file nobody listens on: a process that bound it and died.
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(ssock)}, () => process.exit(0))`]);
  assert.ok(fs.lstatSync(ssock).isSocket());
  const first = await startServer(ssock);
  try {
    await assert.rejects(startServer(ssock), new RegExp(`another nfsieve run is listening on ${ssock.replace(/[.]/g, '\\.')}`));
    assert.equal(cli(['set', 'test', 'gateways', '10.2.0.1', '--control', ssock]).code, 0, 'the first server still answers');
  } finally {
    await stop(first);
  }
});

test('state file: atomic writes, corrupt files refused with a clear message, restore skips what no longer fits', () => {
  const file = path.join(dir, 'state', 'live.json');
  assert.equal(readState(file), null);
  const st = emptyState();
  assert.equal(recordPeer(st, true, 'gateways', '10.5.0.1', 'a'), true);
  assert.equal(recordPeer(st, true, 'gateways', '10.5.0.1', 'b'), false);
  assert.equal(recordPeer(st, false, 'gateways', '10.5.0.1', 'a'), false, 'SA b still up');
  st.sets.gone = [{ value: '10.0.0.1', expires: null }];
  st.sets.spis = [{ value: '10.0.0.1', expires: null }, { value: '77', expires: Date.now() + 60_000 }, { value: '78', expires: Date.now() - 1 }];
  writeState(file, st);
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['live.json'], 'no temporary file left');
  assert.deepEqual(readState(file), st);
  const c = Classifier.fromPolicy({ default: 'drop', sets: { gateways: { elements: ['10.1.0.1'] }, spis: { type: 'spi', elements: [256] } }, rules: [{ src: '@gateways', action: 'accept' }] });
  const warnings = new ControlService({ sets: c }).restore(readState(file)!);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0], /set 'gone' is not in the policy/);
  assert.match(warnings[1], /set 'spis': '10\.0\.0\.1' skipped/);
  assert.ok(c.testSet('gateways', '10.5.0.1'));
  assert.ok(c.testSet('spis', 77));
  assert.ok(!c.testSet('spis', 78), 'expired while down: not restored');
  const t = c.listSet('spis').find((m) => m.value === '77')!;
  assert.ok(t.timeout! > 50 && t.timeout! <= 60);
  for (const text of ['{', '[]', '{"version":9,"sets":{}}', '{"version":1,"sets":{"g":[{"value":1}]}}', '{"version":1,"sets":{},"peers":{"g":{"1.2.3.4":[5]}}}']) {
    fs.writeFileSync(file, text);
    assert.throws(() => readState(file), (e: Error) => e instanceof StateError && e.message.startsWith(`state file ${file}: `), text);
  }
});

test('a server with --state keeps live members and peers across a restart', async () => {
  const ssock = path.join(dir, 'state.sock');
  const state = path.join(dir, 'restart.json');
  let child = await startServer(ssock, state);
  try {
    assert.equal(cli(['set', 'add', 'gateways', '10.66.0.1', '--control', ssock]).code, 0);
    assert.equal(cli(['updown', '--control', ssock], { PLUTO_VERB: 'up-host', PLUTO_PEER: '10.67.0.1', PLUTO_UNIQUEID: '1', PLUTO_REQID: '1' }).code, 0);
    assert.equal(cli(['updown', '--control', ssock], { PLUTO_VERB: 'up-host', PLUTO_PEER: '10.67.0.1', PLUTO_UNIQUEID: '2', PLUTO_REQID: '2' }).code, 0);
  } finally {
    await stop(child);
  }
  child = await startServer(ssock, state);
  try {
    assert.equal(cli(['set', 'test', 'gateways', '10.66.0.1', '--control', ssock]).code, 0);
    assert.equal(cli(['set', 'test', 'gateways', '10.67.0.1', '--control', ssock]).code, 0);
    // The SA count survived too: one down leaves the peer in, the second takes it out.
    assert.equal(cli(['updown', '--control', ssock], { PLUTO_VERB: 'down-host', PLUTO_PEER: '10.67.0.1', PLUTO_UNIQUEID: '1', PLUTO_REQID: '1' }).code, 0);
    assert.equal(cli(['set', 'test', 'gateways', '10.67.0.1', '--control', ssock]).code, 0);
    assert.equal(cli(['updown', '--control', ssock], { PLUTO_VERB: 'down-host', PLUTO_PEER: '10.67.0.1', PLUTO_UNIQUEID: '2', PLUTO_REQID: '2' }).code, 0);
    assert.equal(cli(['set', 'test', 'gateways', '10.67.0.1', '--control', ssock]).code, 1);
  } finally {
    await stop(child);
  }
});

// The variables the daemons set (strongSwan: src/_updown/_updown.in and the
// updown plugin; Libreswan: programs/_updown.xfrm and the kernel updown call).
const STRONGSWAN = (verb: string, peer: string, uniqueid: string, reqid: string): NodeJS.ProcessEnv => ({
  PLUTO_VERSION: '1.1', PLUTO_VERB: verb, PLUTO_CONNECTION: 'gw-gw', PLUTO_INTERFACE: 'eth0', PLUTO_REQID: reqid, PLUTO_UNIQUEID: uniqueid,
  PLUTO_PROTO: 'esp', PLUTO_ME: '10.1.0.2', PLUTO_MY_ID: 'moon', PLUTO_MY_CLIENT: '10.1.0.0/16', PLUTO_MY_PORT: '0', PLUTO_MY_PROTOCOL: '0',
  PLUTO_PEER: peer, PLUTO_PEER_ID: 'sun', PLUTO_PEER_CLIENT: '10.2.0.0/16', PLUTO_PEER_PORT: '0', PLUTO_PEER_PROTOCOL: '0',
});
const LIBRESWAN = (verb: string, peer: string, conn: string, reqid: string): NodeJS.ProcessEnv => ({
  PLUTO_VERSION: '2.0', PLUTO_VERB: verb, PLUTO_CONNECTION: conn, PLUTO_CONNECTION_TYPE: 'tunnel', PLUTO_INTERFACE: 'eth0', PLUTO_NEXT_HOP: peer,
  PLUTO_ME: '10.1.0.2', PLUTO_MY_ID: '@west', PLUTO_MY_CLIENT: '10.1.0.0/16', PLUTO_PEER: peer, PLUTO_PEER_ID: '@east',
  PLUTO_PEER_CLIENT: '10.2.0.0/16', PLUTO_SA_REQID: reqid, PLUTO_SA_TYPE: 'ESP', PLUTO_STACK: 'xfrm', PLUTO_CONN_POLICY: 'RSASIG+ENCRYPT+TUNNEL+PFS',
});

test('updownAction: every verb of both daemons', () => {
  for (const v of ['up-host', 'up-client', 'up-host-v6', 'up-client-v6']) assert.equal((updownAction(STRONGSWAN(v, '10.0.0.1', '3', '7')) as { up: boolean }).up, true, v);
  for (const v of ['down-host', 'down-client', 'down-host-v6', 'down-client-v6']) assert.equal((updownAction(STRONGSWAN(v, '10.0.0.1', '3', '7')) as { up: boolean }).up, false, v);
  for (const v of ['prepare-host', 'prepare-client', 'route-host', 'route-client-v6', 'unroute-host', 'unroute-client']) assert.equal(updownAction(LIBRESWAN(v, '10.0.0.1', 'c', '1')), null, v);
  assert.deepEqual(updownAction(STRONGSWAN('up-client', '10.0.0.1', '3', '7')), { up: true, peer: '10.0.0.1', sa: '3/7' });
  assert.deepEqual(updownAction(LIBRESWAN('up-client', '10.0.0.1', 'west-east', '16388')), { up: true, peer: '10.0.0.1', sa: 'west-east/16388' });
  assert.equal(updownAction({ PLUTO_VERB: 'update-host', PLUTO_PEER: '10.0.0.1' }), 'ignoring PLUTO_VERB=update-host');
  assert.throws(() => updownAction({}), /PLUTO_VERB is not set/);
  assert.throws(() => updownAction({ PLUTO_VERB: 'up-host', PLUTO_UNIQUEID: '1' }), /without PLUTO_PEER/);
});

test('nfsieve updown against a server: strongSwan and Libreswan environments, two SAs to one peer, IPv6', () => {
  const t = (peer: string): number => cli(['set', 'test', 'gateways', peer]).code;
  // strongSwan: two CHILD_SAs of one IKE SA (one PLUTO_UNIQUEID, two reqids).
  assert.equal(cli(['updown'], STRONGSWAN('up-client', '10.70.0.1', '5', '1')).code, 0);
  assert.equal(t('10.70.0.1'), 0);
  assert.equal(cli(['updown'], STRONGSWAN('up-client', '10.70.0.1', '5', '2')).code, 0);
  assert.equal(cli(['updown'], STRONGSWAN('down-client', '10.70.0.1', '5', '1')).code, 0);
  assert.equal(t('10.70.0.1'), 0, 'the second SA is still up');
  assert.equal(cli(['updown'], STRONGSWAN('down-client', '10.70.0.1', '5', '2')).code, 0);
  assert.equal(t('10.70.0.1'), 1);
  // Libreswan: two connections to one peer.
  assert.equal(cli(['updown'], LIBRESWAN('up-host', '10.71.0.1', 'west-east', '16385')).code, 0);
  assert.equal(cli(['updown'], LIBRESWAN('up-host', '10.71.0.1', 'west-east-2', '16389')).code, 0);
  assert.equal(cli(['updown'], LIBRESWAN('down-host', '10.71.0.1', 'west-east', '16385')).code, 0);
  assert.equal(t('10.71.0.1'), 0);
  assert.equal(cli(['updown'], LIBRESWAN('down-host', '10.71.0.1', 'west-east-2', '16389')).code, 0);
  assert.equal(t('10.71.0.1'), 1);
  // IPv6 verbs; ignored verbs touch nothing.
  assert.equal(cli(['updown'], STRONGSWAN('up-host-v6', 'fd00::71', '9', '1')).code, 0);
  assert.equal(t('fd00::71'), 0);
  assert.equal(cli(['updown'], STRONGSWAN('down-host-v6', 'fd00:0::71', '9', '1')).code, 0);
  assert.equal(t('fd00::71'), 1);
  for (const v of ['prepare-host', 'route-client', 'unroute-client-v6']) assert.equal(cli(['updown'], LIBRESWAN(v, '10.72.0.1', 'c', '1')).code, 0);
  assert.equal(t('10.72.0.1'), 1);
  // A file member stays when its live origin goes (updown removes only what it added).
  assert.equal(cli(['set', 'add', 'spis', '256']).code, 0);
  assert.equal(cli(['updown', '--set', 'gateways'], STRONGSWAN('up-host', '10.2.9.9', '11', '1')).code, 0);
  assert.equal(cli(['updown', '--set', 'gateways'], STRONGSWAN('down-host', '10.2.9.9', '11', '1')).code, 0);
  // Errors: unknown set -> 1, bad peer -> 1.
  assert.equal(cli(['updown', '--set', 'nope'], STRONGSWAN('up-host', '10.73.0.1', '1', '1')).code, 1);
  assert.equal(cli(['updown'], STRONGSWAN('up-host', 'not-an-ip', '1', '1')).code, 1);
});

test('updown with no run listening: one line, non-zero, and with --state the change waits in the state file', () => {
  const nowhere = path.join(dir, 'absent.sock');
  const state = path.join(dir, 'offline.json');
  const t0 = Date.now();
  const r = cli(['updown', '--control', nowhere, '--state', state], STRONGSWAN('up-host', '10.80.0.1', '4', '1'));
  assert.equal(r.code, 2);
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1);
  assert.match(r.stderr, new RegExp(`no nfsieve run is listening on ${nowhere.replace(/[.]/g, '\\.')}; recorded in`));
  assert.ok(Date.now() - t0 < 5000);
  assert.deepEqual(readState(state)!.sets.gateways, [{ value: '10.80.0.1', expires: null }]);
  assert.equal(cli(['updown', '--control', nowhere, '--state', state], STRONGSWAN('down-host', '10.80.0.1', '4', '1')).code, 2);
  assert.deepEqual(readState(state)!.sets.gateways, []);
});

test('a large answer (a set list of 20,000 members, over 1 MiB) is delivered whole', async () => {
  const lines: string[] = [];
  for (let k = 0; k < 5; k++) {
    const values = Array.from({ length: 4000 }, (_, i) => `10.${100 + k}.${i >> 8}.${i & 255}`);
    lines.push(JSON.stringify({ v: 1, id: k, cmd: 'set.add', set: 'gateways', values, timeout: 600 }));
  }
  lines.push(JSON.stringify({ v: 1, id: 'list', cmd: 'set.list', set: 'gateways' }));
  const answers = await converse(sock, lines.join('\n') + '\n', 6);
  for (let k = 0; k < 5; k++) assert.equal(JSON.parse(answers[k]).added, 4000);
  assert.ok(answers[5].length > 1 << 20);
  const listed = JSON.parse(answers[5]).sets[0];
  assert.equal(listed.live, 20000);
  assert.equal(listed.members.filter((m: { timeout: number | null }) => m.timeout !== null).length, 20000);
  assert.equal((await converse(sock, '{"v":1,"cmd":"set.flush","set":"gateways"}\n', 1)).length, 1);
});
