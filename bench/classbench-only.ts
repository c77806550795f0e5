/**
 * The ClassBench part of the benchmark alone (bench/classify.ts: nfsieve and
 * rte_acl on the same rules and traces, every answer gated on the linear
 * scan), for a few families: what a lookup change needs measured without the
 * whole `npm run bench`. Run:
 *   npm run pretest && node build-test/bench/classbench-only.js acl1,acl5 10k,100k [large families]
 */
import * as path from 'node:path';
import { benchClassbench } from './classify';
import { markdownTable } from './common';

async function main(): Promise<void> {
  const [seeds, sizes, large] = process.argv.slice(2).map((a) => a.split(','));
  if (!seeds || !sizes) throw new Error('usage: classbench-only SEEDS SIZES [LARGE]');
  const shared = path.join(__dirname, '..', '..', '..', 'shared');
  const cb = await benchClassbench(shared, (line) => process.stderr.write(line), seeds, sizes, large ?? seeds);
  process.stdout.write(markdownTable(cb.rows) + '\n' + cb.note + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
