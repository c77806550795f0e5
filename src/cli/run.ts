/**
 * `nfsieve run POLICY --queue N[:M]`: attach to NFQUEUE queues in the
 * foreground. Periodic counters (a table, or JSON lines with --json); SIGHUP
 * re-reads the policy (a bad one is reported and the running one stays);
 * SIGINT/SIGTERM stop cleanly with final counters.
 */
import { attach, parseQueueRange, AttachStats } from '../queue';
import { compile } from '../compile/compile';
import { ParsedArgs, UsageError, stringFlag, intFlag } from './args';
import { Output } from './output';
import { loadPolicyArg, POLICY_FLAGS } from './policy-arg';

export const RUN_FLAGS = {
  ...POLICY_FLAGS, queue: 'string', 'fail-open': 'boolean', 'copy-range': 'string', 'stats-every': 'string', json: 'boolean',
  'max-len': 'string', rcvbuf: 'string', 'reject-mark': 'string', 'no-gso': 'boolean',
} as const;

function table(s: AttachStats): string {
  const lines: string[] = [];
  for (const q of s.queues) {
    lines.push(`queue ${q.queue}: received ${q.received}, accepted ${q.accepted}, dropped ${q.dropped}, rejected ${q.rejected}, queued ${q.queued}, enobufs ${q.enobufs}, verdict errors ${q.verdictErrors}; kernel: waiting ${q.kernel.queueTotal}, queue_dropped ${q.kernel.queueDropped}, user_dropped ${q.kernel.userDropped}`);
  }
  const width = Math.max(4, ...s.rules.map((r) => String(r.rule).length));
  lines.push(`  ${'rule'.padEnd(width)}  line      packets        bytes   over-limit`);
  for (const r of s.rules) {
    lines.push(`  ${String(r.rule).padEnd(width)}  ${String(r.line ?? '-').padStart(4)}  ${String(r.hits).padStart(11)}  ${String(r.bytes).padStart(11)}  ${String(r.overLimit).padStart(11)}`);
  }
  return lines.join('\n');
}

function json(s: AttachStats, event: string): string {
  return JSON.stringify({
    event, time: new Date().toISOString(), generation: s.generation, queues: s.queues,
    rules: s.rules.map((r) => ({ rule: r.rule, line: r.line, packets: Number(r.hits), bytes: Number(r.bytes), overLimit: Number(r.overLimit), evictions: Number(r.evictions) })),
  });
}

export async function run(args: ParsedArgs, out: Output): Promise<number> {
  const queueText = stringFlag(args, 'queue');
  if (args.positional.length !== 1 || !queueText) throw new UsageError('usage: nfsieve run POLICY --queue N[:M] [--iptables [--table T] [--chain C]] [--fail-open] [--copy-range B] [--stats-every S] [--json] [--reject-mark M]');
  const file = args.positional[0];
  const queues = parseQueueRange(queueText);
  const every = intFlag(args, 'stats-every', 0, 86400) ?? 10;
  const asJson = args.flags.has('json');
  const failOpen = args.flags.has('fail-open');
  let compiled = compile(loadPolicyArg(file, args), { analyse: false });
  const attachment = attach(compiled, {
    queues,
    failOpen,
    copyRange: intFlag(args, 'copy-range', 0, 65535) ?? 256,
    maxLen: intFlag(args, 'max-len', 1, 1 << 24),
    rcvbuf: intFlag(args, 'rcvbuf', 4096, 1 << 30),
    rejectMark: intFlag(args, 'reject-mark', 0, 0xffffffff),
    gso: !args.flags.has('no-gso'),
    statsIntervalMs: every > 0 ? every * 1000 : undefined,
  });
  const say = (line: string): void => { out.line(line); out.flush(); };
  const note = (message: string, extra: Record<string, unknown> = {}): void => {
    if (asJson) say(JSON.stringify({ event: 'note', time: new Date().toISOString(), message, ...extra }));
    else process.stderr.write(`nfsieve: ${message}\n`);
  };
  attachment.on('error', (e: Error) => note(`error: ${e.message}`));
  attachment.on('stats', (s: AttachStats) => say(asJson ? json(s, 'stats') : table(s)));
  // Keep the process alive while attached (the native side is unref'd by design).
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const reload = (): void => {
    try {
      const next = compile(loadPolicyArg(file, args), { analyse: false });
      attachment.reload(next);
      compiled = next;
      note(`reloaded ${file}: ${next.policy.rules.length} rules`);
    } catch (e) {
      note(`reload of ${file} refused, the running policy stays: ${(e as Error).message}`);
    }
  };
  process.on('SIGHUP', reload);
  const stopped = new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      note(`${sig}: stopping`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  note(`attached ${file} (${compiled.policy.rules.length} rules, ${compiled.table.length}-byte table) to queue${queues.length > 1 ? 's' : ''} ${queueText}; fail-open ${failOpen ? 'ON: packets pass unclassified when the queue is full' : 'off'}`, { queues, failOpen });
  for (const w of attachment.warnings) note(`warning: ${w}`);
  await stopped;
  await attachment.close();
  clearInterval(keepAlive);
  process.removeListener('SIGHUP', reload);
  const final = attachment.stats();
  say(asJson ? json(final, 'final') : `final counters:\n${table(final)}`);
  return 0;
}
