/**
 * The POLICY argument shared by check, classify, explain, bench and run: a
 * .yaml/.yml/.json policy, or an iptables-save file with --iptables; plus the
 * packet metadata flags a capture lacks (--in, --out, --ctstate, --mark).
 */
import { loadPolicyFile } from '../policy/parse';
import { importIptablesFile } from '../iptables/import';
import { Backend } from '../iptables/rule';
import { Policy, CT_STATES, CtState } from '../policy/model';
import { PacketMeta } from '../classifier';
import { ParsedArgs, UsageError, stringFlag, intFlag } from './args';

export const POLICY_FLAGS = {
  iptables: 'boolean', table: 'string', chain: 'string', ipset: 'string', backend: 'string', 'skip-unsupported': 'boolean',
} as const;

/** --backend legacy|nft (default: the iptables-save header's). */
export function backendFlag(args: ParsedArgs): Backend | undefined {
  const b = stringFlag(args, 'backend');
  if (b !== undefined && b !== 'legacy' && b !== 'nft') throw new UsageError('--backend must be legacy or nft');
  return b as Backend | undefined;
}
export const META_FLAGS = { in: 'string', out: 'string', ctstate: 'string', mark: 'string' } as const;

export function loadPolicyArg(file: string, args: ParsedArgs): Policy {
  if (args.flags.has('iptables')) {
    return importIptablesFile(file, {
      table: stringFlag(args, 'table') ?? 'filter',
      chain: stringFlag(args, 'chain') ?? 'INPUT',
      ipsetFile: stringFlag(args, 'ipset'),
      backend: backendFlag(args),
      skipUnsupported: args.flags.has('skip-unsupported'),
    });
  }
  for (const f of ['table', 'chain', 'ipset', 'backend', 'skip-unsupported']) {
    if (args.flags.has(f)) throw new UsageError(`--${f} goes with --iptables`);
  }
  return loadPolicyFile(file);
}

export function metaFromArgs(args: ParsedArgs): PacketMeta {
  const meta: PacketMeta = {};
  const inIf = stringFlag(args, 'in');
  const outIf = stringFlag(args, 'out');
  if (inIf !== undefined) meta.in = inIf;
  if (outIf !== undefined) meta.out = outIf;
  const ct = stringFlag(args, 'ctstate');
  if (ct !== undefined) {
    const s = ct.toLowerCase();
    if (!CT_STATES.includes(s as CtState)) throw new UsageError(`--ctstate must be one of ${CT_STATES.join(', ')}`);
    meta.ctstate = s as CtState;
  }
  const mark = intFlag(args, 'mark', 0, 0xffffffff);
  if (mark !== undefined) meta.mark = mark;
  return meta;
}
