/**
 * `nfsieve hook POLICY --queue N[:M]`: the iptables and ip6tables commands
 * that send the traffic the policy inspects to the queue(s), with
 * --queue-bypass so traffic flows if nfsieve is not running.
 *
 * What reaches the queue: when the default verdict is not accept, everything
 * (the default must apply to it). Otherwise the union over rules of what each
 * rule can match: its protocols, or the input interfaces it names, or, for a
 * rule constraining neither, everything.
 */
import { Policy, Rule } from '../policy/model';
import { parseQueueRange } from '../queue';
import { ParsedArgs, UsageError, stringFlag } from './args';
import { Output } from './output';
import { loadPolicyArg, POLICY_FLAGS } from './policy-arg';

export const HOOK_FLAGS = { ...POLICY_FLAGS, queue: 'string', 'hook-chain': 'string', 'hook-table': 'string' } as const;

const PROTO_NAME: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 50: 'esp', 51: 'ah', 58: 'ipv6-icmp', 47: 'gre', 132: 'sctp' };

/** Selectors (iptables match text) covering every packet a rule may match in a family; null = everything. */
function selectors(rule: Rule, family: 4 | 6): string[] | null {
  const c = rule.conditions;
  if (c.family && c.family !== family) return [];
  const protos = new Set<number>();
  if (c.proto && !c.proto.negate) c.proto.values.forEach((p) => protos.add(p));
  else if (c.nfProto && !c.nfProto.negate) c.nfProto.values.forEach((p) => protos.add(p));
  else if (c.nftProto && !c.nftProto.negate) c.nftProto.values.forEach((p) => protos.add(p));
  else if (c.ipProto && !c.ipProto.negate) c.ipProto.values.forEach((p) => protos.add(p));
  else if (c.icmp && !c.icmp.negate) protos.add(family === 4 ? 1 : 58);
  else if (c.sport || c.dport) { protos.add(6); protos.add(17); }
  else if (c.spi && !('sets' in c.spi && c.spi.negate)) { protos.add(50); protos.add(17); }
  else if (c.ahSpi) protos.add(51);
  else if (c.ikeVersion || c.ikeExchange || c.ikeFlags || (c.natt && !c.natt.negate && !c.natt.values.includes(0))) protos.add(17);
  if (protos.size > 0) {
    if (family === 4 && c.ipProto === undefined && c.proto) protos.add(51); // AH-protected traffic carries the upper protocol behind 51
    return [...protos].map((p) => `-p ${PROTO_NAME[p] ?? p}`);
  }
  if (c.in && !c.in.negate) return c.in.values.map((i) => `-i ${i}`);
  return null;
}

export function hookCommands(policy: Policy, queues: number[], chain = 'INPUT', tableName = 'filter'): string[] {
  const target = queues.length > 1 ? `NFQUEUE --queue-balance ${queues[0]}:${queues[queues.length - 1]} --queue-bypass` : `NFQUEUE --queue-num ${queues[0]} --queue-bypass`;
  const own = `nfsieve-q${queues[0]}`;
  const lines: string[] = [];
  for (const family of [4, 6] as const) {
    const cmd = family === 4 ? 'iptables' : 'ip6tables';
    let all = policy.default !== 'accept';
    const sel = new Set<string>();
    for (const r of policy.rules) {
      const s = selectors(r, family);
      if (s === null) all = true;
      else s.forEach((x) => sel.add(x));
    }
    if (!all && sel.size === 0) continue;
    lines.push(`${cmd} -t ${tableName} -N ${own}`);
    if (all) lines.push(`${cmd} -t ${tableName} -A ${own} -j ${target}`);
    else for (const s of [...sel].sort()) lines.push(`${cmd} -t ${tableName} -A ${own} ${s} -j ${target}`);
    lines.push(`${cmd} -t ${tableName} -I ${chain} -j ${own}`);
  }
  return lines;
}

export function hook(args: ParsedArgs, out: Output): number {
  const queueText = stringFlag(args, 'queue');
  if (args.positional.length !== 1 || !queueText) throw new UsageError('usage: nfsieve hook POLICY --queue N[:M] [--hook-chain INPUT] [--hook-table filter]');
  const policy = loadPolicyArg(args.positional[0], args);
  const queues = parseQueueRange(queueText);
  const chain = stringFlag(args, 'hook-chain') ?? 'INPUT';
  const tableName = stringFlag(args, 'hook-table') ?? 'filter';
  out.line(`# send what ${args.positional[0]} inspects to NFQUEUE ${queueText}; --queue-bypass lets traffic flow when nfsieve is not attached`);
  for (const l of hookCommands(policy, queues, chain, tableName)) out.line(l);
  out.line(`# undo: iptables -t ${tableName} -D ${chain} -j nfsieve-q${queues[0]}; iptables -t ${tableName} -F nfsieve-q${queues[0]}; iptables -t ${tableName} -X nfsieve-q${queues[0]} (and the same with ip6tables)`);
  return 0;
}
