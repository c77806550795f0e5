/**
 * `npm run bench`: every benchmark suite in one run, printed and written to
 * docs/benchmarks.md with the machine, Node version and date.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { benchDecode } from './decode';
import { benchNfqueue } from './nfqueue';
import { benchClassbench } from './classify';
import { machine, markdownTable } from './common';

const ROOT = path.resolve(__dirname, '..', '..');
const SHARED = path.resolve(ROOT, '..', 'shared');

async function main(): Promise<void> {
  const sections: string[] = [];
  const m = machine();
  process.stderr.write(`machine: ${m}\n`);
  process.stderr.write('decoding...\n');
  const decode = await benchDecode(SHARED);
  process.stdout.write(markdownTable(decode));
  sections.push('## Decoding (ns per packet)\n', 'All frames of each input decoded repeatedly (tinybench, mean). "batch" is one native call for the whole set; "one call per packet" pays the Node-API crossing each time.\n', markdownTable(decode));
  process.stderr.write('ClassBench...\n');
  const cb = benchClassbench(SHARED);
  process.stdout.write(markdownTable(cb.rows) + markdownTable(cb.extra) + cb.note + '\n');
  sections.push('## Decision table (ClassBench, one thread, batched lookup)\n',
    'Traces: 100,000 headers generated from each rule set (a rule, a random point in it, Pareto-distributed repeats). "lookup" is one native call for the whole trace; the linear scan is native C++ over the same rules (20,000 headers); every run checks that the table and the linear scan agree on all 100,000 headers. ' + cb.note + ' Targets: docs/algorithm.md.\n',
    markdownTable(cb.rows), '\n', markdownTable(cb.extra));
  process.stderr.write('NFQUEUE throughput...\n');
  const nfq = await benchNfqueue();
  process.stdout.write(markdownTable(nfq.rows) + nfq.note + '\n');
  sections.push('## NFQUEUE throughput (packets per second, one queue)\n', nfq.note + '\n', markdownTable(nfq.rows));
  const doc = ['# Benchmarks\n', `Produced by \`npm run bench\` on: ${m}.\n`, ...sections].join('\n');
  fs.writeFileSync(path.join(ROOT, 'docs', 'benchmarks.md'), doc);
  process.stderr.write('wrote docs/benchmarks.md\n');
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : e}\n`);
  process.exitCode = 1;
});
