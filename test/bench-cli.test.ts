/**
 * `nfsieve bench`: its JSON contract (keys in order, values consistent with
 * the input), for a policy on generated traffic, a policy on a capture and a
 * ClassBench rule set; refused input exits 1. Figures are not judged (no
 * timing asserts): only that they are what they claim to be.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, PCAPS, CLASSBENCH } from './support/compare';
import { readCapture } from '../src/capture/pcap';
import { loadPolicyFile } from '../src/policy/parse';
import { loadClassbenchRules } from '../src/classbench/classbench';

const BIN = path.join(ROOT, 'bin', 'nfsieve.js');
const EXAMPLE = path.join(ROOT, 'examples', 'freeswan-gateway.yaml');
const KEYS = ['rules', 'build_ms', 'first_build_ms', 'table_bytes', 'index_bytes', 'packets', 'ns_per_packet', 'mpps', 'input'];

type BenchJson = Record<string, number | string>;

function bench(...args: string[]): { code: number; json: BenchJson | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'bench', ...args, '--json', '--seconds', '1'], { encoding: 'utf8', timeout: 120_000 });
  const lines = r.stdout.trim().split('\n').filter(Boolean);
  return { code: r.status ?? -1, json: lines.length ? JSON.parse(lines[lines.length - 1]) : null, stdout: r.stdout, stderr: r.stderr };
}

function checkContract(o: BenchJson, rules: number, packets: number | null): void {
  assert.deepEqual(Object.keys(o), KEYS);
  assert.equal(o.rules, rules);
  if (packets !== null) assert.equal(o.packets, packets);
  for (const k of KEYS.slice(0, -1)) assert.ok(typeof o[k] === 'number' && Number.isFinite(o[k]) && (o[k] as number) >= 0, `${k}: ${o[k]}`);
  assert.ok((o.packets as number) > 0 && (o.ns_per_packet as number) > 0 && (o.table_bytes as number) > 0);
  // build_ms is the best of up to three builds, the first among them.
  assert.ok((o.build_ms as number) <= (o.first_build_ms as number), JSON.stringify(o));
  // mpps and ns_per_packet are two views of one measurement (both rounded).
  const mpps = 1000 / (o.ns_per_packet as number);
  assert.ok(Math.abs((o.mpps as number) - mpps) <= 0.01 * mpps + 0.01, JSON.stringify(o));
  assert.equal(typeof o.input, 'string');
}

test('bench POLICY: the contract on generated traffic', () => {
  const r = bench(EXAMPLE);
  assert.equal(r.code, 0, r.stderr);
  checkContract(r.json!, loadPolicyFile(EXAMPLE).rules.length, null);
  assert.match(String(r.json!.input), /generated/);
});

test('bench POLICY --pcap: every frame of the capture, once per pass', () => {
  const pcap = path.join(PCAPS, 'isakmp4500.pcap');
  const r = bench(EXAMPLE, '--pcap', pcap);
  assert.equal(r.code, 0, r.stderr);
  checkContract(r.json!, loadPolicyFile(EXAMPLE).rules.length, readCapture(pcap).length);
  assert.equal(r.json!.input, pcap);
});

test('bench --classbench: the rule count of the file, a generated trace', () => {
  const rules = path.join(CLASSBENCH, 'acl1_1k');
  const r = bench('--classbench', rules);
  assert.equal(r.code, 0, r.stderr);
  checkContract(r.json!, loadClassbenchRules(rules).rules.length, null);
  assert.ok((r.json!.index_bytes as number) > 0, 'a 1k rule set gets a lookup index');
});

test('bench refuses a missing capture (exit 1, a JSON error line) and a bad flag value (exit 2)', () => {
  const missing = bench(EXAMPLE, '--pcap', path.join(PCAPS, 'no-such.pcap'));
  assert.equal(missing.code, 1);
  assert.equal((missing.json as unknown as { error: { code: string } }).error.code, 'ECAPTURE');
  const r = spawnSync(process.execPath, [BIN, 'bench', EXAMPLE, '--seconds', 'soon'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--seconds expects a whole number/);
});
