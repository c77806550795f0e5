/**
 * Policy -> decision table bytes, with the analysis `nfsieve check` reports:
 * rules that can never match, and rules shadowed by an earlier terminal rule.
 */
import { Policy, Rule, ruleLabel } from '../policy/model';
import { buildFamily, FamilyRules } from './build';
import { FamilyRule, Interval, normalize, Residual } from './normalize';
import { FLAG_NEEDS_CTSTATE, FLAG_NEEDS_INTERFACES, FLAG_NEEDS_MARK, writeTable } from './format';
import { Field } from './fields';
import { live } from './space';

/** What a warning is about: `dead` (no packet can match), `shadowed` (an earlier rule takes all its packets), `duplicate-name`. */
export type WarningKind = 'dead' | 'shadowed' | 'duplicate-name';

export interface Warning { rule: number; line: number; column: number; kind: WarningKind; message: string }

export interface CompiledPolicy {
  policy: Policy;
  table: Uint8Array;
  warnings: Warning[];
  /** Milliseconds spent compiling (normalise + build + serialise). */
  compileMs: number;
  needs: { ctstate: boolean; interfaces: boolean; mark: boolean };
}

const NO_RESIDUALS: Residual[] = [];

/** Above this many rules the pairwise shadow analysis is skipped (it is quadratic). */
export const SHADOW_ANALYSIS_LIMIT = 4000;

/**
 * `sweep`: 'native' (the default when the addon loads) or 'js' (the
 * TypeScript sweep, the reference the native one is tested against).
 */
export function compile(policy: Policy, options: { analyse?: boolean; sweep?: 'native' | 'js' } = {}): CompiledPolicy {
  const t0 = performance.now();
  const n = policy.rules.length;
  const fam4 = new FamilyRules(n, 4), fam6 = new FamilyRules(n, 6);
  const residuals: Residual[][] = new Array(n);
  // The normalised rules are kept only for the analysis.
  const keep = options.analyse !== false;
  const v4: (FamilyRule | null)[] = [], v6: (FamilyRule | null)[] = [];
  for (let i = 0; i < n; i++) {
    const r4 = normalize(policy.rules[i], 4), r6 = normalize(policy.rules[i], 6);
    fam4.add(i, r4);
    fam6.add(i, r6);
    const res = (r4 ?? r6)?.residuals;
    residuals[i] = res && res.length ? res : NO_RESIDUALS;
    if (keep) { v4.push(r4); v6.push(r6); }
  }
  const needs = {
    ctstate: policy.rules.some((r) => r.conditions.ctstate !== undefined),
    interfaces: policy.rules.some((r) => r.conditions.in !== undefined || r.conditions.out !== undefined),
    mark: policy.rules.some((r) => r.conditions.mark !== undefined),
  };
  const table = writeTable({
    rules: policy.rules,
    residuals,
    defaultVerdict: policy.default,
    families: { 4: buildFamily(fam4, options.sweep), 6: buildFamily(fam6, options.sweep) },
    sets: [...policy.sets.values()],
    flags: (needs.ctstate ? FLAG_NEEDS_CTSTATE : 0) | (needs.interfaces ? FLAG_NEEDS_INTERFACES : 0) | (needs.mark ? FLAG_NEEDS_MARK : 0),
  });
  const warnings = keep ? analyse(policy.rules, v4, v6) : [];
  return { policy, table, warnings, compileMs: performance.now() - t0, needs };
}

function analyse(rules: Rule[], v4: (FamilyRule | null)[], v6: (FamilyRule | null)[]): Warning[] {
  const warnings: Warning[] = [];
  const warn = (i: number, kind: WarningKind, message: string): void => {
    warnings.push({ rule: i, line: rules[i].line, column: rules[i].column, kind, message: `rule ${JSON.stringify(ruleLabel(rules[i], i))}: ${message}` });
  };
  // A family where no packet reaches the rule's box (src/compile/space.ts) counts as no rule there.
  const live4 = v4.map((r) => (live(r, 4) ? r : null));
  const live6 = v6.map((r) => (live(r, 6) ? r : null));
  rules.forEach((r, i) => { if (!live4[i] && !live6[i]) warn(i, 'dead', 'can never match (its conditions exclude each other)'); });
  const names = new Map<string, number>();
  rules.forEach((r, i) => {
    if (r.name === null) return;
    const first = names.get(r.name);
    if (first !== undefined) warn(i, 'duplicate-name', `shares its name with rule ${first + 1} (line ${rules[first].line}): classify output tells them apart by line only`);
    else names.set(r.name, i);
  });
  if (rules.length > SHADOW_ANALYSIS_LIMIT) return warnings;
  // A rate-limited rule lets the packets over its limit through to later rules: it shadows nothing.
  const terminal = (r: Rule): boolean => r.action.type !== 'count' && r.action.type !== 'skip' && !(r.action.type === 'mark' && r.action.then === 'continue') && !r.limit;
  // Skips (flattened iptables chains) make "earlier" depend on the path; analyse plain policies only.
  if (rules.some((r) => r.action.type === 'skip')) return warnings;
  for (let j = 0; j < rules.length; j++) {
    if (!live4[j] && !live6[j]) continue;
    for (let i = 0; i < j; i++) {
      if (!terminal(rules[i])) continue;
      if (covers(live4[i], live4[j]) && covers(live6[i], live6[j])) {
        warn(j, 'shadowed', `is shadowed by rule ${JSON.stringify(ruleLabel(rules[i], i))} (line ${rules[i].line}) and never decides`);
        break;
      }
    }
  }
  return warnings;
}

/** Does earlier rule a match every packet that rule b matches (in one family)? */
function covers(a: FamilyRule | null, b: FamilyRule | null): boolean {
  if (!b) return true;
  if (!a) return false;
  if (a.residuals.length > 0) return false;
  for (const [field, ivs] of a.dims) {
    const bivs = b.dims.get(field);
    if (!bivs) return false;
    if (!within(bivs, ivs)) return false;
  }
  return true;
}

function within(inner: Interval[], outer: Interval[]): boolean {
  return inner.every((iv) => outer.some((o) => !(iv.lo < o.lo) && !(o.hi < iv.hi)));
}

export { Field };
