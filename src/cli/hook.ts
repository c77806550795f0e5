/**
 * `nfsieve hook POLICY --queue N[:M]`: the kernel rules that send what the
 * policy's rules can match to the queue(s) and apply the default verdict to
 * everything else (src/hook/select.ts says why that is exact), as an
 * idempotent shell script of iptables/ip6tables commands or, with --nft, an
 * nftables ruleset; --delete prints what removes them.
 */
import { HookOptions, iptablesDelete, iptablesInstall, nftDelete, nftRuleset } from '../hook/render';
import { parseQueueRange } from '../queue';
import { ParsedArgs, UsageError, stringFlag } from './args';
import { Output } from './output';
import { loadPolicyArg, POLICY_FLAGS } from './policy-arg';

export const HOOK_FLAGS = {
  ...POLICY_FLAGS, queue: 'string', 'hook-chain': 'string', 'hook-table': 'string', 'hook-name': 'string',
  nft: 'boolean', delete: 'boolean', offload: 'boolean', 'fail-closed': 'boolean', 'cpu-fanout': 'boolean',
} as const;

const USAGE = 'usage: nfsieve hook POLICY --queue N[:M] [--nft] [--delete] [--hook-chain INPUT] [--hook-table filter] [--hook-name NFSIEVE] [--fail-closed] [--cpu-fanout] [--offload]';
const NAME_RE = /^[A-Za-z][A-Za-z0-9_-]{0,27}$/;

function options(args: ParsedArgs): HookOptions {
  const queueText = stringFlag(args, 'queue');
  if (!queueText && !args.flags.has('delete')) throw new UsageError(USAGE);
  const nft = args.flags.has('nft');
  const name = stringFlag(args, 'hook-name') ?? (nft ? 'nfsieve' : 'NFSIEVE');
  if (!NAME_RE.test(name)) throw new UsageError(`--hook-name ${name}: a letter, then up to 27 letters, digits, '-' or '_'`);
  const chain = stringFlag(args, 'hook-chain') ?? 'INPUT';
  const table = stringFlag(args, 'hook-table') ?? 'filter';
  if (!/^[A-Z]+$/.test(chain)) throw new UsageError(`--hook-chain ${chain}: a built-in chain name such as INPUT or PREROUTING`);
  if (!['filter', 'mangle', 'raw'].includes(table)) throw new UsageError(`--hook-table ${table}: filter, mangle or raw`);
  const offload = args.flags.has('offload');
  return { queues: parseQueueRange(queueText ?? '0'), chain, table, name, bypass: !args.flags.has('fail-closed'), cpuFanout: args.flags.has('cpu-fanout'), offload };
}

export function hook(args: ParsedArgs, out: Output): number {
  const o = options(args);
  const nft = args.flags.has('nft');
  if (args.flags.has('delete')) {
    if (args.positional.length > 1) throw new UsageError(USAGE);
    out.line(`# remove nfsieve's hook: ${nft ? `table inet ${o.name}` : `chain ${o.name} in ${o.table}, its jump from ${o.chain}, and the ipsets it names (--offload)`}`);
    for (const l of nft ? nftDelete(o) : iptablesDelete(o)) out.line(l);
    return 0;
  }
  if (args.positional.length !== 1) throw new UsageError(USAGE);
  const policy = loadPolicyArg(args.positional[0], args);
  const bypass = o.bypass ? 'bypass: traffic flows while nfsieve is not attached' : 'fail-closed: queued traffic is dropped while nfsieve is not attached';
  out.line(`# queue what ${args.positional[0]}'s rules can match to ${o.queues.join(',')}; default ${policy.default} for the rest; ${bypass}`);
  for (const l of nft ? nftRuleset(policy, o) : iptablesInstall(policy, o)) out.line(l);
  return 0;
}
