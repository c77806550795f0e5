/**
 * Building a policy in code, with the same rules and messages as a policy
 * file: `definePolicy({ default: 'drop', rules: [...] })`. Errors name the
 * path of the bad value (`rules[2].dport: ...`).
 */
import { Policy } from './model';
import { interpretPolicy, PathPart } from './interpret';
import { PolicyError } from './parse';

type One<T> = T | T[] | { not: T | T[] };
type Port = number | string;

/** One rule: conditions (all must hold) and an action. Values as in a policy file. */
export interface RuleInput {
  name?: string;
  comment?: string;
  action: 'accept' | 'drop' | 'reject' | 'repeat' | 'count' | { queue: number } | { mark: number | string; then?: 'accept' | 'continue' | 'repeat' };
  family?: 4 | 6 | 'ipv4' | 'ipv6';
  src?: One<string>;
  dst?: One<string>;
  proto?: One<string | number>;
  'ip-proto'?: One<string | number>;
  sport?: One<Port>;
  dport?: One<Port>;
  spi?: One<number | string>;
  'ah-spi'?: One<number | string>;
  icmp?: One<string | number>;
  icmpv6?: One<string | number>;
  ike?: { version?: One<number>; exchange?: One<string | number>; initiator?: boolean; response?: boolean; initial?: boolean; cookie?: boolean };
  natt?: One<'ike' | 'esp' | 'keepalive' | 'none'>;
  fragment?: One<'none' | 'first' | 'later'>;
  in?: One<string>;
  out?: One<string>;
  ctstate?: One<'new' | 'established' | 'related' | 'invalid' | 'untracked'>;
  mark?: number | string | { not: number | string };
  length?: One<Port>;
  malformed?: boolean;
  /** Rate limit, checked once every other condition holds: `{rate: '20/s', burst: 40}` or `{rate: '5/s', burst: 10, per: 'src'}`. */
  limit?: LimitInput;
}

/** As in a policy file: rate `N/s|sec|second|m|min|minute|h|hour|d|day`; burst default 5; per-source keys and bound. */
export interface LimitInput {
  rate: string;
  burst?: number;
  per?: 'src' | 'rule';
  'per-prefix4'?: number;
  'per-prefix6'?: number;
  'max-sources'?: number;
}

export interface PolicyInput {
  version?: 1;
  default: 'accept' | 'drop' | 'reject';
  sets?: Record<string, { type?: 'address' | 'spi'; elements?: (string | number)[]; file?: string }>;
  rules: RuleInput[];
}

function pathText(at: PathPart[]): string {
  return at.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('') || '(policy)';
}

/** Validate and build a policy from plain data. Throws PolicyError listing every problem. */
export function definePolicy(input: PolicyInput, options: { baseDir?: string } = {}): Policy {
  const diagnostics: { file: string; line: number; column: number; message: string }[] = [];
  const policy = interpretPolicy(input, {
    error: (at, message) => diagnostics.push({ file: '<code>', line: 0, column: 0, message: `${pathText(at)}: ${message}` }),
    locate: () => ({ line: 0, column: 0 }),
    baseDir: options.baseDir ?? process.cwd(),
    source: '<code>',
  });
  if (diagnostics.length) throw new PolicyError(diagnostics);
  return policy;
}
