/**
 * The state file of `nfsieve run --state FILE`: the live set members (with
 * absolute expiry times) and the SAs updown reported per peer, so that they
 * survive a restart. Written atomically (temporary file, fsync, rename, fsync
 * of the directory) after every change; read at start. `nfsieve updown
 * --state FILE` records a change here when no `run` listens.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const STATE_VERSION = 1;

export interface StateMember {
  value: string;
  /** Wall-clock expiry (ms since the epoch); null: never. */
  expires: number | null;
}

export interface StateFile {
  version: typeof STATE_VERSION;
  /** Live members per set. */
  sets: Record<string, StateMember[]>;
  /** SAs up per set and peer (updown's peer.up / peer.down). */
  peers: Record<string, Record<string, string[]>>;
}

/** A state file that cannot be used; the message names the file and the fault. */
export class StateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateError';
  }
}

export function emptyState(): StateFile { return { version: STATE_VERSION, sets: {}, peers: {} }; }

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Check the shape of parsed JSON; throws StateError naming the first fault. */
export function validateState(raw: unknown, file: string): StateFile {
  const bad = (what: string): never => { throw new StateError(`state file ${file}: ${what}`); };
  if (!isObject(raw)) bad('not a JSON object');
  const o = raw as Record<string, unknown>;
  if (o.version !== STATE_VERSION) bad(`unknown version ${JSON.stringify(o.version)} (this nfsieve writes ${STATE_VERSION})`);
  if (!isObject(o.sets)) bad("'sets' must be an object");
  const peers = o.peers ?? {};
  if (!isObject(peers)) bad("'peers' must be an object");
  for (const [name, members] of Object.entries(o.sets as Record<string, unknown>)) {
    if (!Array.isArray(members)) bad(`set '${name}': members must be an array`);
    for (const m of members as unknown[]) {
      if (!isObject(m) || typeof m.value !== 'string' || !(m.expires === null || Number.isFinite(m.expires))) {
        bad(`set '${name}': each member must be {value: string, expires: number|null}`);
      }
    }
  }
  for (const [name, byPeer] of Object.entries(peers as Record<string, unknown>)) {
    if (!isObject(byPeer)) bad(`peers of '${name}' must be an object`);
    for (const sas of Object.values(byPeer as Record<string, unknown>)) {
      if (!Array.isArray(sas) || !sas.every((s) => typeof s === 'string')) bad(`peers of '${name}': SAs must be arrays of strings`);
    }
  }
  return { version: STATE_VERSION, sets: o.sets as StateFile['sets'], peers: peers as StateFile['peers'] };
}

/** Read a state file: null when it does not exist; StateError when it is unreadable or corrupt. */
export function readState(file: string): StateFile | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateError(`state file ${file}: cannot read: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new StateError(`state file ${file}: not valid JSON (${(e as Error).message})`);
  }
  return validateState(raw, file);
}

/** Write atomically: readers see the old file or the new one, never a part. */
export function writeState(file: string, state: StateFile): void {
  const dir = path.dirname(path.resolve(file));
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, JSON.stringify(state, null, 1) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  try {
    const dfd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
  } catch { /* some filesystems refuse fsync on a directory: the rename is done */ }
}

/** Apply a peer.up / peer.down to a state (updown without a daemon); returns whether the set changed. */
export function recordPeer(state: StateFile, up: boolean, set: string, peer: string, sa: string): boolean {
  const byPeer = (state.peers[set] ??= {});
  const sas = new Set(byPeer[peer] ?? []);
  const members = (state.sets[set] ??= []);
  const present = members.findIndex((m) => m.value === peer);
  if (up) {
    sas.add(sa);
    byPeer[peer] = [...sas];
    if (present >= 0) {
      members[present].expires = null;
      return false;
    }
    members.push({ value: peer, expires: null });
    return true;
  }
  sas.delete(sa);
  if (sas.size > 0) {
    byPeer[peer] = [...sas];
    return false;
  }
  delete byPeer[peer];
  if (present < 0) return false;
  members.splice(present, 1);
  return true;
}
