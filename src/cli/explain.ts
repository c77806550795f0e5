/** `nfsieve explain`: walk a policy's rules for one packet and say why each did or did not decide. */
import { streamCapture } from '../capture/pcap';
import { Classifier } from '../classifier';
import { compile } from '../compile/compile';
import { referenceDecode } from '../decode/reference';
import { DecodedPacket, packetJson } from '../decode/packet';
import { summaryLine } from '../decode/summary';
import { ruleLabel, Policy } from '../policy/model';
import { ruleFailure, initialSets, Meta, referenceEvaluate } from '../reference/evaluate';
import { CT_STATE_KEYS } from '../compile/fields';
import { LinkType } from '../wire';
import { ParsedArgs, UsageError, stringFlag, intFlag } from './args';
import { Output } from './output';
import { loadPolicyArg, metaFromArgs, POLICY_FLAGS, META_FLAGS } from './policy-arg';

export const EXPLAIN_FLAGS = { ...POLICY_FLAGS, ...META_FLAGS, hex: 'string', pcap: 'string', index: 'string', 'link-type': 'string', json: 'boolean' } as const;

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

type Step = Record<string, unknown>;
const USAGE_TEXT = 'usage: nfsieve explain POLICY (--hex PACKET [--link-type N] | --pcap FILE|- --index N) [--json] [--in IF] [--out IF] [--ctstate S] [--mark N]';

/** The packet to explain: from --hex, or frame --index of --pcap (read only up to it). */
async function packetArg(args: ParsedArgs): Promise<{ linkType: number; frame: Uint8Array; time: number }> {
  const hex = stringFlag(args, 'hex');
  const pcap = stringFlag(args, 'pcap');
  if (hex !== undefined) {
    const clean = hex.replace(/[\s:]/g, '');
    if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new UsageError('--hex expects an even number of hex digits');
    return { frame: Buffer.from(clean, 'hex'), linkType: intFlag(args, 'link-type', 0, 0xffff) ?? LinkType.Raw, time: 0 };
  }
  if (pcap === undefined) throw new UsageError('give the packet with --hex or with --pcap and --index');
  const index = intFlag(args, 'index', 0, 0xffffffff);
  if (index === undefined) throw new UsageError('--pcap needs --index N');
  let seen = 0;
  for await (const batch of streamCapture(pcap)) {
    seen += batch.length;
    const f = batch.find((x) => x.index === index);
    if (f) return { linkType: f.linkType, frame: Uint8Array.from(f.data), time: f.time };
  }
  throw new UsageError(`${pcap} has ${seen} frames; --index ${index} is past the end`);
}

/** Walk the rules as the evaluator does (skips jump forward, non-terminal rules go on): one step each. */
function ruleSteps(policy: Policy, p: DecodedPacket, refMeta: Meta, decided: number): Step[] {
  const steps: Step[] = [];
  const sets = initialSets(policy);
  let mark = refMeta.mark ?? 0;
  for (let i = 0; i < policy.rules.length;) {
    const r = policy.rules[i];
    const failed = ruleFailure(r, p, refMeta, sets, mark);
    if (failed !== null) {
      steps.push({ rule: ruleLabel(r, i), line: r.line, match: false, failed, packet: packetValue(failed, p, refMeta, mark) });
      i++;
      continue;
    }
    const a = r.action;
    if (a.type === 'mark') mark = ((mark & ~a.mask) ^ a.value) >>> 0;
    const what = a.type === 'skip' ? `skip to rule ${a.to + 1}` : a.type === 'mark' ? `mark 0x${a.value.toString(16)}, ${a.then}` : a.type === 'queue' ? `queue ${a.queue}` : a.type;
    steps.push({ rule: ruleLabel(r, i), line: r.line, match: true, action: what });
    if (i === decided) break;
    i = a.type === 'skip' ? a.to : i + 1;
  }
  return steps;
}

function stepText(s: Step): string {
  if ('packet' in s && 'decoded' in s) return `packet: ${s.packet}\ndecoded: ${JSON.stringify(s.decoded)}`;
  if ('verdict' in s) {
    const by = s.rule === null ? (s.verdict === null ? 'not IP' : 'default verdict') : `rule ${JSON.stringify(s.rule)} (line ${s.line})`;
    return `verdict: ${s.verdict ?? 'none'} by ${by}${s.mark !== null ? `, mark 0x${(s.mark as number).toString(16)}` : ''}`;
  }
  if ('rule' in s) {
    const label = `rule ${JSON.stringify(s.rule)} (line ${s.line})`;
    return s.match ? `  ${label}: MATCH: ${s.action}` : `  ${label}: no: ${s.failed} does not hold (packet: ${s.failed} ${s.packet})`;
  }
  if ('default' in s) return `  no rule decided: default ${s.default}`;
  return `warning: ${s.warning}`;
}

/** `nfsieve explain POLICY --hex PACKET | --pcap FILE --index N [--json]`: why each rule did or did not decide. */
export async function explain(args: ParsedArgs, out: Output): Promise<number> {
  if (args.positional.length !== 1) throw new UsageError(USAGE_TEXT);
  const policy = loadPolicyArg(args.positional[0], args);
  const { linkType, frame, time } = await packetArg(args);
  const meta = metaFromArgs(args);
  const refMeta: Meta = { in: meta.in, out: meta.out, ctstate: meta.ctstate ? CT_STATE_KEYS[meta.ctstate] : 0, mark: meta.mark };
  const p = referenceDecode(linkType, frame);
  const decision = referenceEvaluate(policy, p, refMeta);
  const steps: Step[] = [{ packet: summaryLine(0, time, p).replace(/^0 \S+ /, ''), decoded: packetJson(0, p) }];
  if (p.family !== null) {
    steps.push(...ruleSteps(policy, p, refMeta, decision.rule));
    if (decision.rule === -1) steps.push({ default: policy.default });
  }
  const native = new Classifier(compile(policy, { analyse: false })).classify(frame, { linkType, meta });
  steps.push({ verdict: native.verdict, rule: native.rule, line: native.line, mark: native.mark });
  const refLabel = decision.rule >= 0 ? ruleLabel(policy.rules[decision.rule], decision.rule) : null;
  const disagree = native.verdict !== decision.verdict || native.rule !== refLabel;
  if (disagree) steps.push({ warning: `the reference evaluator says ${decision.verdict} by ${refLabel ?? 'default'}: please report this` });
  const json = args.flags.has('json');
  for (const s of steps) out.line(json ? JSON.stringify(s) : stepText(s));
  return disagree ? 1 : 0;
}
