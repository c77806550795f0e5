/**
 * DPDK rte_acl beside the decision table: bench/peers/acl_bench.c, built
 * against Debian's dpdk-dev when it is installed (skipped with a message
 * otherwise), run with `--no-huge -m 3000` so it needs no hugepages.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

/** The CPU rte_acl runs on (its EAL's -l) and the ClassBench bench measures nfsieve on: the same core for both. */
export const BENCH_CPU = 0;

export interface AclRun { ns_per_packet: number; results: Int32Array }

export interface AclPeer {
  /** One build, then each trace classified: its best pass and its results. `memory_bytes`: the context's runtime memory as DPDK logs it (null when not logged). */
  run(rulesFile: string, traces: Uint32Array[], timeoutMs?: number): { build_ms: number; memory_bytes: number | null; runs: AclRun[] } | { error: string };
  cleanup(): void;
}

export function rteAclPeer(): AclPeer | string {
  const cflags = spawnSync('pkg-config', ['--cflags', '--libs', 'libdpdk'], { encoding: 'utf8' });
  if (cflags.status !== 0) return 'DPDK rte_acl not measured: dpdk-dev is not installed (apt-get install -y dpdk-dev)';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-rteacl-'));
  const bin = path.join(dir, 'acl_bench');
  const cc = spawnSync('sh', ['-c', `cc -O2 ${JSON.stringify(path.join(ROOT, 'bench', 'peers', 'acl_bench.c'))} ${cflags.stdout.trim()} -o ${JSON.stringify(bin)}`], { encoding: 'utf8' });
  if (cc.status !== 0) return `DPDK rte_acl not measured: building the peer failed: ${cc.stderr.trim().split('\n')[0]}`;
  return {
    run(rulesFile, traces, timeoutMs = 600_000) {
      const tfiles = traces.map((tuples, i) => {
        const tfile = path.join(dir, `tuples${i}.bin`);
        fs.writeFileSync(tfile, Buffer.from(tuples.buffer, tuples.byteOffset, tuples.byteLength));
        return tfile;
      });
      const ofile = path.join(dir, 'out.bin');
      const r = spawnSync(bin, [rulesFile, tfiles.join(','), ofile, '--no-huge', '-m', '3000', '--no-pci', '-l', String(BENCH_CPU), '--log-level=lib.eal:error', '--log-level=lib.acl:debug'],
        { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
      if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return { error: `rte_acl gave up: no result within ${Math.round(timeoutMs / 1000)} s` };
      const line = (r.stdout ?? '').trim().split('\n').find((l) => l.startsWith('{'));
      if (r.status !== 0 || !line) return { error: `rte_acl failed: ${(r.stderr ?? '').trim().split('\n').slice(-1)[0] ?? r.status}` };
      const o = JSON.parse(line) as { build_ms: number; runs: { ns_per_packet: number }[] };
      const runs = o.runs.map((run, i) => {
        const buf = fs.readFileSync(`${ofile}.${i}`);
        return { ns_per_packet: run.ns_per_packet, results: new Int32Array(buf.buffer, buf.byteOffset, buf.length / 4) };
      });
      const mem = /^total: (\d+) bytes$/m.exec(r.stderr ?? '');
      return { build_ms: o.build_ms, memory_bytes: mem ? Number(mem[1]) : null, runs };
    },
    cleanup() { fs.rmSync(dir, { recursive: true, force: true }); },
  };
}
