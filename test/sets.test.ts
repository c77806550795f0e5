/**
 * Live named sets through the library (src/sets.ts over the native sets):
 * origins, timeouts, test semantics for prefixes and SPI ranges, flush,
 * list, sizes, and what a packet sees.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Classifier } from '../src/classifier';
import { SetError } from '../src/sets';

const ike = (src: number[]): Buffer => Buffer.from([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, ...src, 10, 0, 0, 1, 1, 0xf4, 1, 0xf4, 0, 8, 0, 0]);

function make(): Classifier {
  return Classifier.fromPolicy({
    default: 'drop',
    sets: { gw: { elements: ['10.1.0.1', '10.2.0.0/16', 'fd00::/64'] }, spis: { type: 'spi', elements: [256, '1000-2000'] } },
    rules: [{ name: 'gw', src: '@gw', action: 'accept' }, { name: 'esp', proto: 'esp', spi: '@spis', action: 'accept' }],
  });
}

test('a live member admits packets; deleting its live origin leaves a file member in place', () => {
  const c = make();
  assert.equal(c.classify(ike([10, 9, 0, 1])).verdict, 'drop');
  assert.equal(c.addToSet('gw', '10.9.0.1'), true);
  assert.equal(c.addToSet('gw', '10.9.0.1'), false, 'already live');
  assert.equal(c.classify(ike([10, 9, 0, 1])).verdict, 'accept');
  assert.equal(c.addToSet('gw', '10.1.0.1'), true, 'a file member gains the live origin');
  assert.deepEqual(c.listSet('gw').find((m) => m.value === '10.1.0.1'), { value: '10.1.0.1', origins: ['file', 'live'], timeout: null });
  assert.equal(c.deleteFromSet('gw', '10.1.0.1', { origin: 'live' }), true);
  assert.equal(c.classify(ike([10, 1, 0, 1])).verdict, 'accept', 'still a file member');
  assert.equal(c.deleteFromSet('gw', '10.1.0.1', { origin: 'live' }), false);
  assert.equal(c.deleteFromSet('gw', '10.1.0.1'), true, 'all origins');
  assert.equal(c.classify(ike([10, 1, 0, 1])).verdict, 'drop');
  assert.deepEqual(c.setSizes().find((s) => s.name === 'gw'), { name: 'gw', kind: 'address', size: 3, file: 2, live: 1 });
});

test('testSet: members, addresses inside member prefixes, prefixes inside member prefixes; SPI values and ranges', () => {
  const c = make();
  assert.ok(c.testSet('gw', '10.1.0.1'));
  assert.ok(c.testSet('gw', '10.2.200.7'));
  assert.ok(c.testSet('gw', '10.2.128.0/17'));
  assert.ok(c.testSet('gw', '10.2.0.0/16'));
  assert.ok(!c.testSet('gw', '10.2.0.0/15'));
  assert.ok(!c.testSet('gw', '10.1.0.0/24'), 'a prefix around a host member is not inside it');
  assert.ok(c.testSet('gw', 'fd00::1234'));
  assert.ok(!c.testSet('gw', 'fd00:0:0:1::1'));
  assert.ok(c.testSet('spis', 256));
  assert.ok(c.testSet('spis', '1500'));
  assert.ok(c.testSet('spis', '1200-1300'));
  assert.ok(!c.testSet('spis', '900-1100'));
  assert.ok(!c.testSet('spis', 257));
});

test('flush by origin; list formats prefixes, IPv6 and SPI ranges', () => {
  const c = make();
  c.addToSet('gw', '10.3.0.0/24');
  c.addToSet('gw', 'FD00:0:0:0:0:0:0:7');
  c.addToSet('spis', '5-9');
  assert.deepEqual(c.listSet('gw').map((m) => m.value).sort(), ['10.1.0.1', '10.2.0.0/16', '10.3.0.0/24', 'fd00::/64', 'fd00::7']);
  assert.deepEqual(c.listSet('spis').map((m) => m.value).sort(), ['1000-2000', '256', '5-9']);
  assert.equal(c.flushSet('gw'), 2, 'live by default');
  assert.equal(c.flushSet('gw'), 0);
  assert.equal(c.flushSet('gw', 'file'), 3);
  assert.deepEqual(c.listSet('gw'), []);
  assert.equal(c.flushSet('spis', 'all'), 3);
});

test('a timed live member stops matching by itself; re-adding refreshes the timeout; expireSets reaps', async () => {
  const c = make();
  c.addToSet('gw', '10.9.0.1', { timeout: 1 });
  c.addToSet('gw', '10.9.0.2', { timeout: 1 });
  c.addToSet('gw', '10.9.0.2', { timeout: 3600 });  // refreshed
  c.addToSet('gw', '10.1.0.1', { timeout: 1 });     // a file member with a timed live origin
  assert.equal(c.classify(ike([10, 9, 0, 1])).verdict, 'accept');
  assert.equal(c.listSet('gw').find((m) => m.value === '10.9.0.1')!.timeout, 1);
  const end = Date.now() + 5000;
  while (c.testSet('gw', '10.9.0.1') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.equal(c.classify(ike([10, 9, 0, 1])).verdict, 'drop', 'expired: no call needed');
  assert.equal(c.classify(ike([10, 9, 0, 2])).verdict, 'accept', 'refreshed');
  assert.equal(c.classify(ike([10, 1, 0, 1])).verdict, 'accept', 'the file origin does not time out');
  assert.ok(!c.listSet('gw').some((m) => m.value === '10.9.0.1'), 'an expired member is not listed');
  assert.equal(c.expireSets(), 2);
  assert.equal(c.expireSets(), 0);
  assert.deepEqual(c.listSet('gw').find((m) => m.value === '10.1.0.1')!.origins, ['file']);
});

test('refusals are SetErrors with codes', () => {
  const c = make();
  const code = (fn: () => unknown): string => { try { fn(); } catch (e) { assert.ok(e instanceof SetError, String(e)); assert.equal(e.code, 'EVALUE'); return e.reason; } return 'none'; };
  assert.equal(code(() => c.addToSet('nope', '10.0.0.1')), 'unknown-set');
  assert.equal(code(() => c.addToSet('gw', 'banana')), 'bad-value');
  assert.equal(code(() => c.addToSet('gw', 7)), 'bad-value');
  assert.equal(code(() => c.addToSet('spis', '10.0.0.1')), 'bad-value');
  assert.equal(code(() => c.addToSet('gw', '10.0.0.1', { timeout: -1 })), 'bad-timeout');
  assert.equal(code(() => c.addToSet('gw', '10.0.0.1', { timeout: 0.5 })), 'bad-timeout');
  assert.equal(code(() => c.deleteFromSet('gw', '10.0.0.1', { origin: 'kernel' as 'live' })), 'bad-value');
  assert.equal(code(() => c.listSet('nope')), 'unknown-set');
});
