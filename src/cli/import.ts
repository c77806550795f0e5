import { detectBackend, importIptablesFile } from '../iptables/import';
import { readInputFile } from '../policy/parse';
import { policyToYaml } from '../policy/serialize';
import { ParsedArgs, UsageError, stringFlag } from './args';
import { backendFlag } from './policy-arg';
import { Output } from './output';

export const IMPORT_FLAGS = { table: 'string', chain: 'string', ipset: 'string', backend: 'string', 'skip-unsupported': 'boolean' } as const;

/** `nfsieve import iptables FILE [--table T] [--chain C] [--ipset FILE]`: print the policy as YAML. */
export function importCommand(args: ParsedArgs, out: Output): number {
  const [kind, file, ...rest] = args.positional;
  if (kind !== 'iptables' || !file || rest.length) throw new UsageError('usage: nfsieve import iptables FILE [--table filter] [--chain INPUT] [--ipset FILE] [--backend legacy|nft] [--skip-unsupported]');
  const policy = importIptablesFile(file, {
    table: stringFlag(args, 'table'), chain: stringFlag(args, 'chain'), ipsetFile: stringFlag(args, 'ipset'),
    backend: backendFlag(args), skipUnsupported: args.flags.has('skip-unsupported'),
  });
  const backend = backendFlag(args) ?? detectBackend(readInputFile(file));
  out.line(policyToYaml(policy, `imported from ${file} (table ${stringFlag(args, 'table') ?? 'filter'}, chain ${stringFlag(args, 'chain') ?? 'INPUT'}, iptables-${backend} semantics)`).trimEnd());
  return 0;
}
