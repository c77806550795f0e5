/**
 * `nfsieve stats` (the counters `run` prints, from the running daemon) and
 * `nfsieve reload` (what SIGHUP does, answered with the outcome).
 */
import { ParsedArgs, UsageError } from './args';
import { Output } from './output';
import { call, CLIENT_FLAGS } from './control-client';
import { formatStats, StatsView } from './run';

export const STATS_FLAGS = CLIENT_FLAGS;
export const RELOAD_FLAGS = { control: 'string' } as const;

export async function stats(args: ParsedArgs, out: Output): Promise<number> {
  if (args.positional.length > 0) throw new UsageError('usage: nfsieve stats [--json] [--control PATH]');
  const res = await call(args, { cmd: 'stats' });
  if (typeof res === 'number') return res;
  const view = res.stats as StatsView;
  out.line(args.flags.has('json') ? JSON.stringify(view) : formatStats(view));
  return 0;
}

export async function reload(args: ParsedArgs, out: Output): Promise<number> {
  if (args.positional.length > 0) throw new UsageError('usage: nfsieve reload [--control PATH]');
  const res = await call(args, { cmd: 'reload' }, 60_000);
  if (typeof res === 'number') return res;
  out.line(String(res.message));
  return 0;
}
