/**
 * The `nfsieve` command. Exit codes: 0 success, 1 the input was refused (bad
 * policy, bad capture), 2 usage errors and unexpected failures.
 */
import { parseArgs, UsageError, FlagKind } from './args';
import { inspect, INSPECT_FLAGS } from './inspect';
import { Output } from './output';
import { CaptureError } from '../capture/pcap';

interface Command {
  flags: Record<string, FlagKind>;
  run: (args: ReturnType<typeof parseArgs>, out: Output) => number | Promise<number>;
  help: string;
}

const COMMANDS: Record<string, Command> = {
  inspect: { flags: INSPECT_FLAGS, run: inspect, help: 'inspect FILE.pcap [--json]        decode every frame of a capture' },
};

export const USAGE = [
  'usage: nfsieve COMMAND [options]',
  '',
  'commands:',
  ...Object.values(COMMANDS).map((c) => `  ${c.help}`),
  '',
  'See README.md and docs/ for details.',
].join('\n');

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE + '\n');
    return name ? 0 : 2;
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
    throw err;
  }
}
