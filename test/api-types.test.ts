import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { definePolicy } from '../src/index';
import type { Attachment, QueueStats, RuleCounter, VerdictName, RuleInput, ConditionsInput, PolicyInput, QueueCounters, WarningKind } from '../src/index';
import { ROOT } from './support/compare';

/**
 * One sample value per key of RuleInput. The type makes this list complete and
 * exact at compile time (a key missing from RuleInput, or a new one not listed
 * here, fails `tsc`); the tests below hold it against the schema and the
 * interpreter.
 */
const SAMPLES: { [K in keyof Required<RuleInput>]: Required<RuleInput>[K] } = {
  name: 'r', comment: 'c', action: 'accept', family: 4, src: '10.0.0.1', dst: { not: '10.0.0.0/8' }, proto: 'udp', 'ip-proto': 17,
  'nf-proto': 'udp', 'nft-proto': 'udp', sport: 500, dport: ['500', '4500'], 'nft-sport': '1-65535', 'nft-dport': 53, spi: '0x100-0x200', 'ah-spi': 7, icmp: 'echo-request', icmpv6: 128,
  ike: { version: 2, exchange: 'ike_sa_init', initiator: true, response: false }, natt: 'ike', fragment: ['none', 'first'], in: 'ipsec+',
  out: 'eth0', ctstate: 'new', mark: '0x1/0xff', length: '0-1500', 'l4-avail': '8-65535', malformed: false, truncated: 'ah',
  and: [{ sport: 500 }], limit: { rate: '20/s', burst: 40 },
};

function schemaRuleKeys(): string[] {
  const schema = JSON.parse(fs.readFileSync(path.join(ROOT, 'schema', 'policy.schema.json'), 'utf8'));
  return Object.keys(schema.properties.rules.items.properties).sort();
}

test('RuleInput names every rule key the schema (and so the YAML) accepts, and no other', () => {
  assert.deepEqual(Object.keys(SAMPLES).sort(), schemaRuleKeys());
});

test('every RuleInput key, with a value of its declared type, is accepted by definePolicy', () => {
  for (const [key, value] of Object.entries(SAMPLES)) {
    if (key === 'action') continue;
    const rule = { action: 'accept', [key]: value } as RuleInput;
    // family 4 with an IPv6-only condition would be a policy error elsewhere; each key alone must pass.
    assert.doesNotThrow(() => definePolicy({ default: 'accept', rules: [rule] }), key);
  }
  assert.throws(() => definePolicy({ default: 'accept', rules: [{ action: 'accept', colour: 'red' } as unknown as RuleInput] }), /unknown/);
});

/** Compiled, never run: the declarations the issue asks for, checked by tsc (an unused @ts-expect-error fails the build). */
export function typedEvents(q: Attachment): void {
  q.on('stats', (s: QueueStats) => {
    const rows: RuleCounter[] = s.rules;
    const perQueue: QueueCounters[] = s.queues;
    void rows; void perQueue;
  });
  q.once('error', (e: Error) => void e.message);
  // @ts-expect-error a stats listener receives QueueStats, not a string
  q.on('stats', (s: string) => void s);
  // @ts-expect-error there is no such event
  q.on('packet', () => undefined);
  const v: VerdictName = 'repeat';
  // @ts-expect-error not a verdict
  const w: VerdictName = 'maybe';
  const k: WarningKind = 'dead';
  const c: ConditionsInput = { proto: 'esp' };
  const p: PolicyInput = { default: 'drop', rules: [{ ...c, action: { 'skip-to': 2 } }] };
  void v; void w; void k; void p;
}

test('typedoc documents the public API with every referenced type exported (npm run docs, validation only)', () => {
  const bin = path.join(ROOT, 'node_modules', '.bin', 'typedoc');
  const r = spawnSync(bin, ['--emit', 'none'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout + r.stderr, /warning|error/i);
});
