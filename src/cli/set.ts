/**
 * `nfsieve set add|del|flush|test|list`: change and read the live named sets
 * of a running `nfsieve run` through its control socket, with ipset's habits
 * (docs/control.md).
 */
import { ParsedArgs, UsageError, intFlag } from './args';
import { Output } from './output';
import { call, CLIENT_FLAGS, EXIT_NO_DAEMON } from './control-client';
import { SetMember } from '../sets';

export const SET_FLAGS = { ...CLIENT_FLAGS, timeout: 'string', live: 'boolean', file: 'boolean', all: 'boolean' } as const;

const USAGE = [
  'usage: nfsieve set add NAME VALUE... [--timeout S]',
  '       nfsieve set del NAME VALUE...',
  '       nfsieve set flush NAME [--live|--file|--all]',
  '       nfsieve set test NAME VALUE',
  '       nfsieve set list [NAME] [--json]',
  '  (each takes --control PATH)',
].join('\n');

interface ListedSet { name: string; kind: string; size: number; file: number; live: number; members: SetMember[] }

function flushOrigin(args: ParsedArgs): string {
  const chosen = (['live', 'file', 'all'] as const).filter((o) => args.flags.has(o));
  if (chosen.length > 1) throw new UsageError('give one of --live, --file, --all');
  return chosen[0] ?? 'live';
}

function formatList(sets: ListedSet[]): string {
  const lines: string[] = [];
  for (const s of sets) {
    lines.push(`set ${s.name} (${s.kind}): ${s.size} members, ${s.file} from the file, ${s.live} live`);
    for (const m of s.members) lines.push(`  ${m.value}  ${m.origins.join('+')}${m.timeout === null ? '' : `  timeout ${m.timeout}`}`);
  }
  return lines.join('\n');
}

export async function setCommand(args: ParsedArgs, out: Output): Promise<number> {
  const [verb, name, ...values] = args.positional;
  const need = (ok: boolean): void => { if (!ok) throw new UsageError(USAGE); };
  let res;
  switch (verb) {
    case 'add':
      need(!!name && values.length > 0);
      res = await call(args, { cmd: 'set.add', set: name, values, timeout: intFlag(args, 'timeout', 0, 2147483) ?? 0 });
      break;
    case 'del':
      need(!!name && values.length > 0);
      res = await call(args, { cmd: 'set.del', set: name, values, origin: 'all' });
      break;
    case 'flush':
      need(!!name && values.length === 0);
      res = await call(args, { cmd: 'set.flush', set: name, origin: flushOrigin(args) });
      break;
    case 'test':
      need(!!name && values.length === 1);
      res = await call(args, { cmd: 'set.test', set: name, value: values[0] });
      if (typeof res === 'number') return res === 1 ? EXIT_NO_DAEMON : res;  // a refused test (unknown set) is an error, not "no"
      if (args.flags.has('json')) out.line(JSON.stringify({ set: name, value: values[0], matched: res.matched }));
      else out.line(`${values[0]} is ${res.matched ? '' : 'NOT '}in set ${name}`);
      return res.matched ? 0 : 1;
    case 'list':
      need(values.length === 0);
      res = await call(args, { cmd: 'set.list', ...(name ? { set: name } : {}) });
      if (typeof res === 'number') return res;
      out.line(args.flags.has('json') ? JSON.stringify(res.sets) : formatList(res.sets as ListedSet[]));
      return 0;
    default:
      throw new UsageError(USAGE);
  }
  if (typeof res === 'number') return res;
  if (args.flags.has('json')) {
    const { v: _v, id: _id, ok: _ok, ...rest } = res;
    out.line(JSON.stringify(rest));
  }
  return 0;
}
