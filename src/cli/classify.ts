import { readCapture, Frame } from '../capture/pcap';
import { Classifier, ClassifyResult } from '../classifier';
import { compile } from '../compile/compile';
import { ParsedArgs, UsageError, stringFlag } from './args';
import { Output } from './output';
import { loadPolicyArg, metaFromArgs, POLICY_FLAGS, META_FLAGS } from './policy-arg';
import { classifyClassbench } from './classbench';

export const CLASSIFY_FLAGS = { ...POLICY_FLAGS, ...META_FLAGS, pcap: 'string', json: 'boolean', classbench: 'string', trace: 'string' } as const;

const BATCH = 4096;

/** `nfsieve classify POLICY --pcap FILE [--json]`, or `--classbench RULES --trace TRACE`. */
export function classify(args: ParsedArgs, out: Output): number {
  if (args.flags.has('classbench')) return classifyClassbench(args, out);
  const pcap = stringFlag(args, 'pcap');
  if (args.positional.length !== 1 || !pcap) throw new UsageError('usage: nfsieve classify POLICY --pcap FILE [--json] [--iptables ...] [--in IF] [--out IF] [--ctstate S] [--mark N]');
  const policy = loadPolicyArg(args.positional[0], args);
  const classifier = new Classifier(compile(policy, { analyse: false }));
  const meta = metaFromArgs(args);
  const frames = readCapture(pcap);
  const json = args.flags.has('json');
  // Rate limits measure time by the capture's timestamps (microseconds), so a replay decides as the capture happened.
  const limited = policy.rules.some((r) => r.limit);
  // Batches of frames sharing a link type (and, with limits, a timestamp), in file order.
  for (let i = 0; i < frames.length; ) {
    let j = i;
    while (j < frames.length && j - i < BATCH && frames[j].linkType === frames[i].linkType && (!limited || frames[j].time === frames[i].time)) j++;
    const chunk = frames.slice(i, j);
    const now = limited ? BigInt(Math.round(frames[i].time * 1e6)) * 1000n : undefined;
    const results = classifier.classifyBatch(chunk.map((f) => f.data), { linkType: chunk[0].linkType, meta: now === undefined ? meta : { ...meta, now } });
    results.forEach((r, k) => out.line(json ? jsonLine(chunk[k], r) : textLine(chunk[k], r)));
    i = j;
  }
  return 0;
}

function jsonLine(f: Frame, r: ClassifyResult): string {
  return JSON.stringify({ index: f.index, verdict: r.verdict, rule: r.rule, line: r.line, mark: r.mark });
}

function textLine(f: Frame, r: ClassifyResult): string {
  if (r.verdict === null) return `${f.index} -- (not IP)`;
  const by = r.rule === null ? 'default' : `rule ${r.rule} (line ${r.line})`;
  const extra = (r.mark !== null ? ` mark 0x${r.mark.toString(16)}` : '') + (r.queue !== null ? ` queue ${r.queue}` : '');
  return `${f.index} ${r.verdict.padEnd(6)} ${by}${extra}`;
}
