/**
 * Build time, split: compile (policy -> table bytes, src/compile) and load
 * (table -> classifier with its lookup index and cut trees, native) for
 * chosen ClassBench sets, best and median of N runs in one process, plus the
 * first (cold JIT) run. `node build-test/bench/build.js [--runs N] [set...]`,
 * sets such as acl2_10k or fw1_100k (100k: synthesised from the 10k set as
 * bench/classify.ts does); default: the sets issue 12's build targets name.
 * Reads the shared corpus beside the clone, else test/fixtures/classbench.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadClassbenchRules, parseClassbenchRules } from '../src/classbench/classbench';
import { compile } from '../src/compile/compile';
import { native } from '../src/native';
import { Policy } from '../src/policy/model';
import { synthesiseLarge, TARGETS } from './classify';
import { markdownTable, machine, Row } from './common';

const ROOT = path.resolve(__dirname, '..', '..');
const DIRS = [path.resolve(ROOT, '..', 'shared', 'corpus', 'classbench'), path.join(ROOT, 'test', 'fixtures', 'classbench')];
const DEFAULT_SETS = ['acl1_10k', 'acl2_10k', 'fw1_10k', 'fw4_10k', 'ipc1_10k', 'acl1_100k', 'fw1_100k', 'ipc1_100k'];

/** The rules of a set named family_size, from the first directory that has them. */
export function loadSet(name: string): Policy {
  const m = /^(\w+?)_(1k|10k|100k)$/.exec(name);
  if (!m) throw new Error(`${name}: not a set name (family_1k, _10k or _100k)`);
  for (const dir of DIRS) {
    if (m[2] === '100k' && fs.existsSync(path.join(dir, `${m[1]}_10k`))) return parseClassbenchRules(synthesiseLarge(dir, m[1]), name);
    if (fs.existsSync(path.join(dir, name))) return loadClassbenchRules(path.join(dir, name));
  }
  throw new Error(`${name}: not found in ${DIRS.join(' or ')}`);
}

/** Wall-clock milliseconds per run, and the process's CPU milliseconds (user + sys, all threads) per phase: steadier on a shared machine. */
export interface BuildTimes { compile: number[]; load: number[]; total: number[]; compileCpu: number[]; loadCpu: number[] }

/** Compile and load `runs` times; the times of each run, in milliseconds, in run order. */
export function timeBuilds(policy: Policy, runs: number): BuildTimes {
  const t: BuildTimes = { compile: [], load: [], total: [], compileCpu: [], loadCpu: [] };
  const cpu = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  for (let i = 0; i < runs; i++) {
    const c0 = cpu(), t0 = performance.now();
    const table = compile(policy, { analyse: false }).table;
    const c1 = cpu(), t1 = performance.now();
    const handle = new (native().Classifier)(table);
    const c2 = cpu(), t2 = performance.now();
    if (handle.indexBytes < 0) throw new Error('unreachable');
    t.compile.push(t1 - t0);
    t.load.push(t2 - t1);
    t.total.push(t2 - t0);
    t.compileCpu.push(c1 - c0);
    t.loadCpu.push(c2 - c1);
  }
  return t;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (xs: number[]): string => `${Math.min(...xs).toFixed(0)} / ${median(xs).toFixed(0)}`;

function main(): void {
  const args = process.argv.slice(2);
  let runs = 5;
  const at = args.indexOf('--runs');
  if (at >= 0) {
    runs = Number(args[at + 1]);
    args.splice(at, 2);
  }
  if (!(runs >= 1)) throw new Error('--runs needs a positive count');
  const sets = args.length ? args : DEFAULT_SETS;
  process.stderr.write(`machine: ${machine()}\n`);
  const rows: Row[] = [];
  for (const name of sets) {
    const policy = loadSet(name);
    const t = timeBuilds(policy, runs + 1);
    const first = t.total[0];
    const warm = { compile: t.compile.slice(1), load: t.load.slice(1), total: t.total.slice(1), compileCpu: t.compileCpu.slice(1), loadCpu: t.loadCpu.slice(1) };
    const target = TARGETS[name.replace(/^\w+?_/, '')]?.build;
    rows.push({
      set: name, rules: policy.rules.length, 'compile ms (best / median)': fmt(warm.compile), 'load ms (best / median)': fmt(warm.load),
      'CPU ms, compile / load (median)': `${median(warm.compileCpu).toFixed(0)} / ${median(warm.loadCpu).toFixed(0)}`,
      'compile + load ms (best / median)': fmt(warm.total), 'first build ms': first.toFixed(0), target: target === undefined ? '-' : `${target}`,
    });
    process.stderr.write(`${name}: ${JSON.stringify(rows[rows.length - 1])}\n`);
  }
  process.stdout.write(`${runs} runs per set after a first (cold) one, one process; wall-clock ms unless marked CPU\n\n` + markdownTable(rows));
}

if (require.main === module) main();
