/**
 * `run --offload`'s ipset mirror (src/hook/ipset-sync.ts) without the kernel:
 * the ipset restore lines go to a model of the ipsets, and after every step of
 * random set operations each entry the model holds must be matched by
 * nfsieve's set (the subset invariant), with timeouts no longer than
 * nfsieve's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Classifier } from '../src/classifier';
import { IpsetSync, offloadTargets } from '../src/hook/ipset-sync';
import { definePolicy, PolicyInput } from '../src/policy/define';
import { Rng } from '../src/craft';

const SEED = Number(process.env.SEED ?? 20261130);

const policyInput = (members: string[]): PolicyInput => ({
  default: 'accept',
  sets: { gateways: { elements: members }, other: { elements: ['10.9.0.1'] } },
  rules: [
    { name: 'esp-known', src: '@gateways', proto: 'esp', action: 'accept' },
    { name: 'esp-other', proto: 'esp', action: 'drop' },
    { name: 'icmp', icmp: ['echo-request'], src: '@other', action: 'accept' },
  ],
} as unknown as PolicyInput);

/** A model of the kernel's ipsets: entry -> absolute expiry (ms) or null. */
class IpsetModel {
  readonly sets = new Map<string, Map<string, number | null>>();
  readonly log: string[] = [];
  now = 0;
  fail = false;
  run = (lines: string[]): void => {
    if (this.fail && lines.some((l) => !l.startsWith('flush'))) throw Object.assign(new Error('ipset failed'), { stderr: 'ipset v7: Kernel error' });
    for (const line of lines) {
      this.log.push(line);
      const [cmd, name, entry, , timeout] = line.split(' ');
      const set = (n: string): Map<string, number | null> => { if (!this.sets.has(n)) this.sets.set(n, new Map()); return this.sets.get(n)!; };
      if (cmd === 'create') set(name);
      else if (cmd === 'flush') set(name).clear();
      else if (cmd === 'add') set(name).set(entry, timeout === undefined ? null : this.now + Number(timeout) * 1000);
      else if (cmd === 'del') set(name).delete(entry);
      else if (cmd === 'swap') { const a = set(name), b = set(entry); this.sets.set(name, b); this.sets.set(entry, a); }
      else if (cmd === 'destroy') this.sets.delete(name);
      else throw new Error(`unexpected ipset line ${line}`);
    }
  };
  /** Unexpired entries of an ipset at the model's time. */
  entries(name: string): string[] {
    return [...(this.sets.get(name) ?? new Map<string, number | null>())].filter(([, t]) => t === null || t > this.now).map(([e]) => e);
  }
}

const flushImmediates = (): Promise<void> => new Promise((r) => setImmediate(r));

test('offloadTargets: the sets offloaded rules name, NAME and NAME-v6; a set only a queued rule uses is not kept', () => {
  const t = offloadTargets(definePolicy(policyInput(['10.0.0.1'])));
  assert.deepEqual([...t], [['gateways', { v4: 'gateways', v6: 'gateways-v6' }]]);
});

test(`random live changes: every ipset entry is matched by nfsieve's set after each step, adds reach the ipset (seed ${SEED})`, async () => {
  const rng = new Rng(SEED);
  const model = new IpsetModel();
  const cls = Classifier.fromPolicy(policyInput(['10.0.0.1', '10.0.1.0/24', 'fd00::1']));
  const sync = new IpsetSync(cls, { run: model.run, now: () => model.now });
  sync.start(() => 'Header: family inet hashsize 1024 maxelem 65536 timeout 0');
  assert.deepEqual(model.entries('gateways').sort(), ['10.0.0.1/32', '10.0.1.0/24']);
  assert.deepEqual(model.entries('gateways-v6'), ['fd00::1/128']);
  const values = ['10.0.0.1', '10.0.0.2', '10.0.1.0/24', '10.0.1.7', '10.0.2.0/25', 'fd00::1', 'fd00::2', 'fd00:1::/64'];
  let added = 0;
  for (let step = 0; step < 400; step++) {
    const v = values[rng.int(values.length)];
    const op = rng.int(6);
    if (op === 0 || op === 1) { sync.addToSet('gateways', v, { timeout: rng.int(3) === 0 ? 1 + rng.int(5) : 0 }); added++; }
    else if (op === 2) sync.deleteFromSet('gateways', v, { origin: (['all', 'live', 'file'] as const)[rng.int(3)] });
    else if (op === 3) sync.flushSet('gateways', (['live', 'file', 'all'] as const)[rng.int(3)]);
    else if (op === 4) model.now += rng.int(1500);
    // Adds wait for the next turn of the event loop; the timeouts are compared once they ran.
    const drained = rng.int(2) === 0;
    if (drained) await flushImmediates();
    // The real clock of nfsieve's timeouts is not the model's: compare against what nfsieve lists now,
    // with the model's remaining time never above nfsieve's.
    const listed = new Map(cls.listSet('gateways').map((m) => [m.value.includes('/') ? m.value : `${m.value}/${m.value.includes(':') ? 128 : 32}`, m]));
    for (const name of ['gateways', 'gateways-v6']) {
      for (const e of model.entries(name)) {
        assert.ok(cls.testSet('gateways', e), `step ${step}: ipset ${name} holds ${e}, which nfsieve's set does not match`);
        const m = listed.get(e);
        const until = model.sets.get(name)!.get(e);
        if (!drained) continue;
        if (m && until !== null && until !== undefined && m.timeout !== null) assert.ok((until - model.now) / 1000 <= m.timeout, `step ${step}: ${e} outlives nfsieve's timeout`);
        if (m && m.timeout !== null && !m.origins.includes('file')) assert.notEqual(until, null, `step ${step}: ${e} permanent in the ipset, timed in nfsieve`);
      }
    }
  }
  await flushImmediates();
  // After the last step: every permanent member nfsieve lists is in the ipset (the adds were not lost).
  for (const m of cls.listSet('gateways').filter((x) => x.timeout === null)) {
    const e = m.value.includes('/') ? m.value : `${m.value}/${m.value.includes(':') ? 128 : 32}`;
    assert.ok(model.entries(e.includes(':') ? 'gateways-v6' : 'gateways').includes(e), `${e} missing from the ipset`);
  }
  assert.ok(added > 50 && model.log.some((l) => / timeout \d+$/.test(l)) && model.log.some((l) => l.startsWith('del ')));
});

test('a delete reaches the ipset before nfsieve\'s set; a timed add gets a shorter ipset timeout; too short a one stays out', async () => {
  const model = new IpsetModel();
  const cls = Classifier.fromPolicy(policyInput(['10.0.0.1']));
  const order: string[] = [];
  const sync = new IpsetSync(cls, { run: (lines) => { order.push(`${lines.join(';')} while matched=${cls.testSet('gateways', '10.0.0.5')}`); model.run(lines); }, now: () => 0 });
  sync.start(() => 'Header: timeout 0');
  order.length = 0;
  sync.addToSet('gateways', '10.0.0.5', { timeout: 60 });
  sync.addToSet('gateways', '10.0.0.6', { timeout: 1 });
  await flushImmediates();
  assert.deepEqual(order, ['add gateways 10.0.0.5/32 timeout 59;del gateways 10.0.0.6/32 while matched=true']);
  sync.deleteFromSet('gateways', '10.0.0.5');
  assert.deepEqual(order.slice(1), ['del gateways 10.0.0.5/32 while matched=true']);
  assert.equal(cls.testSet('gateways', '10.0.0.5'), false);
  // A file member that loses its live origin only is put back, permanent.
  sync.addToSet('gateways', '10.0.0.1', { timeout: 30 });
  sync.deleteFromSet('gateways', '10.0.0.1', { origin: 'live' });
  await flushImmediates();
  assert.deepEqual(model.entries('gateways'), ['10.0.0.1/32']);
  assert.equal(model.sets.get('gateways')!.get('10.0.0.1/32'), null);
});

test('an ipset that fails is flushed (the safe direction) and the error reported; the set operation still happens', () => {
  const model = new IpsetModel();
  const notes: string[] = [];
  const cls = Classifier.fromPolicy(policyInput(['10.0.0.1']));
  const sync = new IpsetSync(cls, { run: model.run, log: (m) => notes.push(m), now: () => 0 });
  sync.start(() => 'Header: timeout 0');
  model.fail = true;
  assert.equal(sync.deleteFromSet('gateways', '10.0.0.1'), true);
  assert.deepEqual(model.entries('gateways'), []);
  assert.match(notes.join('\n'), /ipset restore failed \(ipset v7: Kernel error\); flushing gateways/);
});

test('start refuses when an ipset is missing (hook --offload not installed), and notes one without timeouts', () => {
  const cls = Classifier.fromPolicy(policyInput(['10.0.0.1']));
  assert.throws(() => new IpsetSync(cls, { run: () => undefined }).start(() => null), /no ipset named gateways: install the hook first/);
  const notes: string[] = [];
  const model = new IpsetModel();
  const sync = new IpsetSync(cls, { run: model.run, log: (m) => notes.push(m), now: () => 0 });
  sync.start(() => 'Header: family inet hashsize 1024 maxelem 65536');
  assert.match(notes[0], /created without timeout/);
  assert.ok(model.log.every((l) => !l.includes('timeout')), model.log.join('\n'));
});
