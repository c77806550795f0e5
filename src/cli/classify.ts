/** `nfsieve classify`: the verdict of a policy for every frame of a capture, streamed. */
import { streamCapture, Frame } from '../capture/pcap';
import { Classifier, ClassifyResult } from '../classifier';
import { compile } from '../compile/compile';
import { ParsedArgs, UsageError, stringFlag } from './args';
import { Output } from './output';
import { loadPolicyArg, metaFromArgs, POLICY_FLAGS, META_FLAGS } from './policy-arg';
import { classifyClassbench } from './classbench';
import { byLinkType, runsOf } from './inspect';

export const CLASSIFY_FLAGS = { ...POLICY_FLAGS, ...META_FLAGS, pcap: 'string', json: 'boolean', classbench: 'string', trace: 'string' } as const;

/** `nfsieve classify POLICY --pcap FILE|- [--json]` (streamed), or `--classbench RULES --trace TRACE`. */
export async function classify(args: ParsedArgs, out: Output): Promise<number> {
  if (args.flags.has('classbench')) return classifyClassbench(args, out);
  const pcap = stringFlag(args, 'pcap');
  if (args.positional.length !== 1 || !pcap) throw new UsageError('usage: nfsieve classify POLICY --pcap FILE|- [--json] [--iptables ...] [--in IF] [--out IF] [--ctstate S] [--mark N]');
  const policy = loadPolicyArg(args.positional[0], args);
  const classifier = new Classifier(compile(policy, { analyse: false }));
  const meta = metaFromArgs(args);
  const json = args.flags.has('json');
  // Rate limits measure time by the capture's timestamps (microseconds), so a replay decides as the capture happened.
  const limited = policy.rules.some((r) => r.limit);
  for await (const batch of streamCapture(pcap)) {
    byLinkType(batch, (run) => {
      for (const chunk of limited ? runsOf(run, (f) => f.time) : [run]) {
        const now = limited ? BigInt(Math.round(chunk[0].time * 1e6)) * 1000n : undefined;
        const results = classifier.classifyBatch(chunk.map((f) => f.data), { linkType: chunk[0].linkType, meta: now === undefined ? meta : { ...meta, now } });
        results.forEach((r, k) => out.line(json ? jsonLine(chunk[k], r) : textLine(chunk[k], r)));
      }
    });
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
