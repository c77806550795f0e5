/**
 * `npm run bench`: every benchmark suite in one run, printed and written to
 * docs/benchmarks.md with the machine, Node version and date.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchDecode } from './decode';
import { benchNfqueue } from './nfqueue';
import { benchClassbench, targetRows } from './classify';
import { limitBench } from './limit';
import { benchLive } from './live';
import { benchLiveNfqueue } from './live-nfqueue';
import { chartSvg } from './chart';
import { machine, markdownTable } from './common';

const ROOT = path.resolve(__dirname, '..', '..');
const SHARED = path.resolve(ROOT, '..', 'shared');

const CLASSBENCH_NOTE = 'Three traces of 100,000 headers per rule set: ClassBench-style (a rule, a random point in it, Pareto-distributed repeats), uniform over the rules with no repeats, and random headers (most match no rule, or only a final catch-all). The 100k sets are synthesised from the 10k ones (each field of a rule drawn from a random seed rule). "lookup" is one native call for the whole trace: the fastest tinybench iteration, with the median of the better round in parentheses; nfsieve and rte_acl are measured in two rounds, alternating (nfsieve, rte_acl, nfsieve, rte_acl), and each reports its best (this shared VM has bursts of interference from its neighbours, and one vCPU has slow phases that last minutes); "JS batch of 256" times each call on 256 headers from JavaScript (crossing included): mean and 99th percentile per header. "build" is compile + load (lookup index included), the best of three in one process, with the first (cold JIT) in parentheses; `node build-test/bench/build.js [--runs N] [set...]` times the two apart (best and median of N, wall clock and CPU time; docs/algorithm.md, Build time). The linear scan (native C++) and the TypeScript reference run on a sample of the ClassBench-style trace. Every run checks that the table equals the linear scan on all headers of every trace, and the reference on its sample. ';

const LIMIT_NOTE = 'The same trace through a policy with and without its `limit` conditions (`bench/limit.ts`): "limit cost" is the difference. A rule with a limit leaves the index\'s direct answer for the residual check, and takes a short lock per packet; per source adds a hash probe and the recency list in a 3.5 MiB preallocated table. How the lock behaves with several queue threads: `bench/native/limit_threads.cc` (docs/policy.md, Rate limits).\n';

/** One part of the document: its `## ` heading and the suite that writes it. */
interface Section { key: string; heading: string; run: () => Promise<string[]> }

const SECTIONS: Section[] = [
  { key: 'decode', heading: '## Decoding (ns per packet)', run: decodeSection },
  { key: 'classbench', heading: '## Decision table (ClassBench, one thread, batched lookup)', run: classbenchSection },
  { key: 'limit', heading: '## Rate limits (ns per packet)', run: limitSection },
  { key: 'live', heading: '## Live sets and the control socket', run: liveSection },
  { key: 'nfqueue', heading: '## NFQUEUE: loss and CPU per packet at fixed offered rates', run: nfqueueSection },
];

async function decodeSection(): Promise<string[]> {
  const decode = await benchDecode(SHARED);
  process.stdout.write(markdownTable(decode));
  return ['All frames of each input decoded repeatedly (tinybench, median iteration). "batch" is one native call for the whole set; "one call per packet" pays the Node-API crossing each time.\n', markdownTable(decode)];
}

async function classbenchSection(): Promise<string[]> {
  // NFSIEVE_BENCH_SEEDS=acl1,fw1, NFSIEVE_BENCH_SIZES=1k,10k and NFSIEVE_BENCH_LARGE=acl1 (families also
  // synthesised to 100k) measure only those: a shorter run on a busy machine.
  const list = (v: string | undefined): string[] | undefined => (v ? v.split(',') : undefined);
  const seeds = list(process.env.NFSIEVE_BENCH_SEEDS);
  const cb = await benchClassbench(SHARED, (line) => process.stderr.write(line), seeds, list(process.env.NFSIEVE_BENCH_SIZES), list(process.env.NFSIEVE_BENCH_LARGE) ?? seeds);
  const targets = targetRows(cb.results);
  const families = [...new Set(cb.results.map((r) => r.seed))];
  const perFamily = families.map((f) => `### ${f}\n\n` + markdownTable(cb.rows.filter((r) => String(r['rule set']).startsWith(`${f}_`))));
  process.stdout.write(perFamily.join('\n') + markdownTable(targets) + markdownTable(cb.extra) + cb.note + '\n');
  fs.writeFileSync(path.join(ROOT, 'docs', 'benchmarks.svg'), chartSvg(cb.results, `ClassBench lookups, one thread: ${os.cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`));
  return [CLASSBENCH_NOTE + cb.note + '\n', ...perFamily, '\n![ns per packet against rule count, one panel per family](benchmarks.svg)\n',
    '### Targets (docs/algorithm.md explains the gaps)\n', markdownTable(targets), '\n', markdownTable(cb.extra)];
}

async function limitSection(): Promise<string[]> {
  const lim = await limitBench();
  process.stdout.write(lim.text);
  return [LIMIT_NOTE, lim.text];
}

async function liveSection(): Promise<string[]> {
  const live = await benchLive();
  process.stdout.write(markdownTable(live.rows) + live.note + '\n');
  const liveNfq = await benchLiveNfqueue(50);
  process.stdout.write(markdownTable(liveNfq));
  return [live.note + '\n', markdownTable(live.rows),
    '\nThrough NFQUEUE (root; bench/live-nfqueue.ts): the peer streams IKE, `nfsieve run` drops it until `set.add`; a UDP socket behind the queue notes the first packet after the answer, and the last one after `set.del`.\n', markdownTable(liveNfq)];
}

async function nfqueueSection(): Promise<string[]> {
  const nfq = await benchNfqueue();
  process.stdout.write(markdownTable(nfq.rows) + markdownTable(nfq.offload) + nfq.note + '\n');
  return [nfq.note + '\n', markdownTable(nfq.rows),
    '\nOffload: ESP from the known peers at the sender\'s limit, whole-machine CPU per arrived packet (the sender included).\n', markdownTable(nfq.offload)];
}

/**
 * Replace one `## ` section of the document (up to the next `## ` heading) with
 * new text; a section the document lacks is appended.
 */
function spliceSection(doc: string, heading: string, text: string): string {
  const at = doc.indexOf(`\n${heading}\n`);
  if (at < 0) return doc.trimEnd() + '\n\n' + text;
  const next = doc.indexOf('\n## ', at + heading.length + 1);
  return doc.slice(0, at + 1) + text + (next < 0 ? '' : '\n' + doc.slice(next + 1));
}

// NFSIEVE_BENCH_SECTIONS=classbench,limit runs only those suites and replaces
// only their sections in the existing docs/benchmarks.md (the others, some of
// them edited by hand from several runs, stay as they are).
async function main(): Promise<void> {
  const m = machine();
  process.stderr.write(`machine: ${m}\n`);
  const only = process.env.NFSIEVE_BENCH_SECTIONS?.split(',');
  const unknown = only?.filter((k) => !SECTIONS.some((s) => s.key === k)) ?? [];
  if (unknown.length) throw new Error(`NFSIEVE_BENCH_SECTIONS: unknown ${unknown.join(', ')} (one of ${SECTIONS.map((s) => s.key).join(', ')})`);
  const file = path.join(ROOT, 'docs', 'benchmarks.md');
  let doc = only ? fs.readFileSync(file, 'utf8') : ['# Benchmarks\n', `Produced by \`npm run bench\` on: ${m}.\n`].join('\n');
  for (const s of SECTIONS.filter((x) => !only || only.includes(x.key))) {
    process.stderr.write(`${s.heading.slice(3)}...\n`);
    const text = [s.heading + '\n', ...(await s.run())].join('\n');
    doc = only ? spliceSection(doc, s.heading, text + `\n(This section alone, on: ${m}.)\n`) : doc + '\n' + text;
  }
  fs.writeFileSync(file, doc);
  process.stderr.write('wrote docs/benchmarks.md\n');
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : e}\n`);
  process.exitCode = 1;
});
