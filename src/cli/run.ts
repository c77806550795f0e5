/**
 * `nfsieve run POLICY --queue N[:M]`: attach to NFQUEUE queues in the
 * foreground. Periodic counters (a table, or JSON lines with --json); SIGHUP
 * and the control socket's `reload` re-read the policy (a bad one is reported
 * and the running one stays); the control socket (docs/control.md) changes
 * live set members; --state keeps them across restarts; SIGINT/SIGTERM stop
 * cleanly with final counters.
 */
import * as fs from 'node:fs';
import { attach, parseQueueRange, AttachStats, Attachment, AttachOptions } from '../queue';
import { NativeQueueStats } from '../native';
import { compile } from '../compile/compile';
import { ParsedArgs, UsageError, stringFlag, intFlag } from './args';
import { ControlService, ReloadOutcome } from '../control/service';
import { ControlServer } from '../control/server';
import { controlPath, CONTROL_ENV } from '../control/client';
import { readState, StateError } from '../control/state';
import { Output } from './output';
import { loadPolicyArg, POLICY_FLAGS } from './policy-arg';
import { startVici, checkLearnSet, DEFAULT_LEARN_SET, ViciLearner } from '../ike/vici';
import { serveMetrics, parseListen, attachmentSnapshot, MetricsServer } from '../metrics';
import { IpsetSync } from '../hook/ipset-sync';
import { NfsieveError } from '../errors';
import { Queue as WireQueue } from '../wire';

export const RUN_FLAGS = {
  ...POLICY_FLAGS, queue: 'string', 'fail-open': 'boolean', 'copy-range': 'string', 'stats-every': 'string', json: 'boolean',
  'max-len': 'string', rcvbuf: 'string', 'reject-mark': 'string', 'no-gso': 'boolean',
  control: 'string', 'control-group': 'string', 'no-control': 'boolean', state: 'string',
  vici: 'boolean', 'vici-socket': 'string', 'learn-set': 'string', metrics: 'string', offload: 'boolean', 'coalesce-us': 'string',
} as const;

/** Counters as plain JSON (what --json prints and the control socket's `stats` answers). */
export interface StatsView {
  generation: number;
  queues: NativeQueueStats[];
  /** overLimit: packets a rule's limit refused; evictions: its per-source buckets given up. */
  rules: { rule: string | number; line: number | null; packets: number; bytes: number; overLimit: number; evictions: number }[];
}

export function statsView(s: AttachStats): StatsView {
  return { generation: s.generation, queues: s.queues, rules: s.rules.map((r) => ({ rule: r.rule, line: r.line, packets: Number(r.hits), bytes: Number(r.bytes), overLimit: Number(r.overLimit), evictions: Number(r.evictions) })) };
}

/** The counters table `run` prints (and `nfsieve stats`). */
export function formatStats(s: StatsView): string {
  const lines: string[] = [];
  for (const q of s.queues) {
    lines.push(`queue ${q.queue}: received ${q.received}, accepted ${q.accepted}, dropped ${q.dropped}, rejected ${q.rejected}, queued ${q.queued}, enobufs ${q.enobufs}, verdict errors ${q.verdictErrors}; kernel: waiting ${q.kernel.queueTotal}, queue_dropped ${q.kernel.queueDropped}, user_dropped ${q.kernel.userDropped}`);
  }
  const width = Math.max(4, ...s.rules.map((r) => String(r.rule).length));
  lines.push(`  ${'rule'.padEnd(width)}  line      packets        bytes   over-limit`);
  for (const r of s.rules) {
    lines.push(`  ${String(r.rule).padEnd(width)}  ${String(r.line ?? '-').padStart(4)}  ${String(r.packets).padStart(11)}  ${String(r.bytes).padStart(11)}  ${String(r.overLimit ?? 0).padStart(11)}`);
  }
  return lines.join('\n');
}

function table(s: AttachStats): string { return formatStats(statsView(s)); }

function json(s: AttachStats, event: string): string {
  return JSON.stringify({ event, time: new Date().toISOString(), ...statsView(s) });
}

/** Read --state and apply it; a broken file is moved aside and the run starts with file members only. */
function restoreState(service: ControlService, file: string, note: (m: string) => void): void {
  try {
    const state = readState(file);
    if (!state) return;
    for (const w of service.restore(state)) note(`warning: ${w}`);
    const live = Object.values(state.sets).reduce((n, m) => n + m.length, 0);
    note(`state ${file}: ${live} live member(s) read`);
  } catch (e) {
    if (!(e instanceof StateError)) throw e;
    const aside = `${file}.corrupt`;
    try { fs.renameSync(file, aside); } catch { /* leave it */ }
    note(`${e.message}; moved to ${aside}; starting with the policy file's members only`);
  }
}

/** Open the control socket; an explicit path that cannot be used is an error, the default one a warning. */
async function openControl(args: ParsedArgs, service: ControlService, note: (m: string) => void): Promise<ControlServer | null> {
  if (args.flags.has('no-control')) return null;
  const explicit = stringFlag(args, 'control') !== undefined || !!process.env[CONTROL_ENV];
  const file = controlPath(stringFlag(args, 'control'));
  try {
    const server = await ControlServer.listen(service, { path: file, group: stringFlag(args, 'control-group'), log: note });
    note(`control socket ${file}`);
    return server;
  } catch (e) {
    if (explicit || args.flags.has('control-group')) throw e;
    note(`warning: no control socket: ${(e as Error).message} (give --control PATH, or --no-control)`);
    return null;
  }
}

function expire(a: Attachment): void {
  try { a.expireSets(); } catch { /* closing */ }
}

/** The attach() options the command line gives. */
function attachOptions(args: ParsedArgs, queues: number[], every: number): AttachOptions {
  return {
    queues,
    failOpen: args.flags.has('fail-open'),
    copyRange: intFlag(args, 'copy-range', 0, 65535),
    maxLen: intFlag(args, 'max-len', 1, 1 << 24),
    rcvbuf: intFlag(args, 'rcvbuf', 4096, 1 << 30),
    rejectMark: intFlag(args, 'reject-mark', 0, 0xffffffff),
    gso: !args.flags.has('no-gso'),
    coalesceUs: intFlag(args, 'coalesce-us', 0, WireQueue.CoalesceMaxUs),
    statsIntervalMs: every > 0 ? every * 1000 : undefined,
  };
}

/** Lines on stdout, and notes: JSON lines with --json, else on stderr. */
function speaker(out: Output, asJson: boolean): { say: (line: string) => void; note: (message: string, extra?: Record<string, unknown>) => void } {
  const say = (line: string): void => { out.line(line); out.flush(); };
  const note = (message: string, extra: Record<string, unknown> = {}): void => {
    if (asJson) say(JSON.stringify({ event: 'note', time: new Date().toISOString(), message, ...extra }));
    else process.stderr.write(`nfsieve: ${message}\n`);
  };
  return { say, note };
}

/** Resolves on the first SIGINT or SIGTERM. */
function untilStopped(note: (message: string) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      note(`${sig}: stopping`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

/** What run starts beside the attachment, closed in reverse order. */
interface Running { metrics?: MetricsServer | null; vici?: ViciLearner | null; server?: ControlServer | null; reaper?: NodeJS.Timeout }

async function closeAll(attachment: Attachment, r: Running): Promise<void> {
  await r.metrics?.close();
  await r.vici?.close();
  await r.server?.close();
  await attachment.close();
  clearInterval(r.reaper);
}

export async function run(args: ParsedArgs, out: Output): Promise<number> {
  const queueText = stringFlag(args, 'queue');
  if (args.positional.length !== 1 || !queueText) throw new UsageError('usage: nfsieve run POLICY --queue N[:M] [--iptables [--table T] [--chain C]] [--fail-open] [--copy-range B] [--coalesce-us U] [--stats-every S] [--json] [--reject-mark M] [--control PATH [--control-group G] | --no-control] [--state FILE] [--vici [--vici-socket PATH] [--learn-set NAME]] [--metrics HOST:PORT] [--offload]');
  const file = args.positional[0];
  const queues = parseQueueRange(queueText);
  const every = intFlag(args, 'stats-every', 0, 86400) ?? 10;
  const asJson = args.flags.has('json');
  let compiled = compile(loadPolicyArg(file, args), { analyse: false });
  const useVici = args.flags.has('vici') || args.flags.has('vici-socket');
  if (useVici) checkLearnSet(compiled.policy, stringFlag(args, 'learn-set') ?? DEFAULT_LEARN_SET);
  const metricsText = stringFlag(args, 'metrics');
  const metricsAt = metricsText === undefined ? null : parseListen(metricsText);
  const reloads = { ok: 0, failed: 0 };
  const options = attachOptions(args, queues, every);
  const attachment = attach(compiled, options);
  const coalesceUs = options.coalesceUs ?? WireQueue.CoalesceUs;
  const { say, note } = speaker(out, asJson);
  attachment.on('error', (e: Error) => note(`error: ${e.message}`));
  attachment.on('stats', (s: AttachStats) => say(asJson ? json(s, 'stats') : table(s)));
  // --offload: the set operations also keep hook --offload's ipsets a subset of the live sets.
  const offload = args.flags.has('offload') ? new IpsetSync(attachment, { log: note }) : null;
  const sets = offload ?? attachment;
  // SIGHUP and the control socket's `reload`: one function, one outcome.
  const reloadPolicy = (): ReloadOutcome => {
    try {
      const next = compile(loadPolicyArg(file, args), { analyse: false });
      if (offload) offload.reload(next.policy, () => attachment.reload(next));
      else attachment.reload(next);
      compiled = next;
      reloads.ok++;
      return { ok: true, message: `reloaded ${file}: ${next.policy.rules.length} rules` };
    } catch (e) {
      reloads.failed++;
      return { ok: false, message: `reload of ${file} refused, the running policy stays: ${(e as Error).message}` };
    }
  };
  const stateFile = stringFlag(args, 'state');
  const service = new ControlService(
    { sets, stats: () => statsView(attachment.stats()), reload: () => { const r = reloadPolicy(); note(r.message); return r; } },
    { stateFile, log: note },
  );
  if (stateFile) restoreState(service, stateFile, note);
  const running: Running = {};
  try {
    if (offload) { offload.start(); note(`offload: keeping ipsets ${offload.ipsets.join(', ') || '(none: no rule is offloaded)'}`); }
    running.server = await openControl(args, service, note);
  } catch (e) {
    await attachment.close();
    throw e;
  }
  // Reaps expired live members (they stopped matching already) and keeps the
  // process alive while attached (the native side is unref'd by design).
  running.reaper = setInterval(() => expire(attachment), 1000);
  const reload = (): void => { note(reloadPolicy().message); };
  process.on('SIGHUP', reload);
  const stopped = untilStopped(note);
  note(`attached ${file} (${compiled.policy.rules.length} rules, ${compiled.table.length}-byte table) to queue${queues.length > 1 ? 's' : ''} ${queueText}; fail-open ${options.failOpen ? 'ON: packets pass unclassified when the queue is full' : 'off'}; wake-up coalescing ${coalesceUs ? `up to ${coalesceUs} µs` : 'off'}`, { queues, failOpen: options.failOpen, coalesceUs });
  for (const w of attachment.warnings) note(`warning: ${w}`);
  running.vici = useVici ? startVici(sets, { socket: stringFlag(args, 'vici-socket'), set: stringFlag(args, 'learn-set') }, note) : null;
  const vici = running.vici;
  const snapshot = () => attachmentSnapshot(attachment, { reloads, vici: vici ? { connected: vici.connected, hosts: vici.hosts().length } : undefined });
  running.metrics = metricsAt && await serveMetrics(metricsAt, snapshot).catch(async (e: Error) => {
    await closeAll(attachment, running);
    throw new NfsieveError('ECONTROL', `--metrics ${metricsText}: ${e.message}`);
  });
  const m = running.metrics;
  if (m) note(`metrics on http://${m.address.host.includes(':') ? `[${m.address.host}]` : m.address.host}:${m.address.port}/metrics`, { metrics: m.address });
  await stopped;
  await closeAll(attachment, running);
  process.removeListener('SIGHUP', reload);
  const final = attachment.stats();
  say(asJson ? json(final, 'final') : `final counters:\n${table(final)}`);
  return 0;
}
