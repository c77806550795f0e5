import { readCapture } from '../capture/pcap';
import { Classifier } from '../classifier';
import { compile } from '../compile/compile';
import { referenceDecode } from '../decode/reference';
import { DecodedPacket, packetJson } from '../decode/packet';
import { summaryLine } from '../decode/summary';
import { ruleLabel } from '../policy/model';
import { ruleFailure, initialSets, Meta, referenceEvaluate } from '../reference/evaluate';
import { CT_STATE_KEYS } from '../compile/fields';
import { ParsedArgs, UsageError, stringFlag, intFlag } from './args';
import { Output } from './output';
import { loadPolicyArg, metaFromArgs, POLICY_FLAGS, META_FLAGS } from './policy-arg';

export const EXPLAIN_FLAGS = { ...POLICY_FLAGS, ...META_FLAGS, hex: 'string', pcap: 'string', index: 'string', 'link-type': 'string' } as const;

/** What the packet holds for a condition key, in words. */
function packetValue(key: string, p: DecodedPacket, meta: Meta, mark: number): string {
  const j = packetJson(0, p) as Record<string, unknown>;
  switch (key) {
    case 'ike.version': case 'ike.exchange': case 'ike.flags': return JSON.stringify(p.ike ? p.ike[key.slice(4) as 'version'] : null);
    case 'ah-spi': return JSON.stringify(p.ah?.spi ?? null);
    case 'ip-proto': return String(p.ipProto);
    case 'icmpv6': return JSON.stringify(p.icmp);
    case 'in': case 'out': return JSON.stringify(meta[key] ?? null);
    case 'ctstate': return Object.keys(CT_STATE_KEYS).find((k) => CT_STATE_KEYS[k] === meta.ctstate) ?? 'unknown';
    case 'mark': return `0x${mark.toString(16)}`;
    case 'length': return String(p.totalLength);
    default: return JSON.stringify(j[key] ?? null);
  }
}

/** `nfsieve explain POLICY --hex PACKET | --pcap FILE --index N`: why each rule did or did not decide. */
export function explain(args: ParsedArgs, out: Output): number {
  if (args.positional.length !== 1) throw new UsageError('usage: nfsieve explain POLICY (--hex PACKET [--link-type N] | --pcap FILE --index N) [--in IF] [--out IF] [--ctstate S] [--mark N]');
  const policy = loadPolicyArg(args.positional[0], args);
  let linkType: number;
  let frame: Uint8Array;
  let time = 0;
  const hex = stringFlag(args, 'hex');
  const pcap = stringFlag(args, 'pcap');
  if (hex !== undefined) {
    const clean = hex.replace(/[\s:]/g, '');
    if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new UsageError('--hex expects an even number of hex digits');
    frame = Buffer.from(clean, 'hex');
    linkType = intFlag(args, 'link-type', 0, 0xffff) ?? 101;
  } else if (pcap !== undefined) {
    const index = intFlag(args, 'index', 0, 0xffffffff);
    if (index === undefined) throw new UsageError('--pcap needs --index N');
    const frames = readCapture(pcap);
    if (index >= frames.length) throw new UsageError(`${pcap} has ${frames.length} frames; --index ${index} is past the end`);
    ({ linkType, data: frame, time } = frames[index]);
  } else {
    throw new UsageError('give the packet with --hex or with --pcap and --index');
  }
  const meta = metaFromArgs(args);
  const refMeta: Meta = { in: meta.in, out: meta.out, ctstate: meta.ctstate ? CT_STATE_KEYS[meta.ctstate] : 0, mark: meta.mark };
  const p = referenceDecode(linkType, frame);
  out.line(`packet: ${summaryLine(0, time, p).replace(/^0 \S+ /, '')}`);
  out.line(`decoded: ${JSON.stringify(packetJson(0, p))}`);
  const decision = referenceEvaluate(policy, p, refMeta);
  if (p.family !== null) {
    const sets = initialSets(policy);
    let mark = refMeta.mark ?? 0;
    // Walk the rules as the evaluator does: skips jump forward, non-terminal rules go on.
    for (let i = 0; i < policy.rules.length; ) {
      const r = policy.rules[i];
      const label = `rule ${JSON.stringify(ruleLabel(r, i))} (line ${r.line})`;
      const failed = ruleFailure(r, p, refMeta, sets, mark);
      if (failed !== null) {
        out.line(`  ${label}: no: ${failed} does not hold (packet: ${failed} ${packetValue(failed, p, refMeta, mark)})`);
        i++;
        continue;
      }
      const a = r.action;
      if (a.type === 'mark') mark = ((mark & ~a.mask) ^ a.value) >>> 0;
      const what = a.type === 'skip' ? `skip to rule ${a.to + 1}` : a.type === 'mark' ? `mark 0x${a.value.toString(16)}, ${a.then}` : a.type === 'queue' ? `queue ${a.queue}` : a.type;
      out.line(`  ${label}: MATCH: ${what}`);
      if (i === decision.rule) break;
      i = a.type === 'skip' ? a.to : i + 1;
    }
    if (decision.rule === -1) out.line(`  no rule decided: default ${policy.default}`);
  }
  const native = new Classifier(compile(policy, { analyse: false })).classify(frame, { linkType, meta });
  const refLabel = decision.rule >= 0 ? ruleLabel(policy.rules[decision.rule], decision.rule) : null;
  const by = native.rule === null ? (native.verdict === null ? 'not IP' : 'default verdict') : `rule ${JSON.stringify(native.rule)} (line ${native.line})`;
  out.line(`verdict: ${native.verdict ?? 'none'} by ${by}${native.mark !== null ? `, mark 0x${native.mark.toString(16)}` : ''}`);
  if (native.verdict !== decision.verdict || native.rule !== refLabel) {
    out.line(`warning: the reference evaluator says ${decision.verdict} by ${refLabel ?? 'default'}: please report this`);
    return 1;
  }
  return 0;
}
