/**
 * `nfsieve run --vici`: learn gateways from strongSwan's charon over its vici
 * socket. Subscribes to ike-updown, ike-rekey and child-updown; on every
 * (re)connect it resynchronises with list-sas (streamed list-sa events, then
 * the response); it keeps which IKE SAs (by unique id) are up to which remote
 * host, adds a host to the learn set when its first IKE SA is established and
 * removes it when its last one goes. When charon goes away it reconnects with
 * a doubling backoff and logs once per outage; what was learnt stays until
 * the resynchronisation after the reconnect says otherwise.
 */
import { EventEmitter } from 'node:events';
import { ViciConnection } from './vici-connection';
import { ViciSection, text } from './vici-message';
import { IkeSaTracker, HostChanges, IKE_UP_STATES, ikeSas, rekeys } from './ike-sas';
import { Policy } from '../policy/model';
import { ValueError } from '../policy/values';

export const DEFAULT_VICI_SOCKET = '/var/run/charon.vici';
export const DEFAULT_LEARN_SET = 'gateways';
/** Reconnect backoff: the first retry after this, doubling up to BACKOFF_MAX_MS. */
export const BACKOFF_FIRST_MS = 100;
export const BACKOFF_MAX_MS = 5000;

/** vici names: the events we follow, and the streamed listing command. */
export const EVENT_IKE_UPDOWN = 'ike-updown';
export const EVENT_IKE_REKEY = 'ike-rekey';
export const EVENT_CHILD_UPDOWN = 'child-updown';
export const EVENT_LIST_SA = 'list-sa';
export const COMMAND_LIST_SAS = 'list-sas';
const UP_YES = 'yes';

/** What the learner changes: an Attachment, or a Classifier. */
export interface LearnTarget {
  /** Adds a live member. */
  addToSet(name: string, element: string): boolean;
  /** Called with `{ origin: 'live' }`: a member the policy file also gives stays. */
  deleteFromSet(name: string, element: string, options: { origin: 'live' }): boolean;
  /** When given, the learn set is checked to exist and hold addresses. */
  readonly policy?: Policy;
}

export interface ViciOptions {
  /** The vici Unix socket; default DEFAULT_VICI_SOCKET. */
  socket?: string;
  /** The address set to learn into; default DEFAULT_LEARN_SET. */
  set?: string;
  backoffFirstMs?: number;
  backoffMaxMs?: number;
}

/** The running learner. Events: 'synced' (after each resynchronisation), 'added' / 'removed' (host), 'disconnected' (reason). */
export interface ViciLearner extends EventEmitter {
  /** Hosts with at least one IKE SA up, as last learnt. */
  hosts(): string[];
  readonly connected: boolean;
  close(): Promise<void>;
}

type Sas = Map<string, string>;

class Learner extends EventEmitter implements ViciLearner {
  private readonly tracker = new IkeSaTracker();
  private conn: ViciConnection | null = null;
  /** During a resynchronisation: the SAs seen so far (list-sa and events), committed at its end. */
  private fresh: Sas | null = null;
  private synced = false;
  private delay: number;
  private outage: string | null = null;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  readonly path: string;
  readonly set: string;

  constructor(private readonly target: LearnTarget, private readonly opts: ViciOptions, private readonly log: (message: string) => void) {
    super();
    this.path = opts.socket ?? DEFAULT_VICI_SOCKET;
    this.set = opts.set ?? DEFAULT_LEARN_SET;
    this.delay = opts.backoffFirstMs ?? BACKOFF_FIRST_MS;
  }

  get connected(): boolean { return this.synced; }
  hosts(): string[] { return this.tracker.hosts(); }

  async connect(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    let conn: ViciConnection;
    try {
      conn = await ViciConnection.open(this.path, (name, message) => this.event(name, message));
    } catch (err) {
      this.lost(err as Error);
      return;
    }
    if (this.stopped) return conn.close();
    this.conn = conn;
    conn.onClose((err) => {
      if (this.conn !== conn) return;
      this.conn = null;
      this.synced = false;
      this.lost(err);
    });
    try {
      await this.resync(conn);
    } catch {
      conn.close(); // the close listener reports and retries
    }
  }

  private async resync(conn: ViciConnection): Promise<void> {
    this.fresh = new Map();
    for (const event of [EVENT_IKE_UPDOWN, EVENT_IKE_REKEY, EVENT_CHILD_UPDOWN, EVENT_LIST_SA]) await conn.register(event);
    await conn.command(COMMAND_LIST_SAS);
    await conn.unregister(EVENT_LIST_SA);
    const changes = this.tracker.replaceAll(this.fresh);
    this.fresh = null;
    this.apply(changes);
    const hosts = this.tracker.hosts().length;
    this.log(`vici: ${this.outage ? 'reconnected to' : 'following'} charon at ${this.path}: ${this.tracker.size} IKE SA(s) up to ${hosts} host(s) in set '${this.set}' (+${changes.added.length} -${changes.removed.length})`);
    this.outage = null;
    this.synced = true;
    this.delay = this.opts.backoffFirstMs ?? BACKOFF_FIRST_MS;
    this.emit('synced', { sas: this.tracker.size, hosts, ...changes });
  }

  private lost(err: Error): void {
    if (this.stopped) return;
    if (this.outage === null) {
      this.outage = err.message;
      this.log(`vici: charon at ${this.path} is not reachable (${err.message}); retrying with backoff up to ${(this.opts.backoffMaxMs ?? BACKOFF_MAX_MS) / 1000} s, learnt hosts kept until it is back`);
      this.emit('disconnected', err.message);
    }
    this.timer = setTimeout(() => void this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, this.opts.backoffMaxMs ?? BACKOFF_MAX_MS);
  }

  /** An event from charon (also during a resynchronisation). */
  private event(name: string, message: ViciSection): void {
    const up = text(message, 'up') === UP_YES;
    if (name === EVENT_LIST_SA) {
      for (const sa of ikeSas(message)) if (IKE_UP_STATES.has(sa.state)) this.fresh?.set(sa.id, sa.host);
    } else if (name === EVENT_IKE_UPDOWN) {
      for (const sa of ikeSas(message)) this.change(up ? (s) => s.set(sa.id, sa.host) : (s) => s.delete(sa.id), up ? (t) => t.up(sa.id, sa.host) : (t) => t.down(sa.id));
    } else if (name === EVENT_CHILD_UPDOWN && up) {
      // A CHILD_SA coming up proves its IKE SA is established (covers an ike-updown we could not see).
      for (const sa of ikeSas(message)) if (IKE_UP_STATES.has(sa.state)) this.change((s) => s.set(sa.id, sa.host), (t) => t.up(sa.id, sa.host));
    } else if (name === EVENT_IKE_REKEY) {
      for (const r of rekeys(message)) this.change((s) => { s.delete(r.old.id); s.set(r.new.id, r.new.host); }, (t) => t.move(r.old.id, r.new.id, r.new.host));
    }
  }

  private change(onFresh: (sas: Sas) => void, onTracker: (t: IkeSaTracker) => HostChanges): void {
    if (this.fresh) onFresh(this.fresh);
    else if (this.synced) this.apply(onTracker(this.tracker));
  }

  private apply(changes: HostChanges): void {
    for (const host of changes.added) this.setMember(host, true);
    for (const host of changes.removed) this.setMember(host, false);
  }

  private setMember(host: string, add: boolean): void {
    try {
      if (add) this.target.addToSet(this.set, host); else this.target.deleteFromSet(this.set, host, { origin: 'live' });
      this.log(`vici: ${add ? 'learnt' : 'forgot'} ${host} (set '${this.set}')`);
      this.emit(add ? 'added' : 'removed', host);
    } catch (err) {
      this.log(`vici: could not ${add ? 'add' : 'remove'} ${host} ${add ? 'to' : 'from'} set '${this.set}': ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.conn?.close();
    this.conn = null;
  }
}

/** Start learning; the first connection is attempted at once, errors are logged, never thrown after start. */
export function startVici(target: LearnTarget, opts: ViciOptions, log: (message: string) => void): ViciLearner {
  if (target.policy) checkLearnSet(target.policy, opts.set ?? DEFAULT_LEARN_SET);
  const learner = new Learner(target, opts, log);
  void learner.connect();
  return learner;
}

/** The learn set must be an address set of the policy. */
export function checkLearnSet(policy: Policy, set: string): void {
  const known = policy.sets.get(set);
  if (!known) throw new ValueError(`--vici: the policy has no set named '${set}' (--learn-set NAME chooses it)`);
  if (known.kind !== 'address') throw new ValueError(`--vici: set '${set}' holds SPIs, not addresses`);
}
