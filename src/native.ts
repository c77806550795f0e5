/**
 * The one typed boundary to the C++ addon: everything native/addon.cc exports
 * is declared here, and nothing else in src/ touches the addon directly.
 *
 * The addon is found with node-gyp-build (a prebuild in prebuilds/, or a local
 * build in build/Release). When neither fits this Node and platform, loading
 * fails with a message that lists the ways out. NFSIEVE_ADDON=/path/nfsieve.node
 * loads that build instead (the ASan/UBSan build of .ci/sanitized-suite).
 */
import * as path from 'node:path';
import * as fs from 'node:fs';

/** Size in bytes of one decoded-packet record (native/core/decode.h `Decoded`). */
export const RECORD_SIZE = 108;

/** Per-packet metadata a capture lacks and NFQUEUE supplies. */
export interface NativeMeta {
  in?: string;
  out?: string;
  /** 0 unknown, 1 invalid, 2 new, 3 established, 4 related, 5 untracked. */
  ctstate?: number;
  mark?: number;
  /** Monotonic clock in ns for rate limits; the addon reads CLOCK_MONOTONIC when absent. */
  now?: bigint;
}

/** A set element: an address prefix, or an SPI range. */
export type NativeSetElement = { family: 4 | 6; bytes: Uint8Array; length: number } | { lo: number; hi: number };
/** A member as listed: its element, origin bits (1 file, 2 live), milliseconds left (0: no timeout). */
export type NativeSetMember = NativeSetElement & { origins: number; remainingMs: number };

/**
 * Named-set operations (native/set_glue.h), the same on a Classifier and on a
 * QueueEngine; they throw on an unknown set or an element of the wrong kind.
 */
export interface NativeSetMethods {
  /** Add a live member, timing out after timeoutMs (0: never); true when it was not live before. */
  setAdd(name: string, element: NativeSetElement, timeoutMs: number): boolean;
  /** Remove origins (bits) of a member; true when it had one. */
  setRemove(name: string, element: NativeSetElement, origins: number): boolean;
  setFlush(name: string, origins: number): number;
  setTest(name: string, element: NativeSetElement): boolean;
  setList(name: string): NativeSetMember[];
  setExpire(): number;
  setInfo(): { name: string; kind: 'address' | 'spi'; size: number; file: number; live: number }[];
}

/** A loaded decision table (native/core/classify.h) with its named sets and counters. */
export interface NativeClassifier extends NativeSetMethods {
  /** Result triple: [rule + 2 (0 not IP, 1 default), verdict | markSet << 8 | queue << 16, mark]. */
  classify(linkType: number, frame: Uint8Array, meta?: NativeMeta): Uint32Array;
  classifyBatch(linkType: number, data: Uint8Array, offsets: Uint32Array, out: Uint32Array, meta?: NativeMeta): number;
  /** IPv4 5-tuples (src, dst, sport, dport, proto) -> rule index or -1, without counters. */
  classifyTuples(tuples: Uint32Array, out: Int32Array): number;
  counters(): { hits: BigUint64Array; bytes: BigUint64Array; overLimit: BigUint64Array; evictions: BigUint64Array };
  resetCounters(): void;
  /** Per limit, in table order: the rule it belongs to, buckets kept, per-source buckets evicted. */
  limitStats(): { rule: number; perSource: boolean; sources: number; evictions: number }[];
  /** Bytes of every limit's preallocated state (per-source tables included). */
  readonly limitBytes: number;
  readonly ruleCount: number;
  readonly tableBytes: number;
  /** Bytes of the lookup index derived from the table at load (native/core/index.h). */
  readonly indexBytes: number;
  /** Per address family, what answers the first candidate (docs/algorithm.md). */
  lookupInfo(): LookupInfo[];
}

/** Which lookup structure serves an address family of a loaded table. */
export interface LookupInfo {
  family: 4 | 6;
  /** The vector index, equal-cut trees over address groups, one split tree, or the vector index over the rules that can be first. */
  structure: 'vector' | 'cuts' | 'splits' | 'compact';
  /** Trees stopped by a budget (long leaves), kept because the models priced them lower. */
  cutShort: boolean;
  /** Rules left out of the trees (or the compact index) because an earlier rule covers them (never the first candidate). */
  covered: number;
  /** Equal cuts: address groups served by the vector index over their rules instead of a tree (0 or 1: the group of rules wide in both addresses). */
  groupIndexes: number;
  /** Equal cuts: address groups whose tree is a split tree instead, where the hit model prices it lower (docs/algorithm.md, "A split tree per group"). */
  splitGroups: number;
  /** Split trees: leaf-sized nodes split further because they take a large share of headers uniform over the key space (docs/algorithm.md, "Wide leaves"). */
  wideSplits: number;
  /** Equal cuts: trees of groups small in an address that a header enters only when its address block (a /16 of an IPv4 address) holds one of their rules. */
  addressFilters: number;
  /** The widest SIMD the trees' lookups use: leaf scans with AVX2, split walks with AVX-512 ('scalar' without trees or SIMD). */
  treeSimd: 'scalar' | 'avx2' | 'avx512';
  /** IPv4 only: classifyTuples reads its keys straight from the tuples (every IPv4 field is one of the 5-tuple's) instead of through packet records. */
  tupleKeys?: boolean;
}

/** Budgets of the lookup index built when a table is loaded (native/core/index.h). */
export interface IndexOptions {
  /** Pre-combine fields at all (default true). */
  combine?: boolean;
  /** Vector words the pre-combination may touch, per address family (default 2^22; 2^24 for a family of at most 4,096 rules, which the vector index serves alone). */
  work?: number;
  /** Bytes of derived vectors and maps (default: the larger of 8 MiB and twice the table). */
  memory?: number;
  /** Cut trees (docs/algorithm.md): for the families whose rule sets call for them (true, the default), never (false), or for every family ('always'). */
  cuts?: boolean | 'always';
  /** Bytes of cut trees and leaves per family before nodes stop being cut (default: the larger of 8 MiB and half the table). */
  cutsMemory?: number;
  /** Work budget of building trees per family (rules visited choosing equal cuts, rule ends sorted choosing splits; default 2^26 each). Past it the trees are cut short and, with no cutsMemory given, weighed against the vector index (docs/algorithm.md). */
  cutsWork?: number;
  /** Which trees when trees are built: chosen from the rule set ('auto', the default), equal cuts over address groups ('cuts'), or one split tree ('splits'). */
  trees?: 'auto' | 'cuts' | 'splits';
  /**
   * SIMD where the CPU has it (default true): AVX2 leaf scans and dense stages, and AVX-512 (F and BW) split-tree walks;
   * 'avx2' stops at AVX2; false is scalar throughout. NFSIEVE_SIMD=scalar or =avx2 in the environment caps it likewise.
   */
  simd?: boolean | 'avx2';
  /** Equal cuts: the group of rules wide in both addresses served by the vector index over them when its last stage names the rule (default true); false builds a tree for every group. */
  groupIndex?: boolean;
  /** Equal cuts: each group small in an address keeps a map of the address blocks its rules touch, and a header outside them skips the group's tree (default true); false walks every tree. */
  addressFilters?: boolean;
}

export interface QueueEngineOptions {
  queues: number[];
  copyRange?: number;
  maxLen?: number;
  rcvbuf?: number;
  failOpen?: boolean;
  conntrack?: boolean;
  gso?: boolean;
  /** Reject verdicts become accept with this mark; without it they are dropped. */
  rejectMark?: number;
  /** Packets per receive (1 to wire Queue.MaxBatch; default Queue.Batch). */
  batch?: number;
  /** Longest wake-up moderation sleep in microseconds (0 to Queue.CoalesceMaxUs; default Queue.CoalesceUs; 0: off). */
  coalesceUs?: number;
  statsIntervalMs?: number;
}

export interface NativeQueueStats {
  queue: number;
  received: number; accepted: number; dropped: number; rejected: number; queued: number; notIp: number; bytes: number;
  enobufs: number; verdictErrors: number; receiveErrors: number; batches: number;
  /** The kernel's view: /proc/net/netfilter/nfnetlink_queue. */
  kernel: { present: boolean; queueTotal: number; copyRange: number; queueDropped: number; userDropped: number; idSequence: number };
}

/** The NFQUEUE engine (native/nfqueue/engine.h): one native thread per queue. */
export interface NativeQueueEngine extends NativeSetMethods {
  /** Bind the queues and start; throws (nothing left bound) on failure. */
  start(table: Uint8Array, options: QueueEngineOptions, onEvent: (kind: 'error' | 'stats', message: string) => void): string[];
  reload(table: Uint8Array): void;
  stats(): {
    generation: number; running: boolean; queues: NativeQueueStats[]; hits: BigUint64Array; bytes: BigUint64Array;
    overLimit: BigUint64Array; evictions: BigUint64Array;
  };
  /** Stop, verdict what was received, unbind, join; resolves when done. */
  close(): Promise<void>;
}

/** A sweep's vectors in native memory (sweepFieldHeld). */
export type HeldVectors = { readonly __held: unique symbol };

export interface NativeAddon {
  QueueEngine: new () => NativeQueueEngine;
  /** Load and validate a table; throws Error('invalid table: ...') when it is not sound. */
  Classifier: new (table: Uint8Array, index?: IndexOptions) => NativeClassifier;
  /** Decode one frame of a pcap link type into a RECORD_SIZE-byte record. */
  decodeFrame(linkType: number, frame: Uint8Array): Buffer;
  /** Decode frames data[offsets[i]..offsets[i+1]) into out[RECORD_SIZE*i..]; returns the count. */
  decodeBatch(linkType: number, data: Uint8Array, offsets: Uint32Array, out: Uint8Array): number;
  /** Send full Ethernet frames out of an interface of this network namespace (AF_PACKET), `repeat` times; returns the count. */
  sendFrames(ifname: string, frames: Uint8Array[], repeat?: number): number;
  /**
   * The compiler's sweep of one narrow field (native/compile/sweep.h): interval i
   * (keys lo[i]..hi[i]) belongs to rule[i]; `always` rules accept every key.
   * Same result as the TypeScript sweep in src/compile/build.ts.
   */
  sweepField(lo: Float64Array, hi: Float64Array, rule: Uint32Array, always: Uint32Array, rules: number, top: number): {
    boundaries: Float64Array; classes: Uint32Array; vectors: Uint32Array; vectorCount: number; density: number;
  };
  /**
   * sweepField() with the vectors kept in native memory (no JavaScript
   * allocation of the table's bulk) until writeHeldVectors() copies them,
   * with their summaries, into the table being written; what the compiler uses.
   */
  sweepFieldHeld(lo: Float64Array, hi: Float64Array, rule: Uint32Array, always: Uint32Array, rules: number, top: number): {
    boundaries: Float64Array; classes: Uint32Array; held: HeldVectors; vectorCount: number; density: number;
  };
  /** CRC-32 (IEEE, as zlib) as the table loader computes it: carry-less multiplication where the CPU has it. */
  crc32(bytes: Uint8Array): number;
  /** The held vectors at vectorsOff of `table` and their summaries at summariesOff, then frees them (once per sweep). */
  writeHeldVectors(held: HeldVectors, table: Uint8Array, vectorsOff: number, summariesOff: number): void;
  /** Malformed-reason names indexed by code; index 0 (no problem) is null. */
  malformedNames(): (string | null)[];
  readonly recordSize: number;
}

function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'binding.gyp'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('nfsieve: cannot find the package root (binding.gyp) above ' + __dirname);
    dir = parent;
  }
}

let cached: NativeAddon | undefined;

/** Load (once) and return the addon. */
export function native(): NativeAddon {
  if (cached) return cached;
  const root = packageRoot();
  let addon: NativeAddon;
  try {
    const override = process.env.NFSIEVE_ADDON;
    if (override) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      addon = require(path.resolve(override)) as NativeAddon;
    } else {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const load = require('node-gyp-build') as (dir: string) => unknown;
      addon = load(root) as NativeAddon;
    }
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      [
        `nfsieve: could not load the native addon for Node ${process.version} on ${process.platform}-${process.arch}.`,
        `  ${reason}`,
        'Possible fixes:',
        '  - build it from source: `npm rebuild nfsieve` (needs python3, make and a C++17 compiler: `apt-get install -y python3 make g++`)',
        '  - in a clone of the repository: `npm install` or `npm run build:native`',
        '  - check that the Node version you run is the one you installed with (`node --version`)',
      ].join('\n'),
    );
  }
  if (addon.recordSize !== RECORD_SIZE) {
    throw new Error(`nfsieve: addon record size ${addon.recordSize} != ${RECORD_SIZE}; rebuild the addon (npm run build:native)`);
  }
  cached = addon;
  return addon;
}
