/**
 * What the control socket does, apart from the socket: dispatch a parsed
 * request to the set operations of a Classifier or an Attachment (anything
 * with SetOperations), keep the SAs updown reports per peer, and keep the
 * state file in step. Synchronous, so requests apply in arrival order.
 */
import { SetOperations, SetError } from '../sets';
import { parseHost } from '../policy/values';
import { formatAddress } from '../decode/address';
import { Request, Response, ControlError, ErrorCode, okResponse, errorResponse, parseRequest } from './protocol';
import { StateFile, StateMember, writeState, emptyState, STATE_VERSION } from './state';

export interface ReloadOutcome { ok: boolean; message: string }

/** What the service drives: set operations, and (for `run`) statistics and reload. */
export interface ControlTarget {
  sets: SetOperations;
  /** JSON-able counters (run's --json stats view). */
  stats?: () => unknown;
  /** Re-read the policy (the same function SIGHUP calls). */
  reload?: () => ReloadOutcome;
}

export interface ServiceOptions {
  /** Keep live members and peers here (written after every change). */
  stateFile?: string;
  /** Notes for the log (state write failures...). */
  log?: (message: string) => void;
}

export class ControlService {
  /** set -> peer -> SA keys up. */
  private readonly peers = new Map<string, Map<string, Set<string>>>();

  constructor(private readonly target: ControlTarget, private readonly options: ServiceOptions = {}) {}

  /** One request line in, one response line out (without newlines). */
  handleLine(line: string): string {
    const req = parseRequest(line);
    return JSON.stringify(req instanceof ControlError ? errorResponse(req) : this.handle(req));
  }

  handle(req: Request): Response {
    try {
      this.target.sets.expireSets();
      return this.dispatch(req);
    } catch (e) {
      const code: ErrorCode = e instanceof SetError ? e.reason : e instanceof ControlError ? e.code : 'bad-value';
      return errorResponse(new ControlError(code, (e as Error).message, req.id));
    }
  }

  private dispatch(req: Request): Response {
    const sets = this.target.sets;
    switch (req.cmd) {
      case 'ping': return okResponse(req.id, { pong: true });
      case 'set.add': {
        for (const v of req.values) sets.testSet(req.set, v);  // every value checked before any applies
        let added = 0;
        for (const v of req.values) added += Number(sets.addToSet(req.set, v, { timeout: req.timeout }));
        this.changed();
        return okResponse(req.id, { added, refreshed: req.values.length - added });
      }
      case 'set.del': {
        for (const v of req.values) sets.testSet(req.set, v);
        let deleted = 0;
        for (const v of req.values) deleted += Number(sets.deleteFromSet(req.set, v, { origin: req.origin }));
        if (req.origin !== 'file') this.forgetPeers(req.set, req.values.map(String));
        this.changed();
        return okResponse(req.id, { deleted });
      }
      case 'set.flush': {
        const flushed = sets.flushSet(req.set, req.origin);
        if (req.origin !== 'file') this.peers.delete(req.set);
        this.changed();
        return okResponse(req.id, { flushed });
      }
      case 'set.test': return okResponse(req.id, { matched: sets.testSet(req.set, req.value) });
      case 'set.list': return okResponse(req.id, { sets: this.list(req.set) });
      case 'stats':
        if (!this.target.stats) throw new ControlError('unavailable', 'this server keeps no counters');
        return okResponse(req.id, { stats: this.target.stats() });
      case 'reload': {
        if (!this.target.reload) throw new ControlError('unavailable', 'this server has no policy file to reload');
        const r = this.target.reload();
        if (!r.ok) throw new ControlError('reload-failed', r.message);
        this.changed();
        return okResponse(req.id, { message: r.message });
      }
      case 'peer.up': case 'peer.down': return okResponse(req.id, this.peer(req.cmd === 'peer.up', req.set, req.peer, req.sa));
    }
  }

  private list(only: string | null): unknown[] {
    const all = this.target.sets.setSizes();
    if (only !== null && !all.some((s) => s.name === only)) throw new SetError('unknown-set', `no set named '${only}' in the running policy`);
    return all.filter((s) => only === null || s.name === only).map((s) => ({ ...s, members: this.target.sets.listSet(s.name) }));
  }

  /**
   * An SA to a peer came up or went down (updown). The peer is a live member
   * while at least one of its SAs is up: two SAs to one peer need two downs.
   */
// Over 60 lines: one updown event, SA bookkeeping then the set change then the reply, in the order they must happen.
  peer(up: boolean, set: string, peerText: string, sa: string): { changed: boolean; sas: number } {
    let peer: string;
    try {
      peer = formatAddress(parseHost(peerText).bytes);
    } catch (e) {
      throw new SetError('bad-value', `peer: ${(e as Error).message}`);
    }
    this.target.sets.testSet(set, peer);  // unknown set, wrong kind: refused before anything changes
    const bySet = this.peers.get(set) ?? new Map<string, Set<string>>();
    this.peers.set(set, bySet);
    const sas = bySet.get(peer) ?? new Set<string>();
    let changed: boolean;
    if (up) {
      sas.add(sa);
      bySet.set(peer, sas);
      changed = this.target.sets.addToSet(set, peer, { timeout: 0 });
    } else {
      sas.delete(sa);
      if (sas.size === 0) bySet.delete(peer);
      changed = sas.size === 0 && this.target.sets.deleteFromSet(set, peer, { origin: 'live' });
    }
    this.changed();
    return { changed, sas: sas.size };
  }

  private forgetPeers(set: string, values: string[]): void {
    const bySet = this.peers.get(set);
    if (!bySet) return;
    for (const v of values) {
      try { bySet.delete(formatAddress(parseHost(v).bytes)); } catch { /* a prefix or SPI: no peer */ }
    }
  }

  /** Live members (absolute expiry) and peers, as the state file keeps them. */
  snapshot(now = Date.now()): StateFile {
    const state = emptyState();
    for (const s of this.target.sets.setSizes()) {
      const live: StateMember[] = this.target.sets.listSet(s.name)
        .filter((m) => m.origins.includes('live'))
        .map((m) => ({ value: m.value, expires: m.timeout === null ? null : now + m.timeout * 1000 }));
      if (live.length > 0) state.sets[s.name] = live;
    }
    for (const [set, bySet] of this.peers) {
      if (bySet.size === 0) continue;
      state.peers[set] = {};
      for (const [peer, sas] of bySet) state.peers[set][peer] = [...sas];
    }
    return state;
  }

  /** Apply a state file read at start; returns warnings (skipped members), never throws on content. */
  restore(state: StateFile, now = Date.now()): string[] {
    const warnings: string[] = [];
    const kinds = new Map(this.target.sets.setSizes().map((s) => [s.name, s.kind]));
    for (const [set, members] of Object.entries(state.sets)) {
      if (!kinds.has(set)) {
        warnings.push(`state: set '${set}' is not in the policy; its ${members.length} live member(s) skipped`);
        continue;
      }
      for (const m of members) {
        if (m.expires !== null && m.expires <= now) continue;  // ran out while we were down
        try {
          this.target.sets.addToSet(set, m.value, { timeout: m.expires === null ? 0 : Math.max(1, Math.ceil((m.expires - now) / 1000)) });
        } catch (e) {
          warnings.push(`state: set '${set}': '${m.value}' skipped: ${(e as Error).message}`);
        }
      }
    }
    for (const [set, byPeer] of Object.entries(state.peers)) {
      if (!kinds.has(set)) continue;
      const bySet = new Map<string, Set<string>>();
      for (const [peer, sas] of Object.entries(byPeer)) if (sas.length > 0) bySet.set(peer, new Set(sas));
      this.peers.set(set, bySet);
    }
    return warnings;
  }

  /** Write the state file (when there is one) after a change. */
  changed(): void {
    const file = this.options.stateFile;
    if (!file) return;
    try {
      writeState(file, this.snapshot());
    } catch (e) {
      this.options.log?.(`cannot write the state file ${file}: ${(e as Error).message}`);
    }
  }
}

export { STATE_VERSION };
