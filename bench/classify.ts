/**
 * Decision-table performance against the targets: ClassBench acl1,
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
import { DecodedPacket, packFrames } from '../src/decode/packet';
import { referenceEvaluate, initialSets } from '../src/reference/evaluate';
import { Row, tinybench, nsPerItem } from './common';
import { AclPeer, BENCH_CPU, rteAclPeer } from './rteacl';

/**
 * The targets (issue 12): lookup at most 25 ns at 1k, at most 0.6x rte_acl's
 * at 10k and 0.8x at 100k (same run, same trace); builds (compile + load) at
 * most 20 ms, 150 ms and 2 s; memory never above rte_acl's for the same set.
 */
export const TARGETS: Record<string, { lookupNs?: number; lookupRatio?: number; build: number }> = {
  '1k': { lookupNs: 25, build: 20 },
  '10k': { lookupRatio: 0.6, build: 150 },
  '100k': { lookupRatio: 0.8, build: 2000 },
};

/** The ClassBench families in the shared corpus (each at 1k and 10k; 100k synthesised from the 10k set). */
export const SEEDS = ['acl1', 'acl2', 'acl3', 'acl4', 'acl5', 'fw1', 'fw2', 'fw3', 'fw4', 'fw5', 'ipc1', 'ipc2'];
const TRACE_COUNT = 100_000;
/** Alternating measurement rounds (nfsieve, rte_acl, nfsieve, rte_acl): each program's best round is reported. */
const ROUNDS = 2;

/** The trace shapes every set is measured on. */
export const TRACES = [
  { key: 'classbench', label: 'ClassBench-style: a rule, a point in it, Pareto repeats' },
  { key: 'uniform', label: 'uniform over rules, no repeats' },
  { key: 'random', label: 'random headers: most match no rule or only the last' },
] as const;
export type TraceKey = (typeof TRACES)[number]['key'];

export interface TraceResult {
  trace: TraceKey;
  lookupNs: number;
  medianNs: number;
  /** Mean and 99th percentile of one JavaScript call on 256 headers, per header. */
  batchMeanNs: number;
  batchP99Ns: number;
  rteAclNs: number | null;
}

export interface SetResult {
  seed: string;
  size: string;
  rules: number;
  buildMs: number;
  firstBuildMs: number;
  memoryMiB: number;
  rteAclMiB: number | null;
  rteAclBuildMs: number | null;
  /** ClassBench-style trace (the figures the targets and the chart use). */
  lookupNs: number;
  linearNs: number;
  referenceNs: number;
  rteAclNs: number | null;
  traces: TraceResult[];
}

/** Uniformly random 5-tuples (TCP, UDP or any protocol, a third each). */
export function randomTuples(count: number, seed: number): Uint32Array {
  let x = seed >>> 0 || 1;
  const next = (): number => {  // xorshift32
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x;
  };
  const t = new Uint32Array(count * 5);
  for (let i = 0; i < count; i++) {
    const k = next() % 3;
    t.set([next(), next(), next() & 0xffff, next() & 0xffff, k === 0 ? 6 : k === 1 ? 17 : next() & 0xff], i * 5);
  }
  return t;
}

export function makeTrace(policy: Policy, key: TraceKey): Uint32Array {
  if (key === 'classbench') return generateTrace(policy, TRACE_COUNT, 2).tuples;
  if (key === 'uniform') return generateTrace(policy, TRACE_COUNT, 3, { a: 1, b: 0 }).tuples;
  return randomTuples(TRACE_COUNT, 4);
}

/** What the native tuple_packet() builds: an IPv4 header that is only its 5-tuple. */
function tuplePacket(t: Uint32Array, i: number): DecodedPacket {
  const be = (x: number): Uint8Array => new Uint8Array([x >>> 24, (x >>> 16) & 255, (x >>> 8) & 255, x & 255]);
  const proto = t[5 * i + 4];
  return {
    family: 4, srcBytes: be(t[5 * i]), dstBytes: be(t[5 * i + 1]), proto, ipProto: proto, fragment: 'none', ttl: 64,
    totalLength: 0, sport: t[5 * i + 2], dport: t[5 * i + 3], spi: null, espSeq: null, ah: null, icmp: null, ike: null,
    natt: null, malformed: null, l3Offset: 0, l4Offset: 20, fragOffset: 0, nfProto: proto, nfStatus: 0, nfAvail: 0, nfLater: false, nfAh: 'none', nftProto: proto, nftSport: t[5 * i + 2], nftDport: t[5 * i + 3],
  };
}

function buildOnce(policy: Policy): { handle: NativeClassifier; ms: number; tableBytes: number } {
  const t0 = performance.now();
  const compiled = compile(policy, { analyse: false });
  const handle = new (native().Classifier)(compiled.table);
  return { handle, ms: performance.now() - t0, tableBytes: compiled.table.length };
}

/** Per header: the mean and the 99th percentile of one call on 256 headers, over three passes. */
function batchTimes(handle: NativeClassifier, tuples: Uint32Array): { mean: number; p99: number } {
  const out = new Int32Array(256);
  const times: number[] = [];
  const n = tuples.length / 5;
  for (let pass = 0; pass < 3; pass++) {
    for (let i = 0; i + 256 <= n; i += 256) {
      const sub = tuples.subarray(i * 5, (i + 256) * 5);
      const t0 = process.hrtime.bigint();
      handle.classifyTuples(sub, out);
      times.push(Number(process.hrtime.bigint() - t0));
    }
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return { mean: mean / 256, p99: times[Math.min(times.length - 1, Math.floor(times.length * 0.99))] / 256 };
}

/** Fails the run unless `got` equals the linear scan's answers. */
function gate(name: string, what: string, got: Int32Array, want: Int32Array): void {
  let mismatches = 0;
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) mismatches++;
  if (mismatches) throw new Error(`${name} (${what}): ${mismatches} headers differ from the linear scan`);
}

/** The 100k set of a family: synthesised from its 10k set (the same text every run; bench/build.ts reads it too). */
export function synthesiseLarge(dir: string, seed: string): string {
  return synthesizeClassbenchText(fs.readFileSync(path.join(dir, `${seed}_10k`), 'utf8'), 100_000, 1);
}

export async function benchClassbench(sharedDir: string, log: (s: string) => void, seeds: string[] = SEEDS, sizes: string[] = ['1k', '10k', '100k'], large: string[] = seeds): Promise<{ rows: Row[]; extra: Row[]; results: SetResult[]; note: string }> {
  const dir = path.join(sharedDir, 'corpus', 'classbench');
  const rows: Row[] = [];
  const results: SetResult[] = [];
  if (!fs.existsSync(dir)) return { rows, extra: [], results, note: 'ClassBench corpus not found.' };
  const peer = rteAclPeer();
  const note = typeof peer === 'string' ? peer : `DPDK rte_acl (Debian dpdk-dev 22.11, --no-huge -m 3000, batches of 64, one core) runs the same rule files and traces on CPU ${BENCH_CPU}, where nfsieve's lookups run too, in ${ROUNDS} rounds alternating with nfsieve's (a build and five passes over each trace a round; its best pass and best build are reported); its results in every round are checked against the linear scan too, and its memory is the runtime footprint DPDK logs.`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-bench-'));
  // nfsieve's lookups run on the JavaScript thread: pin it to rte_acl's CPU,
  // so that both are timed on the same core (one vCPU of this VM has run
  // lookups 1.5x slower than the other for minutes at a time).
  const cpus = testkit().setThreadCpus([BENCH_CPU]);
  try {
    for (const seed of seeds) {
      for (const size of sizes) {
        if (size === '100k' && !large.includes(seed)) continue;
        let file = path.join(dir, `${seed}_${size}`);
        if (size === '100k') {
          // Synthesised from the 10k set's field distributions, as a ClassBench file rte_acl can read too.
          file = path.join(tmp, `${seed}_100k`);
          fs.writeFileSync(file, synthesiseLarge(dir, seed));
        }
        if (!fs.existsSync(file)) continue;
        const name = size === '100k' ? `${seed}_100k (synthesised)` : `${seed}_${size}`;
        log(`  ${name}\n`);
        const r = await benchSet(name, seed, size, file, peer);
        results.push(r.result);
        rows.push(...r.rows);
      }
    }
  } finally {
    testkit().setThreadCpus(cpus);
    fs.rmSync(tmp, { recursive: true, force: true });
    if (typeof peer !== 'string') peer.cleanup();
  }
  return { rows, extra: benchNamedSets(dir), results, note };
}

type AclResult = ReturnType<Exclude<AclPeer, string>['run']>;

async function benchSet(name: string, seed: string, size: string, file: string, peer: AclPeer | string): Promise<{ result: SetResult; rows: Row[] }> {
  const { Bench } = await tinybench();
  const policy = loadClassbenchRules(file);
  const rules = policy.rules.length;
  const traces = TRACES.map((t) => makeTrace(policy, t.key));
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
  const wants = traces.map((tuples) => {
    const want = new Int32Array(tuples.length / 5);
    testkit().linearClassifyTuples(packed, tuples, want);
    const got = new Int32Array(want.length);
    handle.classifyTuples(tuples, got);
    return want;
  });
  traces.forEach((tuples, k) => {
    const got = new Int32Array(wants[k].length);
    handle.classifyTuples(tuples, got);
    gate(name, TRACES[k].key, got, wants[k]);
  });
  const cb = traces[0], want = wants[0];
  // The TypeScript reference and the linear scan on a sample: they are slow.
  const refSample = Math.max(100, Math.min(5000, Math.round(5e6 / rules)));
  const linSample = Math.max(1000, Math.min(20_000, Math.round(2e8 / rules)));
  const sets = initialSets(policy);
  const packets = Array.from({ length: refSample }, (_, i) => tuplePacket(cb, i));
  for (let i = 0; i < refSample; i++) {
    const r = referenceEvaluate(policy, packets[i], {}, sets).rule;
    if (r !== want[i]) throw new Error(`${name}: the TypeScript reference gives rule ${r} for header ${i}, the linear scan ${want[i]}`);
  }
  const got = new Int32Array(TRACE_COUNT);
  const linOut = new Int32Array(linSample);
  // Alternating rounds: nfsieve's traces, then rte_acl's, then both again,
  // each program keeping its best round. This vCPU has slow phases that last
  // minutes; alternating gives both programs the same chance of a quiet one.
  const best = TRACES.map(() => ({ lookupNs: Infinity, medianNs: Infinity, rteAclNs: Infinity }));
  let linearNs = NaN, referenceNs = NaN;
  let acl: AclResult | null = null;
  for (let round = 0; round < ROUNDS; round++) {
    const bench = new Bench({ time: (size === '100k' ? 600 : 300) / ROUNDS, iterations: 3 });
    TRACES.forEach((t, k) => bench.add(t.key, () => { handle.classifyTuples(traces[k], got); }));
    if (round === 0) {
      bench
        .add('linear', () => { testkit().linearClassifyTuples(packed, cb.subarray(0, linSample * 5), linOut); })
        .add('reference', () => { for (const p of packets) referenceEvaluate(policy, p, {}, sets); });
    }
    await bench.run();
    const task = (n: string): { result?: unknown } => bench.tasks.find((t) => t.name === n)!;
    if (round === 0) {
      linearNs = nsPerItem(task('linear'), linSample, true);
      referenceNs = nsPerItem(task('reference'), refSample, true);
    }
    TRACES.forEach((t, k) => {
      best[k].lookupNs = Math.min(best[k].lookupNs, nsPerItem(task(t.key), TRACE_COUNT, true));
      best[k].medianNs = Math.min(best[k].medianNs, nsPerItem(task(t.key), TRACE_COUNT));
    });
    if (typeof peer === 'string' || (acl !== null && 'error' in acl)) continue;
    const run = peer.run(file, traces, size === '100k' ? 300_000 : 600_000);
    if ('error' in run) { acl = run; continue; }
    run.runs.forEach((r, k) => {
      gate(name, `rte_acl, ${TRACES[k].key}, round ${round + 1}`, r.results, wants[k]);
      best[k].rteAclNs = Math.min(best[k].rteAclNs, r.ns_per_packet);
    });
    acl = acl === null ? run : { ...run, build_ms: Math.min(acl.build_ms, run.build_ms) };
  }
  const aclOk = acl && !('error' in acl) ? acl : null;
  const perTrace: TraceResult[] = TRACES.map((t, k) => {
    const b = batchTimes(handle, traces[k]);
    return { trace: t.key, lookupNs: best[k].lookupNs, medianNs: best[k].medianNs, batchMeanNs: b.mean, batchP99Ns: b.p99, rteAclNs: aclOk ? best[k].rteAclNs : null };
  });
  const result: SetResult = {
    seed, size, rules, buildMs, firstBuildMs: first.ms, memoryMiB,
    rteAclMiB: aclOk && aclOk.memory_bytes !== null ? aclOk.memory_bytes / 2 ** 20 : null,
    rteAclBuildMs: aclOk ? aclOk.build_ms : null,
    lookupNs: perTrace[0].lookupNs, linearNs,
    referenceNs, rteAclNs: perTrace[0].rteAclNs, traces: perTrace,
  };
  const rows = perTrace.map((t, k): Row => ({
    'rule set': name,
    trace: t.trace,
    rules,
    'build ms (first)': k ? '' : `${buildMs.toFixed(0)} (${first.ms.toFixed(0)})`,
    'MiB: table + index (rte_acl)': k ? '' : `${(first.tableBytes / 2 ** 20).toFixed(2)} + ${(handle.indexBytes / 2 ** 20).toFixed(2)} (${result.rteAclMiB === null ? '-' : result.rteAclMiB.toFixed(2)})`,
    'lookup ns/pkt (median)': `${t.lookupNs.toFixed(1)} (${t.medianNs.toFixed(1)})`,
    'JS batch of 256: mean / p99 ns/pkt': `${t.batchMeanNs.toFixed(1)} / ${t.batchP99Ns.toFixed(1)}`,
    'linear scan / TS reference ns/pkt': k ? '' : `${result.linearNs.toFixed(0)} / ${result.referenceNs.toFixed(0)}`,
    'rte_acl build ms': k ? '' : acl === null ? '-' : 'error' in acl ? acl.error : acl.build_ms.toFixed(0),
    'rte_acl ns/pkt': t.rteAclNs === null ? '-' : t.rteAclNs.toFixed(1),
    'nfsieve / rte_acl': t.rteAclNs === null ? '-' : (t.lookupNs / t.rteAclNs).toFixed(2),
    'equal to linear scan': `yes (${TRACE_COUNT})`,
  }));
  return { result, rows };
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
  const { data, offsets } = packFrames(frames);
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

/** One row per target and rule count, one column per family: the measured value, and met or by how much it is missed. */
export function targetRows(results: SetResult[]): Row[] {
  const rows: Row[] = [];
  const seeds = [...new Set(results.map((r) => r.seed))];
  const cell = (v: number | null, limit: number | null, text: (v: number) => string): string => {
    if (v === null || limit === null) return v === null ? '-' : `${text(v)}: no rte_acl figure`;
    return v <= limit ? `${text(v)}: met` : `${text(v)}: missed (${(v / limit).toFixed(2)}x)`;
  };
  for (const size of ['1k', '10k', '100k']) {
    const t = TARGETS[size];
    const of = (seed: string): SetResult | undefined => results.find((x) => x.size === size && x.seed === seed);
    for (const trace of TRACES) {
      const row: Row = { target: t.lookupNs ? `lookup, ${size}, ${trace.key} trace: at most ${t.lookupNs} ns` : `lookup, ${size}, ${trace.key} trace: at most ${t.lookupRatio}x rte_acl` };
      for (const seed of seeds) {
        const x = of(seed)?.traces.find((y) => y.trace === trace.key);
        if (!x) continue;
        if (t.lookupNs) row[seed] = cell(x.lookupNs, t.lookupNs, (v) => `${v.toFixed(0)} ns`);
        else row[seed] = cell(x.rteAclNs === null ? null : x.lookupNs / x.rteAclNs, x.rteAclNs === null ? null : t.lookupRatio!, (v) => `${v.toFixed(2)}x`);
      }
      rows.push(row);
    }
    const build: Row = { target: `build (compile + load), ${size}: at most ${t.build} ms` };
    const memory: Row = { target: `memory (table + index), ${size}: at most rte_acl's` };
    for (const seed of seeds) {
      const x = of(seed);
      if (!x) continue;
      build[seed] = cell(x.buildMs, t.build, (v) => `${v.toFixed(0)} ms`);
      memory[seed] = x.rteAclMiB === null ? `${x.memoryMiB.toFixed(1)} MiB: no rte_acl figure` : cell(x.memoryMiB, x.rteAclMiB, (v) => `${v.toFixed(1)} MiB`);
    }
    rows.push(build, memory);
  }
  return rows;
}
