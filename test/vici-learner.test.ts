/**
 * The vici learner's behaviour against a scripted server (no root): the
 * bookkeeping of IKE SAs per host, events arriving in the middle of a
 * list-sas, rekeys, reconnects with backoff and one log line per outage, a
 * server that sends garbage, and a Classifier as the target (file members stay).
 * (The wire format against real charon: vici-charon.test.ts.)
 */
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { IkeSaTracker } from '../src/ike/ike-sas';
import { startVici, ViciLearner, LearnTarget } from '../src/ike/vici';
import {
  SegmentReader, decodePacket, encodePacket, ViciInput,
  CMD_REQUEST, CMD_RESPONSE, EVENT_REGISTER, EVENT_UNREGISTER, EVENT_CONFIRM, EVENT,
} from '../src/ike/vici-message';
import { definePolicy } from '../src/policy/define';
import { Classifier } from '../src/classifier';

test('tracker: a host stays while any of its IKE SAs is up; rekeys move ids; replaceAll reports the difference', () => {
  const t = new IkeSaTracker();
  assert.deepEqual(t.up('1', '10.0.0.1'), { added: ['10.0.0.1'], removed: [] });
  assert.deepEqual(t.up('2', '10.0.0.1'), { added: [], removed: [] });
  assert.deepEqual(t.up('2', '10.0.0.1'), { added: [], removed: [] });
  assert.deepEqual(t.down('1'), { added: [], removed: [] });
  assert.deepEqual(t.move('2', '3', '10.0.0.1'), { added: [], removed: [] });
  assert.deepEqual(t.down('2'), { added: [], removed: [] }, 'the old id is gone after the rekey');
  assert.deepEqual(t.up('3', '10.0.0.9'), { added: ['10.0.0.9'], removed: ['10.0.0.1'] }, 'an SA that changed host');
  assert.deepEqual(t.down('3'), { added: [], removed: ['10.0.0.9'] });
  assert.deepEqual(t.down('3'), { added: [], removed: [] });
  t.up('4', 'a'); t.up('5', 'b');
  assert.deepEqual(t.replaceAll(new Map([['6', 'b'], ['7', 'c']])), { added: ['c'], removed: ['a'] });
  assert.deepEqual(t.hosts().sort(), ['b', 'c']);
});

// ---- a scripted server ----------------------------------------------------

const ikeSa = (id: string, host: string, state = 'ESTABLISHED'): ViciInput => ({ uniqueid: id, version: '2', state, 'local-host': '10.9.9.9', 'remote-host': host });

interface Script { sas: [string, string][]; duringList?: (send: (p: Buffer) => void) => void; garbage?: boolean }

class FakeCharon {
  server: net.Server | null = null;
  sockets: net.Socket[] = [];
  registered = new Set<string>();
  connections = 0;
  constructor(readonly file: string, public script: Script) {}

  listen(): Promise<void> {
    fs.rmSync(this.file, { force: true });
    this.server = net.createServer((s) => this.serve(s));
    return new Promise((r) => this.server!.listen(this.file, r));
  }

  private serve(s: net.Socket): void {
    this.connections++;
    this.sockets.push(s);
    const reader = new SegmentReader();
    const send = (p: Buffer): void => { s.write(p); };
    s.on('error', () => undefined);
    s.on('data', (chunk) => {
      for (const seg of reader.push(chunk)) {
        const p = decodePacket(seg);
        if (this.script.garbage) { s.write(Buffer.from([0, 0, 0, 2, 9, 9])); continue; }
        if (p.type === EVENT_REGISTER) { this.registered.add(p.name!); send(encodePacket({ type: EVENT_CONFIRM })); }
        else if (p.type === EVENT_UNREGISTER) { this.registered.delete(p.name!); send(encodePacket({ type: EVENT_CONFIRM })); }
        else if (p.type === CMD_REQUEST && p.name === 'list-sas') {
          for (const [id, host] of this.script.sas) send(encodePacket({ type: EVENT, name: 'list-sa', message: { [`conn${id}`]: ikeSa(id, host) } }));
          this.script.duringList?.(send);
          send(encodePacket({ type: CMD_RESPONSE, message: {} }));
        }
      }
    });
  }

  event(name: string, message: ViciInput): void {
    for (const s of this.sockets) if (!s.destroyed) s.write(encodePacket({ type: EVENT, name, message }));
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets = [];
    await new Promise((r) => (this.server ? this.server.close(r) : r(null)));
    this.server = null;
  }
}

class Recorder implements LearnTarget {
  members = new Set<string>();
  log: string[] = [];
  addToSet(name: string, element: string): boolean { assert.equal(name, 'peers'); this.members.add(element); return true; }
  deleteFromSet(name: string, element: string, options: { origin: 'live' }): boolean {
    assert.equal(name, 'peers');
    assert.equal(options.origin, 'live');
    return this.members.delete(element);
  }
}

/** No test may hang the suite: an awaited event that never comes fails after 10 s. */
const T = { timeout: 10_000 };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => { for (const c of cleanups.splice(0)) await c(); });

async function setup(script: Script, target = new Recorder()): Promise<{ charon: FakeCharon; learner: ViciLearner; target: Recorder; file: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-vici-'));
  const file = path.join(dir, 'charon.vici');
  const charon = new FakeCharon(file, script);
  await charon.listen();
  const learner = startVici(target, { socket: file, set: 'peers', backoffFirstMs: 20, backoffMaxMs: 80 }, (m) => target.log.push(m));
  cleanups.push(async () => { await learner.close(); await charon.stop(); fs.rmSync(dir, { recursive: true, force: true }); });
  return { charon, learner, target, file };
}

const once = (e: ViciLearner, name: string): Promise<unknown> => new Promise((r) => e.once(name, r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('resync: list-sa entries and events arriving during the listing; only established SAs count', T, async () => {
  const script: Script = {
    sas: [['1', '10.0.0.1'], ['2', '10.0.0.2']],
    duringList: (send) => {
      send(encodePacket({ type: EVENT, name: 'list-sa', message: { c3: ikeSa('3', '10.0.0.3', 'CONNECTING') } }));
      send(encodePacket({ type: EVENT, name: 'ike-updown', message: { c2: ikeSa('2', '10.0.0.2', 'DELETING') } }));
      send(encodePacket({ type: EVENT, name: 'ike-updown', message: { up: 'yes', c4: ikeSa('4', 'fd00::4') } }));
    },
  };
  const { learner, target, charon } = await setup(script);
  const synced = await once(learner, 'synced');
  assert.deepEqual(synced, { sas: 2, hosts: 2, added: ['10.0.0.1', 'fd00::4'], removed: [] });
  assert.deepEqual([...target.members].sort(), ['10.0.0.1', 'fd00::4']);
  assert.deepEqual([...charon.registered].sort(), ['child-updown', 'ike-rekey', 'ike-updown'], 'list-sa unregistered after the response');
  assert.equal(learner.connected, true);
});

test('events after the resync: up, child-updown, rekey, down of the last SA', T, async () => {
  const { learner, target, charon } = await setup({ sas: [] });
  await once(learner, 'synced');
  charon.event('ike-updown', { up: 'yes', gw: ikeSa('7', '10.0.0.7') });
  assert.equal(await once(learner, 'added'), '10.0.0.7');
  charon.event('child-updown', { up: 'yes', gw: { ...ikeSa('8', '10.0.0.8'), 'child-sas': { c: { uniqueid: '1', state: 'INSTALLED' } } } });
  assert.equal(await once(learner, 'added'), '10.0.0.8');
  charon.event('child-updown', { gw: ikeSa('8', '10.0.0.8') }); // a CHILD_SA down: the IKE SA stays
  charon.event('ike-rekey', { gw: { old: ikeSa('7', '10.0.0.7', 'REKEYED'), new: ikeSa('9', '10.0.0.7') } });
  charon.event('ike-updown', { gw: ikeSa('7', '10.0.0.7', 'DELETING') }); // the old id: nothing up under it any more
  charon.event('ike-updown', { gw: ikeSa('8', '10.0.0.8', 'DELETING') });
  assert.equal(await once(learner, 'removed'), '10.0.0.8');
  assert.deepEqual([...target.members], ['10.0.0.7']);
  charon.event('ike-updown', { gw: ikeSa('9', '10.0.0.7', 'DELETING') });
  assert.equal(await once(learner, 'removed'), '10.0.0.7');
  assert.deepEqual([...target.members], []);
  assert.deepEqual(target.log.filter((l) => /learnt|forgot/.test(l)), [
    "vici: learnt 10.0.0.7 (set 'peers')", "vici: learnt 10.0.0.8 (set 'peers')", "vici: forgot 10.0.0.8 (set 'peers')", "vici: forgot 10.0.0.7 (set 'peers')",
  ]);
});

test('charon away at start and during an outage: retries with backoff, one log line per outage, resync on return', T, async () => {
  const { learner, target, charon } = await setup({ sas: [['1', '10.0.0.1']] });
  await once(learner, 'synced');
  await charon.stop();
  await once(learner, 'disconnected');
  await sleep(400); // backoff 20 -> 80 ms: several attempts
  assert.deepEqual([...target.members], ['10.0.0.1'], 'learnt hosts are kept while charon is away');
  charon.script = { sas: [['5', '10.0.0.5']] };
  const connectionsBefore = charon.connections;
  await charon.listen();
  const synced = await once(learner, 'synced');
  assert.deepEqual(synced, { sas: 1, hosts: 1, added: ['10.0.0.5'], removed: ['10.0.0.1'] });
  assert.equal(charon.connections - connectionsBefore, 1);
  const outage = target.log.filter((l) => l.includes('is not reachable'));
  assert.equal(outage.length, 1, target.log.join('\n'));
  assert.match(target.log.at(-1)!, /^vici: reconnected to charon at .*: 1 IKE SA\(s\) up to 1 host\(s\) in set 'peers' \(\+1 -1\)$/);
});

test('a server speaking garbage: the connection is dropped and retried, the process stays up', T, async () => {
  const { learner, target, charon } = await setup({ sas: [], garbage: true });
  await once(learner, 'disconnected');
  await sleep(200);
  assert.ok(charon.connections >= 2, `reconnected ${charon.connections} times`);
  assert.equal(target.log.filter((l) => l.includes('is not reachable')).length, 1);
  assert.match(target.log[0], /unknown packet type 9/);
  charon.script = { sas: [['1', '10.0.0.1']] };
  await once(learner, 'synced');
  assert.deepEqual([...target.members], ['10.0.0.1']);
});

test('a Classifier as the target: learnt members are live, a member the file also gives survives the SA going down', T, async () => {
  const policy = definePolicy({ default: 'accept', sets: { peers: { type: 'address', elements: ['10.0.0.1'] }, spis: { type: 'spi', elements: ['0x100'] } }, rules: [] });
  const classifier = Classifier.fromPolicy(policy);
  const log: string[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-vici-'));
  const charon = new FakeCharon(path.join(dir, 'charon.vici'), { sas: [['1', '10.0.0.1'], ['2', '10.0.1.1']] });
  await charon.listen();
  const learner = startVici(classifier, { socket: charon.file, set: 'peers', backoffFirstMs: 20 }, (m) => log.push(m));
  cleanups.push(async () => { await learner.close(); await charon.stop(); fs.rmSync(dir, { recursive: true, force: true }); });
  await once(learner, 'synced');
  const members = (): [string, string[]][] => classifier.listSet('peers').map((m) => [m.value, m.origins]);
  assert.deepEqual(members().sort(), [['10.0.0.1', ['file', 'live']], ['10.0.1.1', ['live']]]);
  const removed: unknown[] = [];
  learner.on('removed', (h) => removed.push(h));
  charon.event('ike-updown', { gw: ikeSa('1', '10.0.0.1', 'DELETING') });
  charon.event('ike-updown', { gw: ikeSa('2', '10.0.1.1', 'DELETING') });
  while (removed.length < 2) await sleep(10);
  assert.deepEqual(members(), [['10.0.0.1', ['file']]]);
  assert.equal(classifier.testSet('peers', '10.0.1.1'), false);
  assert.throws(() => startVici(classifier, { set: 'nope' }, () => undefined), /no set named 'nope'/);
  assert.throws(() => startVici(classifier, { set: 'spis' }, () => undefined), /holds SPIs/);
});
