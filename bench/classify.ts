/**
 * Decision-table performance against the issue's targets: ClassBench acl1,
 * fw1 and ipc1 at 1k and 10k rules and synthesised to 100k, build cost,
 * memory (table and lookup index), batched lookup (tinybench), the native
 * linear scan, the TypeScript reference, JavaScript batches of 256, DPDK
 * rte_acl on the same rules and trace, named-set updates, and a
 * 100,000-address gateway set. Every lookup result is gated on equality with
 * the linear scan over the whole trace (the reference and rte_acl too).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadClassbenchRules } from '../src/classbench/classbench';
import { generateTrace, synthesizeClassbenchText } from '../src/classbench/generate';
import { packTupleRules } from '../test/support/linear';
import { testkit } from '../test/support/testkit';
import { compile } from '../src/compile/compile';
import { native, NativeClassifier } from '../src/native';
import { Classifier } from '../src/classifier';
import { definePolicy } from '../src/policy/define';
import { Policy } from '../src/policy/model';
import { DecodedPacket } from '../src/decode/packet';
import { referenceEvaluate, initialSets } from '../src/reference/evaluate';
import { Row, tinybench, nsPerItem } from './common';
import { rteAclPeer } from './rteacl';

/** The issue's targets (ns per packet, ms, MiB) by rule count. */
export const TARGETS: Record<string, { lookup: number; build: number; memory: number }> = {
  '1k': { lookup: 25, build: 20, memory: 2 },
  '10k': { lookup: 40, build: 150, memory: 24 },
  '100k': { lookup: 80, build: 2000, memory: 256 },
};

export interface SetResult {
  seed: string;
  size: string;
  rules: number;
  buildMs: number;
  firstBuildMs: number;
  memoryMiB: number;
  lookupNs: number;
  linearNs: number;
  referenceNs: number;
  rteAclNs: number | null;
}

/** What the native tuple_packet() builds: an IPv4 header that is only its 5-tuple. */
function tuplePacket(t: Uint32Array, i: number): DecodedPacket {
  const be = (x: number): Uint8Array => new Uint8Array([x >>> 24, (x >>> 16) & 255, (x >>> 8) & 255, x & 255]);
  const proto = t[5 * i + 4];
  return {
    family: 4, srcBytes: be(t[5 * i]), dstBytes: be(t[5 * i + 1]), proto, ipProto: proto, fragment: 'none', ttl: 64,
    totalLength: 0, sport: t[5 * i + 2], dport: t[5 * i + 3], spi: null, espSeq: null, ah: null, icmp: null, ike: null,
    natt: null, malformed: null, l3Offset: 0, l4Offset: 20, fragOffset: 0, nfProto: proto, nfStatus: 0, nfAvail: 0, nfLater: false, nfAh: 'none', nftProto: proto,
  };
}

function buildOnce(policy: Policy): { handle: NativeClassifier; ms: number; tableBytes: number } {
  const t0 = performance.now();
  const compiled = compile(policy, { analyse: false });
  const handle = new (native().Classifier)(compiled.table);
  return { handle, ms: performance.now() - t0, tableBytes: compiled.table.length };
}

export async function benchClassbench(sharedDir: string, log: (s: string) => void): Promise<{ rows: Row[]; extra: Row[]; results: SetResult[]; note: string }> {
  const dir = path.join(sharedDir, 'corpus', 'classbench');
  const rows: Row[] = [];
  const results: SetResult[] = [];
  if (!fs.existsSync(dir)) return { rows, extra: [], results, note: 'ClassBench corpus not found.' };
  const peer = rteAclPeer();
  const note = typeof peer === 'string' ? peer : 'DPDK rte_acl (Debian dpdk-dev 22.11, --no-huge -m 3000, batches of 64, one core) runs the same rule files and trace; its results are checked against the linear scan too.';
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-bench-'));
  const { Bench } = await tinybench();
  const addon = native();
  try {
    for (const seed of ['acl1', 'fw1', 'ipc1']) {
      for (const size of ['1k', '10k', '100k']) {
        let file = path.join(dir, `${seed}_${size}`);
        if (size === '100k') {
          // Synthesised from the 10k set's field distributions, as a ClassBench file rte_acl can read too.
          file = path.join(tmp, `${seed}_100k`);
          fs.writeFileSync(file, synthesizeClassbenchText(fs.readFileSync(path.join(dir, `${seed}_10k`), 'utf8'), 100_000, 1));
        }
        const name = size === '100k' ? `${seed}_100k (synthesised)` : `${seed}_${size}`;
        log(`  ${name}\n`);
        const policy = loadClassbenchRules(file);
        const rules = policy.rules.length;
        const trace = generateTrace(policy, 100_000, 2);
        // Builds: the first one in this process, then the best of two more.
        const first = buildOnce(policy);
        let buildMs = first.ms;
        let handle = first.handle;
        for (let i = 0; i < 2; i++) {
          const again = buildOnce(policy);
          buildMs = Math.min(buildMs, again.ms);
          handle = again.handle;
        }
        const memoryMiB = (first.tableBytes + handle.indexBytes) / 2 ** 20;
        const packed = packTupleRules(policy);
        const want = new Int32Array(trace.count);
        testkit().linearClassifyTuples(packed, trace.tuples, want);
        const got = new Int32Array(trace.count);
        handle.classifyTuples(trace.tuples, got);
        let mismatches = 0;
        for (let i = 0; i < trace.count; i++) if (got[i] !== want[i]) mismatches++;
        if (mismatches) throw new Error(`${name}: table and linear scan differ on ${mismatches} headers`);
        // The TypeScript reference and the linear scan on a sample: they are slow.
        const refSample = Math.max(100, Math.min(5000, Math.round(5e6 / rules)));
        const linSample = Math.max(1000, Math.min(20_000, Math.round(2e8 / rules)));
        const sets = initialSets(policy);
        const packets = Array.from({ length: refSample }, (_, i) => tuplePacket(trace.tuples, i));
        for (let i = 0; i < refSample; i++) {
          const r = referenceEvaluate(policy, packets[i], {}, sets).rule;
          if (r !== want[i]) throw new Error(`${name}: the TypeScript reference gives rule ${r} for header ${i}, the linear scan ${want[i]}`);
        }
        const out256 = new Int32Array(256);
        const linOut = new Int32Array(linSample);
        const bench = new Bench({ time: size === '100k' ? 1000 : 500, iterations: 3 });
        bench
          .add('table', () => { handle.classifyTuples(trace.tuples, got); })
          .add('batches of 256', () => {
            for (let i = 0; i < trace.count; i += 256) handle.classifyTuples(trace.tuples.subarray(i * 5, Math.min(trace.count, i + 256) * 5), out256);
          })
          .add('linear', () => { testkit().linearClassifyTuples(packed, trace.tuples.subarray(0, linSample * 5), linOut); })
          .add('reference', () => { for (const p of packets) referenceEvaluate(policy, p, {}, sets); });
        await bench.run();
        const task = (n: string): { result?: unknown } => bench.tasks.find((t) => t.name === n)!;
        const lookupNs = nsPerItem(task('table'), trace.count, true);
        const medianNs = nsPerItem(task('table'), trace.count);
        const batchedNs = nsPerItem(task('batches of 256'), trace.count, true);
        const linearNs = nsPerItem(task('linear'), linSample, true);
        const referenceNs = nsPerItem(task('reference'), refSample, true);
        let acl: Row = {};
        let rteAclNs: number | null = null;
        if (typeof peer !== 'string') {
          const r = peer.run(file, trace.tuples, size === '100k' ? 300_000 : 600_000);
          if ('error' in r) acl = { 'rte_acl build ms': r.error, 'rte_acl ns/pkt': '-' };
          else {
            let aclDiff = 0;
            for (let i = 0; i < trace.count; i++) if (r.results[i] !== want[i]) aclDiff++;
            rteAclNs = aclDiff ? null : r.ns_per_packet;
            acl = { 'rte_acl build ms': r.build_ms.toFixed(0), 'rte_acl ns/pkt': `${r.ns_per_packet.toFixed(1)}${aclDiff ? ` (${aclDiff} differ!)` : ''}` };
          }
        }
        results.push({ seed, size, rules, buildMs, firstBuildMs: first.ms, memoryMiB, lookupNs, linearNs, referenceNs, rteAclNs });
        rows.push({
          'rule set': name,
          rules,
          'build ms (first)': `${buildMs.toFixed(0)} (${first.ms.toFixed(0)})`,
          'table + index MiB': `${(first.tableBytes / 2 ** 20).toFixed(2)} + ${(handle.indexBytes / 2 ** 20).toFixed(2)}`,
          'lookup ns/pkt (median)': `${lookupNs.toFixed(1)} (${medianNs.toFixed(1)})`,
          'linear scan ns/pkt': linearNs.toFixed(0),
          'TS reference ns/pkt': referenceNs.toFixed(0),
          'JS batches of 256, % of one call': ((lookupNs / batchedNs) * 100).toFixed(0),
          'equal to linear scan': `yes (${trace.count})`,
          ...acl,
        });
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (typeof peer !== 'string') peer.cleanup();
  }
  return { rows, extra: benchNamedSets(dir), results, note };
}

/**
 * A 100,000-address gateway set against the same policy with a 1-address set
 * and a 1k-rule ClassBench table, all on the same frames (decoded and
 * classified); and single inserts and deletes on a loaded table.
 */
function benchNamedSets(dir: string): Row[] {
  const gatewayPolicy = (count: number): Policy => definePolicy({
    default: 'drop',
    sets: { gw: { type: 'address', elements: Array.from({ length: count }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`) } },
    rules: [{ name: 'ike', src: '@gw', proto: 'udp', dport: [500, 4500], action: 'accept' }, { name: 'esp', src: '@gw', proto: 'esp', action: 'accept' }],
  });
  const big = gatewayPolicy(100_000);  // reading 100,000 address strings is not part of the build
  const t0 = performance.now();
  const c = Classifier.fromPolicy(big);
  const setBuild = performance.now() - t0;
  // UDP 500 from 10.a.b.c: some in the set, most not.
  const frames = Array.from({ length: 4096 }, (_, i) => Buffer.from(`4500001c00000000401100000a${((i * 7) & 0xff).toString(16).padStart(2, '0')}${((i * 13) & 0xff).toString(16).padStart(2, '0')}${(i & 0xff).toString(16).padStart(2, '0')}0a00000101f401f400080000`, 'hex'));
  const { data, offsets } = require('../src/decode/packet').packFrames(frames);
  const out = new Uint32Array(frames.length * 3);
  const perPacket = (k: Classifier): number => {
    let best = Infinity;
    for (let i = 0; i < 100; i++) {
      const t = performance.now();
      k.native.classifyBatch(101, data, offsets, out);
      best = Math.min(best, performance.now() - t);
    }
    return (best * 1e6) / frames.length;
  };
  const one = Classifier.fromPolicy(gatewayPolicy(1));
  const aclFile = path.join(dir, 'acl1_1k');
  const acl = fs.existsSync(aclFile) ? Classifier.fromPolicy(loadClassbenchRules(aclFile)) : null;
  const n = 10_000;
  const t1 = performance.now();
  for (let i = 0; i < n; i++) c.native.setAdd('gw', { family: 4, bytes: new Uint8Array([172, 16, i >> 8, i & 255]), length: 32 }, 0);
  const addUs = ((performance.now() - t1) * 1000) / n;
  const t2 = performance.now();
  for (let i = 0; i < n; i++) c.native.setRemove('gw', { family: 4, bytes: new Uint8Array([172, 16, i >> 8, i & 255]), length: 32 }, 3);
  const delUs = ((performance.now() - t2) * 1000) / n;
  return [
    { measure: '100,000-address gateway set: build (compile + load)', value: `${setBuild.toFixed(0)} ms` },
    { measure: '100,000-address gateway set: decode + classify, batched', value: `${perPacket(c).toFixed(1)} ns/packet` },
    { measure: 'the same policy with a 1-address set, same frames', value: `${perPacket(one).toFixed(1)} ns/packet` },
    ...(acl ? [{ measure: 'a 1k-rule table (acl1_1k), same frames', value: `${perPacket(acl).toFixed(1)} ns/packet` }] : []),
    { measure: 'named-set insert on a loaded table (from JavaScript, no rebuild)', value: `${addUs.toFixed(2)} µs` },
    { measure: 'named-set delete on a loaded table (from JavaScript, no rebuild)', value: `${delUs.toFixed(2)} µs` },
  ];
}

/** One row per target and rule count: the measured value per set, and met or by how much it is missed. */
export function targetRows(results: SetResult[]): Row[] {
  const rows: Row[] = [];
  const verdict = (v: number, limit: number, unit: string): string =>
    v <= limit ? `${v.toFixed(unit === 'MiB' ? 1 : 0)} ${unit}: met` : `${v.toFixed(unit === 'MiB' ? 1 : 0)} ${unit}: missed (${(v / limit).toFixed(1)}x)`;
  for (const size of ['1k', '10k', '100k']) {
    const t = TARGETS[size];
    for (const [what, limit, unit, pick] of [
      ['lookup', t.lookup, 'ns', (r: SetResult) => r.lookupNs],
      ['build (compile + load)', t.build, 'ms', (r: SetResult) => r.buildMs],
      ['memory (table + index)', t.memory, 'MiB', (r: SetResult) => r.memoryMiB],
    ] as const) {
      const row: Row = { target: `${what}, ${size} rules: at most ${limit} ${unit}` };
      for (const r of results.filter((x) => x.size === size)) row[r.seed] = verdict(pick(r), limit, unit);
      rows.push(row);
    }
  }
  return rows;
}
