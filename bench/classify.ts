/**
 * Decision-table performance against the issue's targets: ClassBench acl1,
 * fw1 and ipc1 at 1k and 10k rules (and a synthesised 30k), build cost,
 * table memory, batched lookup, the native linear scan, JavaScript batches of
 * 256, named-set updates, and a 100,000-address gateway set. Every lookup
 * benchmark is gated on equality with the linear scan over the whole trace.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadClassbenchRules } from '../src/classbench/classbench';
import { generateTrace, synthesizeRules } from '../src/classbench/generate';
import { packTupleRules } from '../src/classbench/linear';
import { compile } from '../src/compile/compile';
import { native } from '../src/native';
import { Classifier } from '../src/classifier';
import { definePolicy } from '../src/policy/define';
import { Policy } from '../src/policy/model';
import { Row } from './common';
import { rteAclPeer } from './rteacl';

function best(fn: () => void, reps: number): number {
  fn();
  let b = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    b = Math.min(b, performance.now() - t0);
  }
  return b;
}

export function benchClassbench(sharedDir: string): { rows: Row[]; extra: Row[]; note: string } {
  const dir = path.join(sharedDir, 'corpus', 'classbench');
  const rows: Row[] = [];
  if (!fs.existsSync(dir)) return { rows, extra: [], note: 'ClassBench corpus not found.' };
  const peer = rteAclPeer();
  const note = typeof peer === 'string' ? peer : 'DPDK rte_acl (Debian dpdk-dev 22.11, --no-huge -m 3000, batches of 64, one core) runs the same rules and trace; its results are checked against the linear scan too.';
  const inputs: { name: string; file?: string; policy: () => Policy }[] = [];
  for (const seed of ['acl1', 'fw1', 'ipc1']) {
    for (const size of ['1k', '10k']) inputs.push({ name: `${seed}_${size}`, file: path.join(dir, `${seed}_${size}`), policy: () => loadClassbenchRules(path.join(dir, `${seed}_${size}`)) });
    inputs.push({ name: `${seed} x30k (synthesised)`, policy: () => synthesizeRules(loadClassbenchRules(path.join(dir, `${seed}_10k`)), 30_000, 1) });
  }
  const addon = native();
  for (const input of inputs) {
    const policy = input.policy();
    const trace = generateTrace(policy, 100_000, 2);
    const t0 = performance.now();
    const compiled = compile(policy, { analyse: false });
    const handle = new addon.Classifier(compiled.table);
    const buildMs = performance.now() - t0;
    const got = new Int32Array(trace.count);
    const lookupMs = best(() => handle.classifyTuples(trace.tuples, got), 5);
    const packed = packTupleRules(policy);
    const want = new Int32Array(trace.count);
    const sample = 20_000;
    const linearMs = best(() => addon.linearClassifyTuples(packed, trace.tuples.subarray(0, sample * 5), want), 1);
    addon.linearClassifyTuples(packed, trace.tuples, want);
    let mismatches = 0;
    for (let i = 0; i < trace.count; i++) if (got[i] !== want[i]) mismatches++;
    // JavaScript in batches of 256 against one call for the whole trace.
    const out256 = new Int32Array(256);
    const batchedMs = best(() => {
      for (let i = 0; i < trace.count; i += 256) handle.classifyTuples(trace.tuples.subarray(i * 5, Math.min(trace.count, i + 256) * 5), out256);
    }, 3);
    let acl: Row = {};
    if (typeof peer !== 'string' && input.file) {
      const r = peer.run(input.file, trace.tuples);
      if ('error' in r) acl = { 'rte_acl build ms': r.error, 'rte_acl ns/pkt': '-' };
      else {
        let aclDiff = 0;
        for (let i = 0; i < trace.count; i++) if (r.results[i] !== want[i]) aclDiff++;
        acl = { 'rte_acl build ms': r.build_ms.toFixed(0), 'rte_acl ns/pkt': `${r.ns_per_packet.toFixed(1)}${aclDiff ? ` (${aclDiff} differ!)` : ''}` };
      }
    }
    rows.push({
      'rule set': input.name,
      rules: policy.rules.length,
      'build ms': buildMs.toFixed(0),
      'table MiB': (compiled.table.length / 2 ** 20).toFixed(2),
      'lookup ns/pkt': ((lookupMs * 1e6) / trace.count).toFixed(1),
      'linear scan ns/pkt': ((linearMs * 1e6) / sample).toFixed(0),
      'JS batches of 256, % of one call': ((lookupMs / batchedMs) * 100).toFixed(0),
      'equal to linear scan': mismatches === 0 ? `yes (${trace.count})` : `NO: ${mismatches} differ`,
      ...acl,
    });
    if (mismatches) throw new Error(`${input.name}: table and linear scan differ on ${mismatches} headers`);
  }
  // Named sets: a 100,000-address gateway set, and single insert/delete on a loaded table.
  const gateways = Array.from({ length: 100_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  const setPolicy = definePolicy({ default: 'drop', sets: { gw: { type: 'address', elements: gateways } }, rules: [{ name: 'ike', src: '@gw', proto: 'udp', dport: [500, 4500], action: 'accept' }, { name: 'esp', src: '@gw', proto: 'esp', action: 'accept' }] });
  const t0 = performance.now();
  const c = Classifier.fromPolicy(setPolicy);
  const setBuild = performance.now() - t0;
  const frames = Array.from({ length: 4096 }, (_, i) => Buffer.from(`4500001c00000000401100000a${((i * 7) & 0xff).toString(16).padStart(2, '0')}${((i * 13) & 0xff).toString(16).padStart(2, '0')}${(i & 0xff).toString(16).padStart(2, '0')}0a00000101f401f400080000`, 'hex'));
  const { data, offsets } = require('../src/decode/packet').packFrames(frames);
  const out = new Uint32Array(frames.length * 3);
  const setLookup = best(() => c.native.classifyBatch(101, data, offsets, out), 20);
  const n = 10_000;
  const t1 = performance.now();
  for (let i = 0; i < n; i++) c.native.setAddress('gw', true, 4, new Uint8Array([172, 16, i >> 8, i & 255]), 32);
  const addUs = ((performance.now() - t1) * 1000) / n;
  const t2 = performance.now();
  for (let i = 0; i < n; i++) c.native.setAddress('gw', false, 4, new Uint8Array([172, 16, i >> 8, i & 255]), 32);
  const delUs = ((performance.now() - t2) * 1000) / n;
  const extra: Row[] = [
    { measure: '100,000-address gateway set: build (compile + load)', value: `${setBuild.toFixed(0)} ms` },
    { measure: '100,000-address gateway set: decode + classify, batched', value: `${((setLookup * 1e6) / frames.length).toFixed(1)} ns/packet` },
    { measure: 'named-set insert on a loaded table (from JavaScript, no rebuild)', value: `${addUs.toFixed(2)} µs` },
    { measure: 'named-set delete on a loaded table (from JavaScript, no rebuild)', value: `${delUs.toFixed(2)} µs` },
  ];
  if (typeof peer !== 'string') peer.cleanup();
  return { rows, extra, note };
}
