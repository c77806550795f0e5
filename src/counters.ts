/**
 * Counter rows, written once for the Classifier and an attachment: the addon's
 * per-rule arrays (rules in order, then the default verdict) as labelled rows.
 */
import { Policy, ruleLabel } from './policy/model';

/** Hits and bytes of one rule (or of the default verdict: `rule: 'default'`, `line: null`). */
export interface RuleCounter {
  /** The rule's name, or its 1-based position when it has none; 'default' for the default verdict. */
  rule: string | number;
  /** 1-based line in the policy file; null for the default and for policies built in code. */
  line: number | null;
  hits: bigint;
  bytes: bigint;
  /** Packets its limit refused (every other condition held). */
  overLimit: bigint;
  /** Per-source buckets given up. */
  evictions: bigint;
}

/** The addon's counter arrays: one entry per rule, then the default verdict's. */
export interface CounterArrays {
  hits: readonly bigint[] | BigUint64Array;
  bytes: readonly bigint[] | BigUint64Array;
  overLimit?: readonly bigint[] | BigUint64Array;
  evictions?: readonly bigint[] | BigUint64Array;
}

/** One row per rule of `policy`, then the default verdict's; a missing entry counts 0. */
export function counterRows(policy: Policy, c: CounterArrays): RuleCounter[] {
  const row = (rule: string | number, line: number | null, i: number): RuleCounter => ({
    rule, line, hits: c.hits[i] ?? 0n, bytes: c.bytes[i] ?? 0n, overLimit: c.overLimit?.[i] ?? 0n, evictions: c.evictions?.[i] ?? 0n,
  });
  const rows = policy.rules.map((r, i) => row(ruleLabel(r, i), r.line, i));
  rows.push(row('default', null, rows.length));
  return rows;
}
