/**
 * Which IKE SAs are up, to which remote host: the bookkeeping behind
 * `nfsieve run --vici`. A host is learnt when its first IKE SA comes up and
 * forgotten when its last one goes. Pure: the caller applies the host changes.
 */
import { ViciSection, text, subsection } from './vici-message';

/** IKE SA states (charon's ike_sa_state names) in which the SA carries traffic. */
export const IKE_UP_STATES = new Set(['ESTABLISHED', 'REKEYING']);

export interface HostChanges { added: string[]; removed: string[] }

export class IkeSaTracker {
  /** IKE SA unique id → remote host. */
  private readonly sas = new Map<string, string>();

  /** An IKE SA is up (again, perhaps to another host). */
  up(id: string, host: string): HostChanges { return this.move(id, id, host); }

  /** An IKE SA went down: its host is removed when no other SA to it remains. */
  down(id: string): HostChanges {
    const host = this.sas.get(id);
    this.sas.delete(id);
    return { added: [], removed: host !== undefined && !this.hasHost(host) ? [host] : [] };
  }

  /** An SA changed its id (an IKE rekey: old → new) or its host. */
  move(oldId: string, newId: string, host: string): HostChanges {
    const oldHost = this.sas.get(oldId);
    this.sas.delete(oldId);
    const had = oldHost === host || this.hasHost(host);
    this.sas.set(newId, host);
    const removed = oldHost !== undefined && oldHost !== host && !this.hasHost(oldHost) ? [oldHost] : [];
    return { added: had ? [] : [host], removed };
  }

  /** Replace everything (after a resynchronisation); the hosts that appeared and vanished. */
  replaceAll(next: Map<string, string>): HostChanges {
    const before = new Set(this.sas.values());
    this.sas.clear();
    for (const [id, host] of next) this.sas.set(id, host);
    const after = new Set(this.sas.values());
    return { added: [...after].filter((h) => !before.has(h)), removed: [...before].filter((h) => !after.has(h)) };
  }

  hosts(): string[] { return [...new Set(this.sas.values())]; }
  get size(): number { return this.sas.size; }
  snapshot(): Map<string, string> { return new Map(this.sas); }

  private hasHost(host: string): boolean {
    for (const h of this.sas.values()) if (h === host) return true;
    return false;
  }
}

/** One IKE SA as charon describes it in list-sa, ike-updown and child-updown. */
export interface IkeSaInfo { name: string; id: string; host: string; state: string }

/** The IKE SA sections of an event or list-sa message (every sub-section of the root). */
export function ikeSas(message: ViciSection): IkeSaInfo[] {
  const out: IkeSaInfo[] = [];
  for (const [name, value] of message) {
    if (!(value instanceof Map)) continue;
    const info = ikeSa(name, value);
    if (info) out.push(info);
  }
  return out;
}

function ikeSa(name: string, s: ViciSection): IkeSaInfo | null {
  const id = text(s, 'uniqueid'), host = text(s, 'remote-host'), state = text(s, 'state');
  return id !== undefined && host !== undefined && state !== undefined ? { name, id, host, state } : null;
}

/** ike-rekey: `<name> { old { ... } new { ... } }`. */
export function rekeys(message: ViciSection): { old: IkeSaInfo; new: IkeSaInfo }[] {
  const out: { old: IkeSaInfo; new: IkeSaInfo }[] = [];
  for (const [name, value] of message) {
    if (!(value instanceof Map)) continue;
    const o = subsection(value, 'old'), n = subsection(value, 'new');
    const oi = o && ikeSa(name, o), ni = n && ikeSa(name, n);
    if (oi && ni) out.push({ old: oi, new: ni });
  }
  return out;
}
