/**
 * Live named sets: the operations the library (Classifier), an attachment
 * (attach()) and the control socket share, written once over the native
 * handle's set methods (native/set_glue.h). Members have origins: `file` (the
 * policy says so; a reload replaces exactly these) and `live` (added at run
 * time, optionally with a timeout in seconds as ipset's; survives reloads).
 */
import { NativeSetMethods } from './native';
import { Policy } from './policy/model';
import { parsePrefix, parseRange, ValueError } from './policy/values';
import { formatAddress } from './decode/address';
import { SetOrigin } from './wire';

export type Origin = 'file' | 'live';
/** Which origins an operation touches. */
export type OriginSelector = Origin | 'all';

/** Origin bits of the native side (native/core/sets.h kOriginFile, kOriginLive). */
export const ORIGIN_BITS: Record<OriginSelector, number> = { file: SetOrigin.File, live: SetOrigin.Live, all: SetOrigin.All };

/** Largest timeout in seconds (ipset's limit: 2^31 - 1 / 1000 ... kept to a 32-bit count of seconds). */
export const MAX_TIMEOUT_S = 2147483;

export type SetErrorCode = 'unknown-set' | 'bad-value' | 'bad-timeout';

/** A refused set operation (code EVALUE); `reason` says why (the control protocol sends it as its error code). */
export class SetError extends ValueError {
  constructor(readonly reason: SetErrorCode, message: string) {
    super(message);
    this.name = 'SetError';
  }
}

export interface SetMember {
  /** Address, prefix (a.b.c.d/n), SPI or SPI range (lo-hi), as the policy would write it. */
  value: string;
  origins: Origin[];
  /** Seconds left before the live origin expires; null when it never does (or file only). */
  timeout: number | null;
}

export interface SetSizes { name: string; kind: 'address' | 'spi'; size: number; file: number; live: number }

export interface AddOptions {
  /** Seconds until the live member expires; 0 or absent: never (re-adding sets it anew). */
  timeout?: number;
}
export interface DeleteOptions {
  /** Origins removed: 'live' (updown, vici), 'file', or 'all' (the default: the member stops matching at once). */
  origin?: OriginSelector;
}

type Element = { family: 4 | 6; bytes: Uint8Array; length: number } | { lo: number; hi: number };

/** The set operations over one native handle; `policy()` names the sets in force. */
export class LiveSets {
  constructor(private readonly handle: NativeSetMethods, private readonly policy: () => Policy) {}

  /** Add VALUE as a live member; true when it was not live before. */
  add(name: string, value: string | number, options: AddOptions = {}): boolean {
    const timeout = options.timeout ?? 0;
    if (!Number.isInteger(timeout) || timeout < 0 || timeout > MAX_TIMEOUT_S) {
      throw new SetError('bad-timeout', `timeout must be a whole number of seconds from 0 to ${MAX_TIMEOUT_S}, got ${timeout}`);
    }
    return this.handle.setAdd(name, this.element(name, value), timeout * 1000);
  }

  /** Remove origins of VALUE (all by default); true when it had one of them. */
  delete(name: string, value: string | number, options: DeleteOptions = {}): boolean {
    return this.handle.setRemove(name, this.element(name, value), originBits(options.origin ?? 'all'));
  }

  /** Remove these origins from every member; returns how many members lost one. */
  flush(name: string, origin: OriginSelector = 'live'): number {
    this.kind(name);
    return this.handle.setFlush(name, originBits(origin));
  }

  /** Whether VALUE is matched: a member, or inside a member prefix (an SPI range inside a member range). */
  test(name: string, value: string | number): boolean {
    return this.handle.setTest(name, this.element(name, value));
  }

  /** Members (unexpired) with their origins and remaining timeouts. */
  list(name: string): SetMember[] {
    this.kind(name);
    return this.handle.setList(name).map((m) => ({
      value: 'family' in m ? formatPrefix(m.family, m.bytes, m.length) : m.lo === m.hi ? String(m.lo) : `${m.lo}-${m.hi}`,
      origins: (['file', 'live'] as Origin[]).filter((o) => m.origins & ORIGIN_BITS[o]),
      timeout: m.remainingMs > 0 ? Math.ceil(m.remainingMs / 1000) : null,
    }));
  }

  /** Every set with its size by origin. */
  sizes(): SetSizes[] { return this.handle.setInfo(); }

  /** Reap expired live members (they stopped matching already); returns how many went. */
  expire(): number { return this.handle.setExpire(); }

  /** The kind of a set of the policy in force; throws SetError('unknown-set'). */
  kind(name: string): 'address' | 'spi' {
    const set = this.policy().sets.get(name);
    if (!set) throw new SetError('unknown-set', `no set named '${name}' in the running policy`);
    return set.kind;
  }

  private element(name: string, value: string | number): Element {
    const kind = this.kind(name);
    try {
      if (kind === 'address') {
        if (typeof value !== 'string') throw new ValueError(`set '${name}' holds addresses, got ${JSON.stringify(value)}`);
        return parsePrefix(value);
      }
      return parseRange(value, 0xffffffff, 'spi');
    } catch (e) {
      if (e instanceof SetError) throw e;
      throw new SetError('bad-value', (e as Error).message);
    }
  }
}

function originBits(o: OriginSelector): number {
  const bits = ORIGIN_BITS[o];
  if (!bits) throw new SetError('bad-value', `origin must be live, file or all, got '${o}'`);
  return bits;
}

function formatPrefix(family: 4 | 6, bytes: Uint8Array, length: number): string {
  const text = formatAddress(bytes);
  return length === (family === 4 ? 32 : 128) ? text : `${text}/${length}`;
}

/** The set operations both a Classifier and an Attachment offer (and the control socket drives). */
export interface SetOperations {
  readonly policy: Policy;
  /** Add a live member (optionally timing out); true when it was not live before. */
  addToSet(name: string, value: string | number, options?: AddOptions): boolean;
  /** Remove a member's origins (default all: it stops matching at once); true when it had one. */
  deleteFromSet(name: string, value: string | number, options?: DeleteOptions): boolean;
  /** Remove these origins (default live) from every member; returns how many lost one. */
  flushSet(name: string, origin?: OriginSelector): number;
  /** Whether VALUE is matched by the set (a member, or inside a member prefix). */
  testSet(name: string, value: string | number): boolean;
  listSet(name: string): SetMember[];
  setSizes(): SetSizes[];
  /** Reap expired live members (they no longer match already). */
  expireSets(): number;
}
