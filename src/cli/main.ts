/**
 * The `nfsieve` command: dispatch, per-command help, and the one place where
 * errors become exit statuses (by their code, see EXIT_STATUS) and, with
 * --json, JSON lines on stdout.
 */
import { parseArgs, FlagKind, ParsedArgs, HELP_FLAG } from './args';
import { inspect, INSPECT_FLAGS } from './inspect';
import { check, CHECK_FLAGS } from './check';
import { classify, CLASSIFY_FLAGS } from './classify';
import { explain, EXPLAIN_FLAGS } from './explain';
import { importCommand, IMPORT_FLAGS } from './import';
import { run, RUN_FLAGS } from './run';
import { hook, HOOK_FLAGS } from './hook';
import { demo, DEMO_FLAGS } from './demo';
import { bench, BENCH_FLAGS } from './bench';
import { setCommand, SET_FLAGS } from './set';
import { stats, reload, STATS_FLAGS, RELOAD_FLAGS } from './stats';
import { updown, UPDOWN_FLAGS } from './updown';
import { Output, quietOnBrokenPipe } from './output';
import { flagLines } from './help';
import { ErrorCode, errorCode } from '../errors';
import { PolicyError } from '../policy/parse';
import { CaptureError } from '../capture/pcap';

interface Command {
  flags: Record<string, FlagKind>;
  run: (args: ParsedArgs, out: Output) => number | Promise<number>;
  help: string;
}

const COMMANDS: Record<string, Command> = {
  inspect: { flags: INSPECT_FLAGS, run: inspect, help: 'inspect FILE.pcap|- [--json]                decode every frame of a capture (- reads stdin)' },
  check: { flags: CHECK_FLAGS, run: check, help: 'check POLICY [--json]                       compile a policy, report size and warnings' },
  classify: { flags: CLASSIFY_FLAGS, run: classify, help: 'classify POLICY --pcap FILE|- [--json]      verdict for every frame of a capture\n  classify --classbench RULES --trace TRACE [--json]' },
  explain: { flags: EXPLAIN_FLAGS, run: explain, help: 'explain POLICY (--hex PKT | --pcap F --index N) [--json]  why a packet got its verdict' },
  run: { flags: RUN_FLAGS, run, help: 'run POLICY --queue N[:M] [--json] [--stats-every S]  attach to NFQUEUE (root)' },
  demo: { flags: DEMO_FLAGS, run: demo, help: 'demo [--duration S] [--json]               an IPsec gateway lab in network namespaces (root)' },
  hook: { flags: HOOK_FLAGS, run: hook, help: 'hook POLICY --queue N[:M] [--nft] [--delete]  print the kernel rules that feed the queue' },
  bench: { flags: BENCH_FLAGS, run: bench, help: 'bench POLICY [--pcap FILE] [--json]        lookup cost of a policy on a capture\n  bench --classbench RULES [--trace TRACE] [--json]' },
  import: { flags: IMPORT_FLAGS, run: importCommand, help: 'import iptables FILE [--table T] [--chain C] [--ipset F]  iptables-save to a policy' },
  set: { flags: SET_FLAGS, run: setCommand, help: 'set add|del|flush|test|list NAME [VALUE...]  live set members of a running `run`' },
  stats: { flags: STATS_FLAGS, run: stats, help: 'stats [--json]                              counters of a running `run`' },
  reload: { flags: RELOAD_FLAGS, run: reload, help: 'reload                                     re-read the policy of a running `run` (as SIGHUP)' },
  updown: { flags: UPDOWN_FLAGS, run: updown, help: 'updown [--set NAME] [--state FILE]          updown program for strongSwan / Libreswan' },
};

/** The command names (tests check that each has --help). */
export const COMMAND_NAMES: readonly string[] = Object.keys(COMMANDS);

/** Every command's flags (tests check that each has a line in FLAG_HELP). */
export const COMMAND_FLAGS: Readonly<Record<string, Readonly<Record<string, FlagKind>>>> = Object.fromEntries(Object.entries(COMMANDS).map(([n, c]) => [n, c.flags]));

/** Exit status of each error code; anything without a code is a bug: 2 with its stack. */
export const EXIT_STATUS: Record<ErrorCode, number> = {
  EUSAGE: 2, EVALUE: 2, EPOLICY: 1, ECAPTURE: 1, ETABLE: 1, EQUEUE: 1, ECONTROL: 1,
};

export const USAGE = [
  'usage: nfsieve COMMAND [options]      (nfsieve COMMAND --help for one command)',
  '',
  'commands:',
  ...Object.values(COMMANDS).map((c) => `  ${c.help}`),
  '',
  'POLICY is a .yaml/.yml/.json policy, or an iptables-save file with --iptables [--table T] [--chain C] [--ipset FILE].',
  'Captures lack metadata: supply it with --in IF, --out IF, --ctstate STATE, --mark N.',
  'Exit status: 0 success, 1 input refused (policy, capture, table, queue), 2 usage; 141 when stdout closes early.',
  'See README.md and docs/ for details.',
].join('\n');

/** One command's usage: its synopsis and every flag it takes. */
export function commandUsage(name: string): string {
  const c = COMMANDS[name];
  return [`usage: nfsieve ${c.help.split('\n').map((l) => l.trim()).join('\n       nfsieve ')}`, '', 'options:', ...flagLines(c.flags), ''].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  quietOnBrokenPipe();
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE + '\n');
    return name ? 0 : 2;
  }
  if (name === '--version' || name === 'version') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    process.stdout.write(`nfsieve ${require('../../package.json').version}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`nfsieve: unknown command '${name}'\n${USAGE}\n`);
    return 2;
  }
  const out = new Output();
  try {
    const args = parseArgs(rest, command.flags);
    if (args.flags.has(HELP_FLAG)) {
      process.stdout.write(commandUsage(name));
      return 0;
    }
    const code = await command.run(args, out);
    out.flush();
    return code;
  } catch (err) {
    out.flush();
    const code = errorCode(err);
    if (code === null) throw err;
    // Before parsing succeeded we only know whether --json was written.
    if (rest.includes('--json')) {
      for (const line of errorLines(err as Error, code)) process.stdout.write(JSON.stringify(line) + '\n');
    } else {
      // Policy and capture messages begin with FILE[:LINE:COL]; the others with the command.
      const named = code === 'EPOLICY' || code === 'ECAPTURE';
      process.stderr.write(named ? `${(err as Error).message}\n` : `nfsieve ${name}: ${(err as Error).message}\n`);
    }
    return EXIT_STATUS[code];
  }
}

/** The JSON lines of an error: one per diagnostic of a refused policy. */
export function errorLines(err: Error, code: ErrorCode): { error: Record<string, unknown> }[] {
  if (err instanceof PolicyError) {
    return err.diagnostics.map((d) => ({ error: { code, message: d.message, file: d.file, line: d.line || null, col: d.column || null } }));
  }
  const e = err as Error & { file?: string; line?: number; col?: number };
  const extra = err instanceof CaptureError ? { offset: err.offset } : {};
  return [{ error: { code, message: e.message, file: e.file ?? null, line: e.line ?? null, col: e.col ?? null, ...extra } }];
}
