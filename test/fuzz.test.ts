/**
 * libFuzzer in CI: the targets of native/fuzz (decoder, table loader,
 * classification three ways, named sets) built with clang under ASan and
 * UBSan, seeded from the fixtures and generated inputs (support/fuzz-seeds.ts),
 * run for a fixed budget: at least FUZZ_MIN_EXECS executions in all, every
 * target within FUZZ_SECONDS. A crash is copied to
 * test/fixtures/fuzz-regressions/<target>/ and fails the run; the files
 * there are replayed by every run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { ROOT } from './support/compare';
import { writeSeeds, FUZZ_TARGETS, FuzzTarget } from './support/fuzz-seeds';

const CI = process.env.CI === 'true';
const MIN_EXECS = Number(process.env.FUZZ_MIN_EXECS ?? 10_000_000);
const SECONDS = Number(process.env.FUZZ_SECONDS ?? 150);
const BUILD = path.join(ROOT, 'build-fuzz');
const REGRESSIONS = path.join(ROOT, 'test', 'fixtures', 'fuzz-regressions');
/** Largest input per target (bytes): tables of the seed corpus stay below 16 KiB. */
const MAX_LEN: Record<FuzzTarget, number> = { decode: 2048, table: 16384, classify: 16384, sets: 512 };

function have(cmd: string): boolean {
  try { execFileSync(cmd, ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}
const missing = !have('clang++') ? 'clang++ is not installed (apt-get install clang libclang-rt-14-dev)' : !have('cmake') ? 'cmake is not installed' : null;
if (CI && missing) throw new Error(`the fuzzers cannot run in CI: ${missing}`);
const skip = missing ?? false;

let built = false;
function build(): void {
  if (built) return;
  execFileSync('cmake', ['-S', ROOT, '-B', BUILD, '-DCMAKE_BUILD_TYPE=Debug', '-DCMAKE_CXX_COMPILER=clang++', '-DNFSIEVE_LIBFUZZER=ON'], { stdio: 'ignore' });
  execFileSync('cmake', ['--build', BUILD, '-j2', '--target', ...FUZZ_TARGETS.map((t) => `${t}_libfuzzer`)], { stdio: ['ignore', 'ignore', 'inherit'] });
  built = true;
}
const binary = (t: FuzzTarget): string => path.join(BUILD, `${t}_libfuzzer`);

interface FuzzRun { target: FuzzTarget; execs: number; seconds: number; crashes: string[]; output: string }

/** One target for `seconds` (or `runs` executions, whichever comes first); crash inputs land in `artifacts`. */
function fuzz(target: FuzzTarget, seconds: number, runs: number, seeds: string, artifacts: string): Promise<FuzzRun> {
  const corpus = path.join(BUILD, 'corpus', target);
  fs.mkdirSync(corpus, { recursive: true });
  fs.mkdirSync(artifacts, { recursive: true });
  const args = [`-max_total_time=${seconds}`, `-runs=${runs}`, `-max_len=${MAX_LEN[target]}`, '-timeout=10', '-rss_limit_mb=2048',
    '-print_final_stats=1', `-artifact_prefix=${artifacts}/`, corpus, path.join(seeds, target)];
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(binary(target), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    child.stderr!.on('data', (d) => { output = (output + d).slice(-20000); });
    child.on('close', () => {
      const execs = Number(/stat::number_of_executed_units:\s*(\d+)/.exec(output)?.[1] ?? 0);
      const crashes = fs.readdirSync(artifacts).map((f) => path.join(artifacts, f));
      resolve({ target, execs, seconds: (Date.now() - started) / 1000, crashes, output });
    });
  });
}

test('fuzz regressions: every saved crash input runs clean now', { skip }, () => {
  build();
  let replayed = 0;
  for (const t of FUZZ_TARGETS) {
    const dir = path.join(REGRESSIONS, t);
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => path.join(dir, f)) : [];
    if (files.length === 0) continue;
    // libFuzzer runs each file given as an argument once; a crash exits non-zero.
    execFileSync(binary(t), files, { stdio: ['ignore', 'ignore', 'pipe'] });
    replayed += files.length;
  }
  assert.ok(replayed >= 3, `only ${replayed} regression inputs replayed: test/fixtures/fuzz-regressions is missing`);
});

test(`libFuzzer under ASan+UBSan: ${MIN_EXECS.toLocaleString('en-US')} executions or more in ${SECONDS} s, no finding`, { skip, timeout: (SECONDS * 2 + 300) * 1000 }, async () => {
  build();
  const seeds = path.join(BUILD, 'seeds');
  fs.rmSync(seeds, { recursive: true, force: true });
  const counts = writeSeeds(seeds);
  for (const t of FUZZ_TARGETS) assert.ok(counts[t] > 0, `no seed for ${t}`);
  const artifacts = path.join(BUILD, 'artifacts');
  fs.rmSync(artifacts, { recursive: true, force: true });
  // Two cores: the decoder (fast, most of the executions) on one, the three
  // slower targets one after the other on the other, each a third of the time.
  const third = Math.max(1, Math.floor(SECONDS / 3));
  const [decode, rest] = await Promise.all([
    fuzz('decode', SECONDS, MIN_EXECS, seeds, path.join(artifacts, 'decode')),
    (async () => {
      const out: FuzzRun[] = [];
      for (const t of ['table', 'classify', 'sets'] as const) out.push(await fuzz(t, third, 1 << 30, seeds, path.join(artifacts, t)));
      return out;
    })(),
  ]);
  const runs = [decode, ...rest];
  const report = runs.map((r) => `${r.target}: ${r.execs} executions in ${r.seconds.toFixed(1)} s`).join('; ');
  process.stdout.write(`# fuzz: ${report}\n`);
  for (const r of runs) {
    if (r.crashes.length === 0) continue;
    const keep = path.join(REGRESSIONS, r.target);
    fs.mkdirSync(keep, { recursive: true });
    for (const c of r.crashes) fs.copyFileSync(c, path.join(keep, path.basename(c)));
    assert.fail(`${r.target} found ${r.crashes.length} crashing input(s), saved under ${keep}:\n${r.output.slice(-4000)}`);
  }
  for (const r of runs) assert.ok(r.execs > 0, `${r.target} did not run:\n${r.output.slice(-2000)}`);
  const total = runs.reduce((n, r) => n + r.execs, 0);
  assert.ok(total >= MIN_EXECS, `${total} executions in all (${report}), fewer than ${MIN_EXECS}`);
});
