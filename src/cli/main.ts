/**
 * The `nfsieve` command. Exit codes: 0 success, 1 the input was refused (bad
 * policy, bad capture, bad rule file), 2 usage errors and unexpected failures.
 */
import { parseArgs, UsageError, FlagKind, ParsedArgs } from './args';
import { inspect, INSPECT_FLAGS } from './inspect';
import { check, CHECK_FLAGS } from './check';
import { classify, CLASSIFY_FLAGS } from './classify';
import { explain, EXPLAIN_FLAGS } from './explain';
import { importCommand, IMPORT_FLAGS } from './import';
import { run, RUN_FLAGS } from './run';
import { hook, HOOK_FLAGS } from './hook';
import { demo, DEMO_FLAGS } from './demo';
import { bench, BENCH_FLAGS } from './bench';
import { Output } from './output';
import { CaptureError } from '../capture/pcap';

interface Command {
  flags: Record<string, FlagKind>;
  run: (args: ParsedArgs, out: Output) => number | Promise<number>;
  help: string;
}

const COMMANDS: Record<string, Command> = {
  inspect: { flags: INSPECT_FLAGS, run: inspect, help: 'inspect FILE.pcap [--json]                  decode every frame of a capture' },
  check: { flags: CHECK_FLAGS, run: check, help: 'check POLICY [--json]                       compile a policy, report size and warnings' },
  classify: { flags: CLASSIFY_FLAGS, run: classify, help: 'classify POLICY --pcap FILE [--json]        verdict for every frame of a capture\n  classify --classbench RULES --trace TRACE [--json]' },
  explain: { flags: EXPLAIN_FLAGS, run: explain, help: 'explain POLICY (--hex PKT | --pcap F --index N)  why a packet got its verdict' },
  run: { flags: RUN_FLAGS, run, help: 'run POLICY --queue N[:M] [--json] [--stats-every S]  attach to NFQUEUE (root)' },
  demo: { flags: DEMO_FLAGS, run: demo, help: 'demo [--duration S] [--json]               an IPsec gateway lab in network namespaces (root)' },
  hook: { flags: HOOK_FLAGS, run: hook, help: 'hook POLICY --queue N[:M] [--nft] [--delete]  print the kernel rules that feed the queue' },
  bench: { flags: BENCH_FLAGS, run: bench, help: 'bench POLICY [--pcap FILE] [--json]        lookup cost of a policy on a capture\n  bench --classbench RULES [--trace TRACE] [--json]' },
  import: { flags: IMPORT_FLAGS, run: importCommand, help: 'import iptables FILE [--table T] [--chain C] [--ipset F]  iptables-save to a policy' },
};

export const USAGE = [
  'usage: nfsieve COMMAND [options]',
  '',
  'commands:',
  ...Object.values(COMMANDS).map((c) => `  ${c.help}`),
  '',
  'POLICY is a .yaml/.yml/.json policy, or an iptables-save file with --iptables [--table T] [--chain C] [--ipset FILE].',
  'Captures lack metadata: supply it with --in IF, --out IF, --ctstate STATE, --mark N.',
  'See README.md and docs/ for details.',
].join('\n');

export async function main(argv: string[]): Promise<number> {
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
    const code = await command.run(parseArgs(rest, command.flags), out);
    out.flush();
    return code;
  } catch (err) {
    out.flush();
    if (err instanceof UsageError) {
      process.stderr.write(`nfsieve ${name}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CaptureError || (err as { exitCode?: number }).exitCode === 1) {
      process.stderr.write(`${(err as Error).message}\n`);
      return 1;
    }
    if (err instanceof Error && (/^invalid table/.test(err.message) || name === 'run')) {
      process.stderr.write(`nfsieve ${name}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
