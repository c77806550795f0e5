/**
 * `nfsieve run --offload`: keep the ipsets `nfsieve hook --offload` created
 * (NAME and NAME-v6, src/hook/offload.ts) in step with the live sets, as a
 * wrapper around the set operations the control socket and vici drive.
 *
 * The invariant: an ipset only ever holds a subset of what nfsieve's set
 * matches, because the kernel accepts (or drops) whatever the ipset holds
 * without asking. A member missing from the ipset is only queued, and nfsieve
 * decides it as the policy says. So:
 *
 * - add: nfsieve's set first, then `add NAME ENTRY` to the ipset. Adds wait in
 *   a batch flushed on the next turn of the event loop (one `ipset restore`
 *   per control request, not one per value); a timed member gets an ipset
 *   `timeout` at least one second shorter than what nfsieve has left, so the
 *   kernel forgets it first (the sets are created with `timeout 0`: per-entry
 *   timeouts, 0 meaning none); a member with less than 2 s left stays out.
 * - delete and flush: the pending adds and the ipset's `del`/`flush` run
 *   first, synchronously, then nfsieve's set changes; what nfsieve still
 *   matches afterwards (a file member that lost only its live origin) is
 *   added back. An ipset command that fails makes the ipset flushed (the safe
 *   direction) and is reported, never thrown.
 * - expiry: the ipset's own timeouts (shorter than nfsieve's) remove members
 *   before nfsieve does; the run's sweep has nothing to do here.
 * - reload and start: each offloaded ipset is replaced whole with `swap`
 *   from a freshly filled temporary set, atomically. Before a reload, with
 *   the members both policies match (the ones the new file drops go first);
 *   after it, with everything the new sets match.
 */
import { execFileSync } from 'node:child_process';
import { formatAddress } from '../decode/address';
import { NfsieveError } from '../errors';
import { Policy } from '../policy/model';
import { parsePrefix } from '../policy/values';
import { AddOptions, DeleteOptions, OriginSelector, SetMember, SetOperations, SetSizes } from '../sets';
import { ipsetName, offloadable, offloadSets } from './offload';

/** Seconds an ipset entry's timeout is kept below what nfsieve has left (covers the time to run ipset). */
export const TIMEOUT_MARGIN_S = 1;
/** Suffix of the temporary set filled before a swap (ipset names hold at most 31 characters). */
const TMP_SUFFIX = '.t';
const IPSET_NAME_MAX = 31;

/** Runs a batch of `ipset restore` lines (throws on failure); replaceable in tests. */
export type IpsetRunner = (lines: string[]) => void;

export const ipsetRestore: IpsetRunner = (lines) => {
  if (lines.length === 0) return;
  execFileSync('ipset', ['restore', '-exist'], { input: `${lines.join('\n')}\n`, stdio: ['pipe', 'ignore', 'pipe'] });
};

/** `run --offload` cannot start: an ipset the offloaded rules use is missing. */
export class OffloadError extends NfsieveError {
  constructor(message: string) { super('EUSAGE', `run --offload: ${message}`); this.name = 'OffloadError'; }
}

interface Target { v4: string; v6: string }
interface Pending { set: string; entry: string; deadline: number | null }

/** The ipsets of a policy's offloaded rules, by nfsieve set name. */
export function offloadTargets(policy: Policy): Map<string, Target> {
  const out = new Map<string, Target>();
  for (const s of offloadSets(policy, offloadable(policy).rules)) {
    const set = s.family === 4 ? s.name : s.name.slice(0, -'-v6'.length);
    out.set(set, { v4: ipsetName(set, 4), v6: ipsetName(set, 6) });
  }
  return out;
}

/** Normalised ipset entry for a set value, with its family; null for what hash:net cannot hold (/0). */
function entryOf(value: string | number): { entry: string; family: 4 | 6 } | null {
  const p = parsePrefix(String(value));
  if (p.length === 0) return null;
  return { entry: `${formatAddress(p.bytes)}/${p.length}`, family: p.family };
}

export interface IpsetSyncOptions {
  run?: IpsetRunner;
  log?: (message: string) => void;
  /** Monotonic milliseconds (tests). */
  now?: () => number;
}

/** SetOperations over an inner one (an Attachment), mirrored into the offloaded ipsets. */
export class IpsetSync implements SetOperations {
  private targets: Map<string, Target>;
  private pending: Pending[] = [];
  private scheduled = false;
  private readonly run: IpsetRunner;
  private readonly log: (m: string) => void;
  private readonly now: () => number;
  /** ipsets created without `timeout`: timed members stay out of them. */
  private readonly untimed = new Set<string>();

  constructor(private readonly inner: SetOperations, options: IpsetSyncOptions = {}) {
    this.run = options.run ?? ipsetRestore;
    this.log = options.log ?? (() => undefined);
    this.now = options.now ?? (() => performance.now());
    this.targets = offloadTargets(inner.policy);
  }

  get policy(): Policy { return this.inner.policy; }
  /** The ipsets kept (for messages and tests). */
  get ipsets(): string[] { return [...this.targets.values()].flatMap((t) => [t.v4, t.v6]); }

  /** Check that the ipsets exist (hook --offload made them), learn which take timeouts, fill them. */
  start(list: (name: string) => string | null = listHeader): void {
    for (const name of this.ipsets) {
      const header = list(name);
      if (header === null) throw new OffloadError(`no ipset named ${name}: install the hook first (\`nfsieve hook POLICY --queue N --offload | sh\`); the ipsets are kept for iptables hooks only, not --nft ones`);
      if (!/\btimeout\b/.test(header)) { this.untimed.add(name); this.log(`ipset ${name} was created without timeout: members added with a timeout stay queued (re-create it with \`nfsieve hook --offload\`)`); }
    }
    this.resync();
  }

  addToSet(name: string, value: string | number, options?: AddOptions): boolean {
    const added = this.inner.addToSet(name, value, options);
    const t = this.targets.get(name);
    if (t) {
      const timeout = options?.timeout ?? 0;
      // A timed live member that is also a file member matches for good: permanent in the ipset too.
      const permanent = timeout === 0 || (this.inFile(name, value) && this.memberAfter(name, value)?.timeout === null);
      this.queueAdd(name, value, permanent ? null : timeout);
    }
    return added;
  }

  deleteFromSet(name: string, value: string | number, options?: DeleteOptions): boolean {
    if (!this.targets.has(name)) return this.inner.deleteFromSet(name, value, options);
    const e = safeEntry(value);
    if (e) this.apply([`del ${this.ipsetOf(name, e.family)} ${e.entry}`], [name]);
    const deleted = this.inner.deleteFromSet(name, value, options);
    if (e && (options?.origin ?? 'all') !== 'all') {
      const m = this.memberAfter(name, value);
      if (m) this.queueAdd(name, value, upperBound(m.timeout));
    }
    return deleted;
  }

  flushSet(name: string, origin?: OriginSelector): number {
    const t = this.targets.get(name);
    if (!t) return this.inner.flushSet(name, origin);
    this.apply([`flush ${t.v4}`, `flush ${t.v6}`], [name]);
    const n = this.inner.flushSet(name, origin);
    for (const m of this.inner.listSet(name)) this.queueAdd(name, m.value, m.origins.includes('file') ? null : upperBound(m.timeout));
    return n;
  }

  testSet(name: string, value: string | number): boolean { return this.inner.testSet(name, value); }
  listSet(name: string): SetMember[] { return this.inner.listSet(name); }
  setSizes(): SetSizes[] { return this.inner.setSizes(); }
  /** nfsieve's own sweep; the ipset's shorter timeouts have removed these members already. */
  expireSets(): number { return this.inner.expireSets(); }

  /** Before a reload to NEXT: keep in each ipset only what both the running and the next policy match. */
  beforeReload(next: Policy): void {
    this.drain();
    const lines: string[] = [];
    for (const [name, t] of this.targets) {
      const set = next.sets.get(name);
      const file = new Set((set?.kind === 'address' ? set.addresses : []).map((p) => `${formatAddress(p.bytes)}/${p.length}`));
      const keep = this.inner.listSet(name).filter((m) => (m.origins.includes('live') && set?.kind === 'address') || file.has(safeEntry(m.value)?.entry ?? ''));
      lines.push(...this.swapLines(t, keep.map((m) => ({ value: m.value, timeout: m.origins.includes('file') && file.has(safeEntry(m.value)?.entry ?? '') ? null : m.timeout }))));
    }
    this.apply(lines, [...this.targets.keys()]);
  }

  /** After a reload (or a refused one): the ipsets of the policy now in force, filled whole. */
  afterReload(): void {
    const before = this.targets;
    this.targets = offloadTargets(this.inner.policy);
    // ipsets the old kernel rules still name but the new policy does not offload: emptied (re-run hook).
    const gone = [...before].filter(([n]) => !this.targets.has(n)).flatMap(([, t]) => [`flush ${t.v4}`, `flush ${t.v6}`]);
    const created = [...this.targets].filter(([n]) => !before.has(n)).flatMap(([, t]) => [t.v4, t.v6]);
    this.apply([...gone, ...created.map((s) => `create ${s} hash:net family ${s.endsWith('-v6') ? 'inet6' : 'inet'} timeout 0`)], []);
    this.resync();
  }

  /** A reload around FN (which swaps the policy in or throws): the ipsets stay a subset throughout. */
  reload(next: Policy, fn: () => void): void {
    this.beforeReload(next);
    try { fn(); } finally { this.afterReload(); }
  }

  /** Replace every offloaded ipset with exactly what nfsieve's set matches now (swap: atomic per ipset). */
  resync(): void {
    this.pending = [];
    const lines: string[] = [];
    for (const [name, t] of this.targets) {
      lines.push(...this.swapLines(t, this.inner.listSet(name).map((m) => ({ value: m.value, timeout: m.origins.includes('file') ? null : m.timeout }))));
    }
    this.apply(lines, [...this.targets.keys()]);
  }

  /** Run the pending adds now (tests, and before anything that must follow them). */
  drain(): void {
    const batch = this.pending;
    this.pending = [];
    const now = this.now();
    const lines: string[] = [];
    for (const p of batch) {
      const line = this.addLine(p.set, p.entry, p.deadline === null ? null : (p.deadline - now) / 1000);
      if (line) lines.push(line);
    }
    this.apply(lines, [...this.targets.keys()]);
  }

  private swapLines(t: Target, members: { value: string; timeout: number | null }[]): string[] {
    const lines: string[] = [];
    for (const ipset of [t.v4, t.v6]) {
      const tmp = `${ipset.slice(0, IPSET_NAME_MAX - TMP_SUFFIX.length)}${TMP_SUFFIX}`;
      const family = ipset === t.v4 ? 4 : 6;
      lines.push(`create ${tmp} hash:net family ${family === 4 ? 'inet' : 'inet6'}${this.untimed.has(ipset) ? '' : ' timeout 0'}`, `flush ${tmp}`);
      for (const m of members) {
        const e = safeEntry(m.value);
        const line = e && e.family === family ? this.addLine(ipset, e.entry, upperBound(m.timeout), tmp) : null;
        if (line) lines.push(line);
      }
      lines.push(`swap ${tmp} ${ipset}`, `destroy ${tmp}`);
    }
    return lines;
  }

  /**
   * The restore line adding ENTRY with LEFT seconds of nfsieve's timeout
   * remaining (null: none). Too little left (or an ipset without timeouts):
   * the entry must not be there, so `del` (or nothing, for a fresh set).
   */
  private addLine(ipset: string, entry: string, left: number | null, into = ipset): string | null {
    if (left === null) return `add ${into} ${entry}`;
    const t = Math.floor(left) - TIMEOUT_MARGIN_S;
    if (t < 1 || this.untimed.has(ipset)) return into === ipset ? `del ${ipset} ${entry}` : null;
    return `add ${into} ${entry} timeout ${t}`;
  }

  private queueAdd(name: string, value: string | number, timeoutS: number | null): void {
    const e = safeEntry(value);
    if (!e) return;
    if (timeoutS !== null && this.addLine(this.ipsetOf(name, e.family), e.entry, timeoutS)?.startsWith('del ')) {
      // Too short (or no timeouts in this ipset): out of the ipset now, whatever it held before.
      this.apply([`del ${this.ipsetOf(name, e.family)} ${e.entry}`], [name]);
      return;
    }
    this.pending.push({ set: this.ipsetOf(name, e.family), entry: e.entry, deadline: timeoutS === null ? null : this.now() + timeoutS * 1000 });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => { this.scheduled = false; this.drain(); });
    }
  }

  /** Pending adds first (a delete must follow them), then LINES; on failure the named sets' ipsets are flushed. */
  private apply(lines: string[], sets: string[]): void {
    const all = [...this.pending.splice(0).map((p) => this.addLine(p.set, p.entry, p.deadline === null ? null : (p.deadline - this.now()) / 1000)).filter((l): l is string => l !== null), ...lines];
    if (all.length === 0) return;
    try {
      this.run(all);
    } catch (e) {
      this.log(`error: ipset restore failed (${firstLine(e)}); flushing ${sets.length ? sets.join(', ') : 'nothing'} so the kernel decides no member nfsieve may not hold`);
      const flush = sets.flatMap((s) => { const t = this.targets.get(s); return t ? [`flush ${t.v4}`, `flush ${t.v6}`] : []; });
      try { this.run(flush); } catch (e2) { this.log(`error: ipset flush failed too (${firstLine(e2)}): the kernel may accept members nfsieve no longer holds`); }
    }
  }

  /** The member exactly VALUE after a change, when nfsieve still matches it (null: gone). */
  private memberAfter(name: string, value: string | number): { timeout: number | null } | null {
    const e = safeEntry(value);
    if (!e) return null;
    const m = this.inner.listSet(name).find((x) => safeEntry(x.value)?.entry === e.entry);
    if (!m) return null;
    return { timeout: m.origins.includes('file') ? null : m.timeout };
  }

  private ipsetOf(name: string, family: 4 | 6): string {
    const t = this.targets.get(name)!;
    return family === 4 ? t.v4 : t.v6;
  }

  private inFile(name: string, value: string | number): boolean {
    const e = safeEntry(value);
    const set = this.inner.policy.sets.get(name);
    return !!e && !!set && set.addresses.some((p) => `${formatAddress(p.bytes)}/${p.length}` === e.entry);
  }
}

/** listSet's timeout is whole seconds rounded up: one less is at most what is left. */
const upperBound = (t: number | null): number | null => (t === null ? null : t - 1);

function safeEntry(value: string | number): { entry: string; family: 4 | 6 } | null {
  try { return entryOf(value); } catch { return null; }
}

function firstLine(e: unknown): string {
  const err = e as { stderr?: Buffer | string; message?: string };
  return String(err.stderr && String(err.stderr).trim() ? err.stderr : err.message ?? e).trim().split('\n')[0];
}

/** `ipset list -t NAME`'s header line, or null when there is no such set. */
function listHeader(name: string): string | null {
  try {
    const out = execFileSync('ipset', ['list', '-t', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split('\n').find((l) => l.startsWith('Header:')) ?? '';
  } catch {
    return null;
  }
}
