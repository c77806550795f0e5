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

export interface AclPeer {
  run(rulesFile: string, tuples: Uint32Array, timeoutMs?: number): { build_ms: number; ns_per_packet: number; results: Int32Array } | { error: string };
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
    run(rulesFile, tuples, timeoutMs = 600_000) {
      const tfile = path.join(dir, 'tuples.bin');
      const ofile = path.join(dir, 'out.bin');
      fs.writeFileSync(tfile, Buffer.from(tuples.buffer, tuples.byteOffset, tuples.byteLength));
      const r = spawnSync(bin, [rulesFile, tfile, ofile, '--no-huge', '-m', '3000', '--no-pci', '-l', '0', '--log-level=lib.eal:error'], { encoding: 'utf8', timeout: timeoutMs });
      if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return { error: `rte_acl gave up: no result within ${Math.round(timeoutMs / 1000)} s` };
      const line = (r.stdout ?? '').trim().split('\n').find((l) => l.startsWith('{'));
      if (r.status !== 0 || !line) return { error: `rte_acl failed: ${(r.stderr ?? '').trim().split('\n').slice(-1)[0] ?? r.status}` };
      const o = JSON.parse(line);
      const buf = fs.readFileSync(ofile);
      return { build_ms: o.build_ms, ns_per_packet: o.ns_per_packet, results: new Int32Array(buf.buffer, buf.byteOffset, buf.length / 4) };
    },
    cleanup() { fs.rmSync(dir, { recursive: true, force: true }); },
  };
}
