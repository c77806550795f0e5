/**
 * Attaching a policy to NFQUEUE queues. Every packet gets its verdict on a
 * native thread of the addon (one per queue); JavaScript hears only errors and
 * periodic statistics, never one call per packet.
 *
 *   const q = attach(loadPolicyFile('gateway.yaml'), { queues: [0, 1] });
 *   q.on('error', (e) => console.error(e.message));
 *   q.addToSet('gateways', '192.0.2.7');
 *   await q.reload(loadPolicyFile('gateway.yaml'));
 *   await q.close();
 */
import { EventEmitter } from 'node:events';
import { native, NativeQueueEngine, NativeQueueStats } from './native';
import { compile, CompiledPolicy } from './compile/compile';
import { Policy } from './policy/model';
import { ValueError } from './policy/values';
import { Queue as WireQueue } from './wire';
import { counterRows, RuleCounter } from './counters';
import { LiveSets, SetOperations, AddOptions, DeleteOptions, OriginSelector, SetMember, SetSizes } from './sets';

export interface AttachOptions {
  /** Queue numbers to bind, one native thread each. */
  queues: number[];
  /** Bytes of each packet copied to us (headers the policy reads); default 256. */
  copyRange?: number;
  /** Kernel queue length (NFQA_CFG_QUEUE_MAXLEN); default 4096. */
  maxLen?: number;
  /** Socket receive buffer in bytes; default 8 MiB (SO_RCVBUFFORCE, falling back to SO_RCVBUF). */
  rcvbuf?: number;
  /** Let the kernel accept packets when the queue is full (NFQA_CFG_F_FAIL_OPEN); default off. */
  failOpen?: boolean;
  /** Ask for GSO super-packets unsegmented (NFQA_CFG_F_GSO); default on. */
  gso?: boolean;
  /** Verdict `reject`: accept with this mark (for an iptables REJECT after the queue); default: drop. */
  rejectMark?: number;
  /**
   * Wake-up coalescing: the longest a queue thread sleeps after a batch, in
   * microseconds (0 to 1000; default 1000; 0: off). While packets keep
   * arriving, a thread that has drained its socket estimates its own arrival
   * rate and sleeps so that its next batch gathers 32 packets (Queue.CoalesceTarget),
   * never longer than this, so that they share one wake-up, one receive and
   * one verdict message; with several queues each thread sleeps for its own
   * share of the rate. It never sleeps after a full batch, for a lone packet
   * or under one packet per window. A packet may wait this long, plus its
   * batch's processing, 10 µs of timer slack and the scheduler's delay,
   * before it is received. native/nfqueue/moderation.h has the rule,
   * docs/benchmarks.md the measurements.
   */
  coalesceUs?: number;
  /** Emit 'stats' events this often (milliseconds); default none. */
  statsIntervalMs?: number;
}

export type { RuleCounter } from './counters';

/** Counters of one queue: nfsieve's own, and the kernel's from /proc/net/netfilter/nfnetlink_queue. */
export type QueueCounters = NativeQueueStats;

/** What a 'stats' event carries and `stats()` returns. */
export interface QueueStats {
  /** Incremented by every reload. */
  generation: number;
  running: boolean;
  /** One entry per queue, in the order of `AttachOptions.queues`. */
  queues: QueueCounters[];
  /** One entry per rule, then one for the default verdict. */
  rules: RuleCounter[];
}
/** @deprecated the same as QueueStats. */
export type AttachStats = QueueStats;

/** The events of an Attachment and their arguments. */
export interface AttachmentEvents {
  /** Every `statsIntervalMs` (never once per packet). */
  stats: [stats: QueueStats];
  /** A queue thread's failure (receive errors, a verdict the kernel refused...); the attachment keeps running. */
  error: [error: Error];
}

export interface Attachment extends EventEmitter, SetOperations {
  on<K extends keyof AttachmentEvents>(event: K, listener: (...args: AttachmentEvents[K]) => void): this;
  once<K extends keyof AttachmentEvents>(event: K, listener: (...args: AttachmentEvents[K]) => void): this;
  off<K extends keyof AttachmentEvents>(event: K, listener: (...args: AttachmentEvents[K]) => void): this;
  addListener<K extends keyof AttachmentEvents>(event: K, listener: (...args: AttachmentEvents[K]) => void): this;
  removeListener<K extends keyof AttachmentEvents>(event: K, listener: (...args: AttachmentEvents[K]) => void): this;
  readonly policy: Policy;
  /** Limits found at start (for example: no conntrack state from this kernel). */
  readonly warnings: string[];
  stats(): QueueStats;
  /**
   * Swap in a new policy atomically: file members become exactly the new
   * policy's, live members of sets kept (same name and kind) carry over with
   * their timeouts. A bad policy throws and changes nothing.
   */
  reload(policy: Policy | CompiledPolicy): void;
  /** Stop receiving, answer every packet received, unbind, join the threads. */
  close(): Promise<void>;
}

class QueueAttachment extends EventEmitter implements Attachment {
  private engine: NativeQueueEngine;
  private compiled: CompiledPolicy;
  private closing: Promise<void> | null = null;
  private readonly live: LiveSets;
  readonly warnings: string[];

  constructor(compiled: CompiledPolicy, options: AttachOptions) {
    super();
    this.compiled = compiled;
    this.engine = new (native().QueueEngine)();
    this.warnings = this.engine.start(compiled.table, { ...options, conntrack: compiled.needs.ctstate }, (kind, message) => this.deliver(kind, message));
    this.live = new LiveSets(this.engine, () => this.policy);
  }

  get policy(): Policy { return this.compiled.policy; }

  /** Listener exceptions stay here: a throwing listener never takes the process down. */
  private deliver(kind: 'error' | 'stats', message: string): void {
    try {
      if (kind === 'error') {
        if (this.listenerCount('error') > 0) this.emit('error', new Error(message));
      } else {
        this.emit('stats', this.stats());
      }
    } catch (err) {
      process.emitWarning(`nfsieve: a '${kind}' listener threw: ${(err as Error)?.message ?? err}`);
    }
  }

  stats(): AttachStats {
    const s = this.engine.stats();
    const rules = counterRows(this.policy, s);
    return { generation: s.generation, running: s.running, queues: s.queues, rules };
  }

  reload(policy: Policy | CompiledPolicy): void {
    const compiled = 'table' in policy ? policy : compile(policy, { analyse: false });
    this.engine.reload(compiled.table);
    this.compiled = compiled;
  }

  addToSet(name: string, element: string | number, options?: AddOptions): boolean { return this.live.add(name, element, options); }
  deleteFromSet(name: string, element: string | number, options?: DeleteOptions): boolean { return this.live.delete(name, element, options); }
  flushSet(name: string, origin?: OriginSelector): number { return this.live.flush(name, origin); }
  testSet(name: string, value: string | number): boolean { return this.live.test(name, value); }
  listSet(name: string): SetMember[] { return this.live.list(name); }
  setSizes(): SetSizes[] { return this.live.sizes(); }
  expireSets(): number { return this.live.expire(); }

  close(): Promise<void> {
    this.closing ??= this.engine.close();
    return this.closing;
  }
}

/** Attach a policy (or an already compiled one) to NFQUEUE queues. Needs CAP_NET_ADMIN. */
export function attach(policy: Policy | CompiledPolicy, options: AttachOptions): Attachment {
  if (!Array.isArray(options.queues) || options.queues.length === 0) throw new ValueError('attach: options.queues must list at least one queue number');
  for (const q of options.queues) if (!Number.isInteger(q) || q < 0 || q > 65535) throw new ValueError(`attach: queue ${q} is not a number from 0 to 65535`);
  if (new Set(options.queues).size !== options.queues.length) throw new ValueError('attach: a queue is listed twice');
  const c = options.coalesceUs;
  if (c !== undefined && (!Number.isInteger(c) || c < 0 || c > WireQueue.CoalesceMaxUs)) throw new ValueError(`attach: coalesceUs must be a whole number of microseconds from 0 to ${WireQueue.CoalesceMaxUs}, got ${c}`);
  const compiled = 'table' in policy ? policy : compile(policy, { analyse: false });
  return new QueueAttachment(compiled, options);
}

/** Parse `N` or `N:M` (inclusive) into queue numbers. */
export function parseQueueRange(text: string): number[] {
  const m = /^(\d+)(?::(\d+))?$/.exec(text.trim());
  if (!m) throw new ValueError(`--queue expects N or N:M, got '${text}'`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (hi > 65535 || lo > hi) throw new ValueError(`--queue ${text}: queue numbers are 0-65535, first not above last`);
  if (hi - lo >= 64) throw new ValueError(`--queue ${text}: at most 64 queues (one thread each)`);
  return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
}
