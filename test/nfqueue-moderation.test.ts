/**
 * Wake-up moderation of a queue worker (native/nfqueue/moderation.h), driven
 * through the test kit on made-up receive times, so nothing here depends on
 * the machine's timing: it never sleeps after a full batch, for a lone packet
 * or under one packet per window; a sleep never exceeds the window; at a
 * steady rate the batches converge on the target, on one queue and on each
 * of two queues that share the rate (which is why two queues need not cost
 * more per packet), and the window caps the sleep when the target would take
 * longer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testkit } from './support/testkit';

const MAX = 64;
const US = 1000;

/** One receive: count, max, begin, waited, end (ns). */
type Receive = [number, number, number, number, number];

/** The sleep (ns) and rate estimate (packets/s) after each receive. */
function decide(windowUs: number, target: number, receives: Receive[]): { sleep: number; rate: number }[] {
  const out = testkit().moderate(windowUs, target, Float64Array.from(receives.flat()));
  return receives.map((_, i) => ({ sleep: out[2 * i], rate: out[2 * i + 1] }));
}

/**
 * A worker's loop against packets arriving every `gapNs`: receive what has
 * arrived (waiting for the first when none has), process it (1.5 µs a packet),
 * sleep what the moderator chose, and wake `lateNs` after the sleep ends.
 * Each step replays the receives so far into a fresh moderator (the test kit
 * takes whole traces) and keeps its last decision.
 */
function simulate(windowUs: number, target: number, gapNs: number, steps: number, lateNs = 20 * US): { counts: number[]; sleeps: number[]; rates: number[] } {
  const receives: Receive[] = [];
  const counts: number[] = [], sleeps: number[] = [], rates: number[] = [];
  let t = 0, next = 0;
  for (let i = 0; i < steps; i++) {
    const begin = t;
    let waited = 500;
    if (next > t) { waited = next - t; t = next; }
    let count = 0;
    while (next <= t && count < MAX) { count++; next += gapNs; }
    const end = t + US;
    receives.push([count, MAX, begin, waited, end]);
    const d = decide(windowUs, target, receives).at(-1)!;
    counts.push(count); sleeps.push(d.sleep); rates.push(d.rate);
    t = end + count * 1500 + (d.sleep > 0 ? d.sleep + lateNs : 0);
  }
  return { counts, sleeps, rates };
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

test('moderation off (window 0): never sleeps, whatever the rate', () => {
  const { sleeps } = simulate(0, 32, 5 * US, 80);
  assert.deepEqual([...new Set(sleeps)], [0]);
});

test('never after a full batch, however high the rate', () => {
  // 64 packets every 10 µs: a rate of 6.4 million packets/s, each batch full.
  const rs: Receive[] = Array.from({ length: 40 }, (_, i) => [MAX, MAX, i * 10 * US, 100, i * 10 * US + 500]);
  const d = decide(500, 32, rs);
  assert.ok(d.at(-1)!.rate > 1e6, `rate estimate ${d.at(-1)!.rate}`);
  assert.deepEqual(d.map((x) => x.sleep), rs.map(() => 0));
});

test('never for a lone packet: a receive that waited a window or more for it', () => {
  // Dense packets first (the rate estimate is high), then one that came after a wait of exactly the window.
  const rs: Receive[] = Array.from({ length: 30 }, (_, i) => [8, MAX, i * 100 * US, 1000, i * 100 * US + 2000]);
  const last = rs.at(-1)![4];
  rs.push([1, MAX, last + 10 * US, 500 * US, last + 510 * US]);
  const d = decide(500, 32, rs);
  assert.ok(d[28].sleep > 0, 'the dense packets are moderated');
  assert.equal(d.at(-1)!.sleep, 0);
});

test('never under one packet per window, even when each receive found its packet waiting', () => {
  // One packet every 1.2 windows, already there when the receive begins (waited 0.5 µs).
  const gap = 1.2 * 200 * US;
  const rs: Receive[] = Array.from({ length: 40 }, (_, i) => [1, MAX, i * gap, 500, i * gap + 1000]);
  const d = decide(200, 4, rs);
  assert.deepEqual(d.map((x) => x.sleep), rs.map(() => 0));
  // The same packets in pairs: two a window and a bit; now it moderates.
  const pairs: Receive[] = rs.map(([, , b, w, e]) => [2, MAX, b, w, e]);
  assert.ok(decide(200, 4, pairs).slice(5).every((x) => x.sleep > 0), 'two packets per window are moderated');
});

test('a sleep never exceeds the window, over random receives', () => {
  let seed = 7;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (const windowUs of [1, 50, 100, 500, 1000]) {
    let t = 0;
    const rs: Receive[] = [];
    for (let i = 0; i < 400; i++) {
      const begin = t + rnd() * 300 * US, waited = rnd() * 2 * windowUs * US, end = begin + waited + rnd() * 5 * US;
      rs.push([1 + Math.floor(rnd() * MAX), MAX, begin, waited, end]);
      t = end;
    }
    for (const d of decide(windowUs, 1 + Math.floor(rnd() * 63), rs)) assert.ok(d.sleep >= 0 && d.sleep <= windowUs * US, `window ${windowUs} µs: slept ${d.sleep} ns`);
  }
});

test('steady rate: the estimate finds it and batches converge on the target below the window', () => {
  // 100,000 packets/s, target 32: 320 µs a batch, under a 500 µs window.
  const { counts, sleeps, rates } = simulate(500, 32, 10 * US, 120);
  const tail = counts.slice(60);
  assert.ok(Math.abs(mean(tail) - 32) <= 2, `batches ${mean(tail)} (${tail.join(' ')})`);
  assert.ok(Math.abs(rates.at(-1)! - 100000) < 5000, `rate estimate ${rates.at(-1)}`);
  assert.ok(sleeps.slice(60).every((s) => s > 0 && s < 500 * US), `sleeps ${sleeps.slice(60).join(' ')}`);
});

test('two queues sharing the rate: each worker sleeps about twice as long and gathers the same batch as one queue', () => {
  const one = simulate(500, 32, 8 * US, 120);        // 125,000 packets/s on one queue
  const half = simulate(500, 32, 16 * US, 120);      // each of two queues: 62,500 packets/s
  const b1 = mean(one.counts.slice(60)), b2 = mean(half.counts.slice(60));
  assert.ok(Math.abs(b1 - 32) <= 2 && Math.abs(b2 - 32) <= 2, `batches ${b1} and ${b2}`);
  const s1 = mean(one.sleeps.slice(60)), s2 = mean(half.sleeps.slice(60));
  assert.ok(s2 > 1.8 * s1, `sleeps ${s1} and ${s2} ns`);
});

test('the window caps the sleep when the target would take longer, and the batch is what the window gathers', () => {
  // 20,000 packets/s, target 32 would need 1.6 ms; the window is 300 µs.
  const { counts, sleeps } = simulate(300, 32, 50 * US, 80);
  assert.ok(sleeps.slice(20).every((s) => s === 300 * US), `sleeps ${sleeps.slice(20).join(' ')}`);
  const b = mean(counts.slice(20));
  assert.ok(b >= 6 && b <= 8, `batches ${b}: 300 µs window + 20 µs late + processing at 50 µs a packet`);
});

test('processing alone gathers the target: no sleep', () => {
  // 2 million packets/s; 1.5 µs of processing a packet gathers more than the target of 2 each time.
  const { sleeps } = simulate(500, 2, 500, 60);
  assert.deepEqual([...new Set(sleeps.slice(10))], [0]);
});
