/**
 * Command-line parsing on node:util's parseArgs (strict): every flag is
 * declared with its kind; unknown flags, missing values and values given to
 * booleans are usage errors. `-h`/`--help` is declared for every command.
 * node:util's parseArgs has no optional-value flags (`--x` or `--x=V`), so no
 * nfsieve flag is one: a string flag always needs its value.
 */
import { parseArgs as utilParseArgs } from 'node:util';
import { NfsieveError } from '../errors';

export type FlagKind = 'boolean' | 'string';

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string | true>;
}

/** A command line that cannot be run (code EUSAGE, exit status 2). */
export class UsageError extends NfsieveError {
  constructor(message: string) {
    super('EUSAGE', message);
    this.name = 'UsageError';
  }
}

/** The flag every command takes: print its usage and exit 0. */
export const HELP_FLAG = 'help';

type UtilOptions = Record<string, { type: FlagKind; short?: string }>;

export function parseArgs(argv: readonly string[], spec: Record<string, FlagKind>): ParsedArgs {
  const options: UtilOptions = { [HELP_FLAG]: { type: 'boolean', short: 'h' } };
  for (const [name, type] of Object.entries(spec)) options[name] = { type };
  let parsed;
  try {
    parsed = utilParseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (err) {
    // node:util's errors are TypeErrors with ERR_PARSE_ARGS_* codes: all usage errors.
    const code = (err as { code?: string }).code ?? '';
    if (code.startsWith('ERR_PARSE_ARGS_')) throw new UsageError((err as Error).message);
    throw err;
  }
  const flags = new Map<string, string | true>();
  for (const [name, value] of Object.entries(parsed.values)) {
    if (value === undefined || value === false) continue;
    flags.set(name, typeof value === 'string' ? value : true);
  }
  return { positional: parsed.positionals, flags };
}

export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

export function intFlag(args: ParsedArgs, name: string, min: number, max: number): number | undefined {
  const v = stringFlag(args, name);
  if (v === undefined) return undefined;
  if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(v)) throw new UsageError(`--${name} expects a whole number, got '${v}'`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${v}`);
  return n;
}
