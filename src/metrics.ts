/**
 * `nfsieve run --metrics HOST:PORT`: the Prometheus text exposition format
 * (version 0.0.4) on GET /metrics. The renderer is a pure function over a
 * typed snapshot (a source that is absent renders nothing); the server is a
 * few lines of node:http, bound to loopback unless a host is given.
 */
import * as http from 'node:http';
import { ValueError } from './policy/values';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const METRICS_PATH = '/metrics';
export const DEFAULT_METRICS_HOST = '127.0.0.1';

/** A counter value as the sources give it. */
export type Count = number | bigint;

export interface QueueMetrics {
  queue: number;
  received: Count;
  accepted: Count;
  dropped: Count;
  rejected: Count;
  enobufs: Count;
  verdictErrors?: Count;
  /** The kernel's counters (/proc/net/netfilter/nfnetlink_queue), when it reported them. */
  kernel?: { queueDropped: Count; userDropped: Count; present?: boolean };
}

/** What /metrics shows; every part is optional. */
export interface MetricsSnapshot {
  rules?: { rule: string | number; packets: Count; bytes: Count }[];
  queues?: QueueMetrics[];
  /** Members by origin. */
  sets?: { name: string; file: number; live: number }[];
  /** Packets that met every other condition of a rule but found its limit exhausted. */
  limits?: { rule: string | number; overLimit: Count; evictions?: Count }[];
  reloads?: { ok: number; failed: number };
  generation?: number;
  /** The vici learner: 1 while following charon. */
  vici?: { connected: boolean; hosts: number };
}

/** Label value escaping of the text format: backslash, double quote, line feed. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

type Sample = [labels: Record<string, string | number>, value: Count];

function family(out: string[], name: string, type: 'counter' | 'gauge', help: string, samples: Sample[]): void {
  if (samples.length === 0) return;
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, value] of samples) {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(',');
    out.push(`${name}${l ? `{${l}}` : ''} ${String(value)}`);
  }
}

function queueFamilies(out: string[], queues: QueueMetrics[]): void {
  const q = (n: QueueMetrics): { queue: number } => ({ queue: n.queue });
  family(out, 'nfsieve_queue_received_total', 'counter', 'Packets received from the NFQUEUE queue.', queues.map((n) => [q(n), n.received]));
  family(out, 'nfsieve_queue_verdicts_total', 'counter', 'Verdicts given, by verdict (reject: dropped, or accepted with --reject-mark).',
    queues.flatMap((n): Sample[] => [[{ ...q(n), verdict: 'accept' }, n.accepted], [{ ...q(n), verdict: 'drop' }, n.dropped], [{ ...q(n), verdict: 'reject' }, n.rejected]]));
  family(out, 'nfsieve_queue_enobufs_total', 'counter', 'ENOBUFS from the netlink socket (the kernel could not deliver to us).', queues.map((n) => [q(n), n.enobufs]));
  family(out, 'nfsieve_queue_verdict_errors_total', 'counter', 'Verdicts the kernel refused.', queues.filter((n) => n.verdictErrors !== undefined).map((n) => [q(n), n.verdictErrors!]));
  const kernel = queues.filter((n) => n.kernel && n.kernel.present !== false);
  family(out, 'nfsieve_queue_kernel_dropped_total', 'counter', 'Packets the kernel dropped for this queue: queue_dropped (queue full), user_dropped (socket buffer full).',
    kernel.flatMap((n): Sample[] => [[{ ...q(n), reason: 'queue_dropped' }, n.kernel!.queueDropped], [{ ...q(n), reason: 'user_dropped' }, n.kernel!.userDropped]]));
}

/** The exposition text of a snapshot. */
export function renderMetrics(s: MetricsSnapshot): string {
  const out: string[] = [];
  const rules = s.rules ?? [];
  family(out, 'nfsieve_rule_packets_total', 'counter', 'Packets decided by the rule (default: the policy default).', rules.map((r) => [{ rule: r.rule }, r.packets]));
  family(out, 'nfsieve_rule_bytes_total', 'counter', 'Bytes of the packets decided by the rule.', rules.map((r) => [{ rule: r.rule }, r.bytes]));
  const limits = s.limits ?? [];
  family(out, 'nfsieve_rule_over_limit_total', 'counter', 'Packets that met a rule\'s other conditions while over its limit (later rules decided).', limits.map((l) => [{ rule: l.rule }, l.overLimit]));
  family(out, 'nfsieve_rule_limit_evictions_total', 'counter', 'Per-source buckets of a rule\'s limit given up for newer sources (max-sources reached).',
    limits.filter((l) => l.evictions !== undefined).map((l) => [{ rule: l.rule }, l.evictions!]));
  queueFamilies(out, s.queues ?? []);
  family(out, 'nfsieve_set_members', 'gauge', 'Members of a named set by origin (file: the policy; live: added at run time).',
    (s.sets ?? []).flatMap((x): Sample[] => [[{ set: x.name, origin: 'file' }, x.file], [{ set: x.name, origin: 'live' }, x.live]]));
  if (s.reloads) family(out, 'nfsieve_reloads_total', 'counter', 'Policy reloads by result.', [[{ result: 'ok' }, s.reloads.ok], [{ result: 'failed' }, s.reloads.failed]]);
  if (s.generation !== undefined) family(out, 'nfsieve_policy_generation', 'gauge', 'Generation of the policy in force (1 at start, +1 per reload).', [[{}, s.generation]]);
  if (s.vici) {
    family(out, 'nfsieve_vici_connected', 'gauge', '1 while following charon over vici.', [[{}, s.vici.connected ? 1 : 0]]);
    family(out, 'nfsieve_vici_hosts', 'gauge', 'Remote hosts with an IKE SA up, as learnt over vici.', [[{}, s.vici.hosts]]);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** `HOST:PORT`, `[V6]:PORT`, or `PORT` / `:PORT` (loopback). */
export function parseListen(text: string): { host: string; port: number } {
  const t = text.trim();
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(t) ?? /^([^:[\]]*):(\d+)$/.exec(t) ?? /^()(\d+)$/.exec(t);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port <= 65535)) throw new ValueError(`--metrics expects HOST:PORT, [IPV6]:PORT or PORT, got '${text}'`);
  return { host: m[1] || DEFAULT_METRICS_HOST, port };
}

export interface MetricsServer { readonly address: { host: string; port: number }; close(): Promise<void> }

/** Serve GET/HEAD /metrics (404 elsewhere, 405 for other methods); resolves once listening. */
export function serveMetrics(listen: { host: string; port: number }, snapshot: () => MetricsSnapshot): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url !== METRICS_PATH) return void res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
    let body: string;
    try { body = renderMetrics(snapshot()); } catch (e) { return void res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${(e as Error).message}\n`); }
    res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.removeListener('error', reject);
      const a = server.address() as { address: string; port: number };
      resolve({ address: { host: a.address, port: a.port }, close: () => new Promise((r) => { server.close(() => r()); server.closeAllConnections(); }) });
    });
  });
}

/** The snapshot of a running attachment (and what `run` counts beside it). */
export function attachmentSnapshot(
  attachment: {
    readonly policy: { rules: { limit?: unknown }[] };
    stats(): { generation: number; queues: QueueMetrics[]; rules: { rule: string | number; hits: Count; bytes: Count; overLimit?: Count; evictions?: Count }[] };
    setSizes?(): { name: string; file: number; live: number }[];
  },
  extra: Pick<MetricsSnapshot, 'reloads' | 'vici'> = {},
): MetricsSnapshot {
  const s = attachment.stats();
  const limited = s.rules.filter((r, i) => attachment.policy.rules[i]?.limit !== undefined && r.overLimit !== undefined);
  return {
    rules: s.rules.map((r) => ({ rule: r.rule, packets: r.hits, bytes: r.bytes })),
    limits: limited.map((r) => ({ rule: r.rule, overLimit: r.overLimit!, evictions: r.evictions })),
    queues: s.queues,
    sets: attachment.setSizes?.(),
    generation: s.generation,
    ...extra,
  };
}
