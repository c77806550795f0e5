/**
 * The library face of the evaluator: a compiled policy loaded into the native
 * addon, classifying raw frames one at a time or in batches, with per-rule
 * counters and live named sets.
 *
 *   const c = Classifier.fromPolicy(loadPolicyFile('gateway.yaml'));
 *   c.classify(ipPacketBytes)          // { verdict: 'accept', rule: 'allow-ike', line: 12, mark: null }
 *   c.addToSet('gateways', '192.0.2.7') // no recompilation (a live member)
 */
import { IndexOptions, LookupInfo, native, NativeClassifier, NativeMeta } from './native';
import { compile, CompiledPolicy } from './compile/compile';
import { Policy, ruleLabel } from './policy/model';
import { definePolicy, PolicyInput } from './policy/define';
import { LiveSets, SetOperations, AddOptions, DeleteOptions, OriginSelector, SetMember, SetSizes } from './sets';
import { packFrames } from './decode/packet';
import { LinkType } from './wire';
import { counterRows, RuleCounter } from './counters';
import { CT_STATE_KEYS } from './compile/fields';
import { VerdictName } from './reference/evaluate';

/** pcap link type of raw IP packets (what NFQUEUE delivers). */
export const LINKTYPE_RAW = LinkType.Raw;

export interface PacketMeta {
  in?: string;
  out?: string;
  ctstate?: 'invalid' | 'new' | 'established' | 'related' | 'untracked';
  mark?: number;
  /**
   * The clock rate limits measure time by, in nanoseconds (monotonic, like
   * `process.hrtime.bigint()`); read from CLOCK_MONOTONIC when absent.
   * Inject it to make limits exact in tests.
   */
  now?: bigint;
}

/** One counter row (the same row an attachment's stats() gives: src/counters.ts). */
export type CounterRow = RuleCounter;

export interface ClassifyResult {
  /** null for a frame that is not IP. */
  verdict: VerdictName | null;
  /** Index of the deciding rule, -1 for the default verdict, -2 for a non-IP frame. */
  index: number;
  /** Deciding rule's name or 1-based position; null for the default verdict. */
  rule: string | number | null;
  /** 1-based line of the deciding rule in its policy file; null for the default. */
  line: number | null;
  /** The mark a rule set, else null. */
  mark: number | null;
  /** Queue number for the queue verdict, else null. */
  queue: number | null;
}

const VERDICTS: (VerdictName | null)[] = ['accept', 'drop', 'reject', 'queue', 'repeat'];

export function toNativeMeta(m: PacketMeta | undefined): NativeMeta | undefined {
  if (!m) return undefined;
  return { in: m.in, out: m.out, ctstate: m.ctstate ? CT_STATE_KEYS[m.ctstate] : 0, mark: m.mark, now: m.now };
}

function checkIndexOptions(o: IndexOptions | undefined): IndexOptions | undefined {
  if (o === undefined) return undefined;
  if (typeof o !== 'object' || o === null) throw new TypeError('index options must be an object');
  for (const [k, v] of Object.entries(o)) {
    if (k === 'cuts') {
      if (typeof v !== 'boolean' && v !== 'always') throw new TypeError("index.cuts must be a boolean or 'always'");
    } else if (k === 'trees') {
      if (v !== 'auto' && v !== 'cuts' && v !== 'splits') throw new TypeError("index.trees must be 'auto', 'cuts' or 'splits'");
    } else if (k === 'simd') {
      if (typeof v !== 'boolean' && v !== 'avx2') throw new TypeError("index.simd must be a boolean or 'avx2'");
    } else if (k === 'combine' || k === 'groupIndex' || k === 'addressFilters') {
      if (typeof v !== 'boolean') throw new TypeError(`index.${k} must be a boolean`);
    } else if (k === 'work' || k === 'memory' || k === 'cutsMemory' || k === 'cutsWork') {
      if (!Number.isSafeInteger(v) || (v as number) < 0) throw new RangeError(`index.${k} must be a non-negative integer`);
    } else {
      throw new TypeError(`unknown index option '${k}' (known: combine, work, memory, cuts, cutsMemory, cutsWork, trees, simd, groupIndex, addressFilters)`);
    }
  }
  return o;
}

export class Classifier implements SetOperations {
  readonly compiled: CompiledPolicy;
  private readonly handle: NativeClassifier;
  private readonly live: LiveSets;

  /**
   * Load a compiled table. `options.index` trades load time and memory for
   * lookup speed (docs/algorithm.md); the verdicts never depend on it.
   */
  constructor(compiled: CompiledPolicy, options: { index?: IndexOptions } = {}) {
    this.compiled = compiled;
    this.handle = new (native().Classifier)(compiled.table, checkIndexOptions(options.index));
    this.live = new LiveSets(this.handle, () => this.policy);
  }

  /** Compile and load a policy (a model from loadPolicyFile/importIptables, or plain input). */
  static fromPolicy(policy: Policy | PolicyInput): Classifier {
    const model = 'sets' in policy && policy.sets instanceof Map ? (policy as Policy) : definePolicy(policy as PolicyInput);
    return new Classifier(compile(model, { analyse: false }));
  }

  get policy(): Policy { return this.compiled.policy; }
  get ruleCount(): number { return this.handle.ruleCount; }
  get tableBytes(): number { return this.handle.tableBytes; }
  /** Bytes of the lookup index built beside the table when it was loaded. */
  get indexBytes(): number { return this.handle.indexBytes; }
  /** Per address family, which lookup structure the load chose and how many rules it left out as covered. */
  lookupInfo(): LookupInfo[] { return this.handle.lookupInfo(); }
  /** The native handle, for the queue engine and benchmarks. */
  get native(): NativeClassifier { return this.handle; }

  /** Classify one frame (raw IP unless `linkType` says otherwise). */
  classify(frame: Uint8Array, options: { linkType?: number; meta?: PacketMeta } = {}): ClassifyResult {
    const r = this.handle.classify(options.linkType ?? LINKTYPE_RAW, frame, toNativeMeta(options.meta));
    return this.result(r[0], r[1], r[2]);
  }

  /** Classify many frames in one native call. */
  classifyBatch(frames: readonly Uint8Array[], options: { linkType?: number; meta?: PacketMeta } = {}): ClassifyResult[] {
    const { data, offsets } = packFrames(frames);
    const out = new Uint32Array(frames.length * 3);
    this.handle.classifyBatch(options.linkType ?? LINKTYPE_RAW, data, offsets, out, toNativeMeta(options.meta));
    const results: ClassifyResult[] = new Array(frames.length);
    for (let i = 0; i < frames.length; i++) results[i] = this.result(out[3 * i], out[3 * i + 1], out[3 * i + 2]);
    return results;
  }

  /** Decode a native result triple. */
  result(ruleCode: number, verdictWord: number, mark: number): ClassifyResult {
    const index = ruleCode - 2;
    if (index === -2) return { verdict: null, index, rule: null, line: null, mark: null, queue: null };
    const verdict = VERDICTS[verdictWord & 0xff] ?? null;
    const markSet = (verdictWord >> 8) & 1;
    const rule = index >= 0 ? this.policy.rules[index] : null;
    return {
      verdict,
      index,
      rule: rule ? ruleLabel(rule, index) : null,
      line: rule ? rule.line : null,
      mark: markSet ? mark >>> 0 : null,
      queue: verdict === 'queue' ? verdictWord >>> 16 : null,
    };
  }

  /**
   * Hit and byte counters per rule, then the default verdict's. `overLimit`:
   * packets that met every other condition of the rule but found its limit
   * exhausted; `evictions`: per-source buckets given up for newer sources.
   */
  counters(): CounterRow[] {
    return counterRows(this.policy, this.handle.counters());
  }

  /** Per rule with a limit: buckets kept now and per-source evictions so far; and the bytes all limit state takes. */
  limits(): { rules: { index: number; rule: string | number; perSource: boolean; sources: number; evictions: number }[]; bytes: number } {
    const rules = this.handle.limitStats().map((l) => ({ index: l.rule, rule: ruleLabel(this.policy.rules[l.rule], l.rule), perSource: l.perSource, sources: l.sources, evictions: l.evictions }));
    return { rules, bytes: this.handle.limitBytes };
  }

  resetCounters(): void { this.handle.resetCounters(); }

  /** Add a live element (address, prefix, SPI or SPI range), optionally with a timeout; false if it was live already. */
  addToSet(name: string, element: string | number, options?: AddOptions): boolean { return this.live.add(name, element, options); }
  /** Remove an element's origins (default all); false if it had none of them. */
  deleteFromSet(name: string, element: string | number, options?: DeleteOptions): boolean { return this.live.delete(name, element, options); }
  flushSet(name: string, origin?: OriginSelector): number { return this.live.flush(name, origin); }
  testSet(name: string, value: string | number): boolean { return this.live.test(name, value); }
  listSet(name: string): SetMember[] { return this.live.list(name); }
  setSizes(): SetSizes[] { return this.live.sizes(); }
  expireSets(): number { return this.live.expire(); }

  /** Set names, kinds and current sizes (total, file, live). */
  sets(): SetSizes[] { return this.live.sizes(); }
}
