/**
 * Turns a policy document (plain data, as read from YAML/JSON or written in
 * code) into the policy model. Every problem is reported with the path of the
 * offending value; the caller maps paths to FILE:LINE:COL (parse.ts) or to a
 * readable path (define.ts). Interpretation goes on after an error so that one
 * run reports every problem.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  Action, AddressItem, Cond, Conditions, CT_STATES, CtState, TruncatedKind, IKE_FLAG_INITIATOR, IKE_FLAG_RESPONSE, Limit,
  LIMIT_DEFAULT_BURST, LIMIT_DEFAULT_MAX_SOURCES, LIMIT_DEFAULT_PREFIX4, LIMIT_DEFAULT_PREFIX6, LIMIT_MAX_SOURCES, NamedSet,
  Policy, Prefix, Range, Rule, SetCond, Verdict,
} from './model';
import {
  ValueError, parseAddressItem, parseFragment, parseIcmp, parseIkeExchange, parseInterface, parseMark, parseNatt,
  parsePrefix, parseProtocol, parseRange, parseRate, parseUint, limitFits,
} from './values';

export type PathPart = string | number;
export interface Position { line: number; column: number }

export interface Reporter {
  error(at: PathPart[], message: string): void;
  /** An error about a mapping key itself (unknown keys): points at the key, not its value. */
  keyError?(at: PathPart[], message: string): void;
  /** Position of a value, for rule lines; {0,0} when unknown. */
  locate(at: PathPart[]): Position;
  /** Directory that set files are relative to. */
  baseDir: string;
  /** How a file of a set is named in messages. */
  source: string;
}

const RULE_KEYS = new Set([
  'name', 'comment', 'action', 'family', 'src', 'dst', 'proto', 'ip-proto', 'nf-proto', 'nft-proto', 'sport', 'dport', 'nft-sport', 'nft-dport', 'spi', 'ah-spi', 'icmp',
  'icmpv6', 'ike', 'natt', 'fragment', 'in', 'out', 'ctstate', 'mark', 'length', 'malformed', 'l4-avail', 'truncated', 'and', 'limit',
]);
const CONDITION_KEYS = [...RULE_KEYS].filter((k) => !['name', 'comment', 'action', 'and', 'limit'].includes(k));
const TOP_KEYS = new Set(['version', 'default', 'sets', 'rules']);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function keyError(r: Reporter, at: PathPart[], message: string): void {
  if (r.keyError) r.keyError(at, message);
  else r.error(at, message);
}

export function interpretPolicy(doc: unknown, r: Reporter): Policy {
  const policy: Policy = { source: r.source, default: 'accept', rules: [], sets: new Map() };
  if (!isObj(doc)) {
    r.error([], 'a policy is a mapping with keys default, sets and rules');
    return policy;
  }
  for (const k of Object.keys(doc)) if (!TOP_KEYS.has(k)) keyError(r, [k], `unknown key '${k}' (expected one of ${[...TOP_KEYS].join(', ')})`);
  if (doc.version !== undefined && doc.version !== 1) r.error(['version'], `unsupported policy version ${JSON.stringify(doc.version)} (this nfsieve reads version 1)`);
  if (doc.default === undefined) r.error([], "missing 'default' (accept, drop or reject)");
  else if (doc.default !== 'accept' && doc.default !== 'drop' && doc.default !== 'reject') r.error(['default'], `default must be accept, drop or reject, not ${JSON.stringify(doc.default)}`);
  else policy.default = doc.default as Verdict;

  if (doc.sets !== undefined) {
    if (!isObj(doc.sets)) r.error(['sets'], 'sets is a mapping from set name to its definition');
    else for (const [name, def] of Object.entries(doc.sets)) {
      const set = interpretSet(name, def, ['sets', name], r);
      if (set) policy.sets.set(name, set);
    }
  }
  if (!Array.isArray(doc.rules)) {
    r.error(doc.rules === undefined ? [] : ['rules'], "'rules' must be a list of rules");
    return policy;
  }
  doc.rules.forEach((raw, i) => {
    const rule = interpretRule(raw, ['rules', i], policy, r);
    if (rule) policy.rules.push(rule);
  });
  policy.rules.forEach((rule, i) => {
    if (rule.action.type === 'skip' && (rule.action.to <= i || rule.action.to > policy.rules.length)) {
      r.error(['rules', i, 'action'], `skip-to must name a later rule (${i + 2} to ${policy.rules.length + 1}, the last meaning the default verdict)`);
    }
  });
  return policy;
}

function interpretSet(name: string, def: unknown, at: PathPart[], r: Reporter): NamedSet | null {
  if (!/^[A-Za-z_][\w.-]*$/.test(name)) r.error(at, `bad set name '${name}' (letters, digits, _ . -)`);
  if (!isObj(def)) {
    r.error(at, 'a set is a mapping with type (address or spi), elements and/or file');
    return null;
  }
  for (const k of Object.keys(def)) if (!['type', 'elements', 'file'].includes(k)) keyError(r, [...at, k], `unknown key '${k}' in set (type, elements, file)`);
  const kind = def.type ?? 'address';
  if (kind !== 'address' && kind !== 'spi') {
    r.error([...at, 'type'], `set type must be address or spi, not ${JSON.stringify(kind)}`);
    return null;
  }
  const set: NamedSet = { name, kind, addresses: [], spis: [] };
  const add = (text: unknown, where: PathPart[], prefix = ''): void => {
    try {
      if (kind === 'address') set.addresses.push(parsePrefix(String(text)));
      else set.spis.push(parseRange(text as string, 0xffffffff, 'spi'));
    } catch (e) {
      if (e instanceof ValueError) r.error(where, prefix + e.message);
      else throw e;
    }
  };
  if (def.elements !== undefined) {
    if (!Array.isArray(def.elements)) r.error([...at, 'elements'], 'elements must be a list');
    else def.elements.forEach((el, i) => add(el, [...at, 'elements', i]));
  }
  if (def.file !== undefined) {
    const file = path.resolve(r.baseDir, String(def.file));
    let text: string | null = null;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      r.error([...at, 'file'], `cannot read set file ${file}: ${(e as Error).message}`);
    }
    if (text !== null) {
      text.split('\n').forEach((line, i) => {
        const s = line.replace(/#.*/, '').trim();
        if (s) add(s, [...at, 'file'], `${file}:${i + 1}: `);
      });
    }
  }
  return set;
}

function interpretRule(raw: unknown, at: PathPart[], policy: Policy, r: Reporter): Rule | null {
  if (!isObj(raw)) {
    r.error(at, 'a rule is a mapping of conditions and an action');
    return null;
  }
  for (const k of Object.keys(raw)) if (!RULE_KEYS.has(k)) keyError(r, [...at, k], `unknown rule key '${k}'`);
  const pos = r.locate(at);
  const rule: Rule = { name: null, line: pos.line, column: pos.column, conditions: {}, action: { type: 'accept' } };
  if (raw.name !== undefined) {
    if (typeof raw.name !== 'string' || raw.name === '') r.error([...at, 'name'], 'name must be a non-empty string');
    else rule.name = raw.name;
  }
  if (raw.comment !== undefined) {
    if (typeof raw.comment !== 'string') r.error([...at, 'comment'], 'comment must be a string');
    else rule.comment = raw.comment;
  }
  rule.conditions = interpretConditions(raw, at, policy, r);
  if (raw.and !== undefined) {
    if (!Array.isArray(raw.and)) r.error([...at, 'and'], "'and' is a list of condition mappings, all of which must hold");
    else rule.extra = raw.and.map((x, k) => {
      if (!isObj(x)) {
        r.error([...at, 'and', k], 'each entry of and is a mapping of conditions');
        return {};
      }
      for (const key of Object.keys(x)) if (!CONDITION_KEYS.includes(key)) keyError(r, [...at, 'and', k, key], `'${key}' is not a condition`);
      return interpretConditions(x, [...at, 'and', k], policy, r);
    });
  }
  const field = fieldReader(raw, at, r);
  const limit = field('limit', (v, where) => interpretLimit(v, where, r));
  if (limit) rule.limit = limit;
  const action = field('action', (v) => interpretAction(v, policy));
  if (raw.action === undefined) r.error(at, "rule has no 'action'");
  else if (action) rule.action = action;
  return rule;
}

type FieldReader = <T>(key: string, fn: (value: unknown, where: PathPart[]) => T | undefined) => T | undefined;

/** Reads one key of a mapping through `fn`, turning a ValueError into a report at that key. */
function fieldReader(raw: Obj, at: PathPart[], r: Reporter): FieldReader {
  return (key, fn) => {
    if (raw[key] === undefined) return undefined;
    try {
      return fn(raw[key], [...at, key]);
    } catch (e) {
      if (e instanceof ValueError) {
        r.error([...at, key], e.message);
        return undefined;
      }
      throw e;
    }
  };
}

function interpretConditions(raw: Obj, at: PathPart[], policy: Policy, r: Reporter): Conditions {
  const c: Conditions = {};
  const field = fieldReader(raw, at, r);
  c.family = field('family', (v) => {
    const s = String(v).toLowerCase();
    if (s === '4' || s === 'ipv4' || s === 'ip') return 4;
    if (s === '6' || s === 'ipv6' || s === 'ip6') return 6;
    throw new ValueError(`family must be 4 or 6 (ipv4, ipv6), not ${JSON.stringify(v)}`);
  });
  c.src = field('src', (v) => addressCond(v, policy, 'address'));
  c.dst = field('dst', (v) => addressCond(v, policy, 'address'));
  c.proto = field('proto', (v) => cond(v, (x) => protocol(x)));
  c.ipProto = field('ip-proto', (v) => cond(v, (x) => protocol(x)));
  c.nfProto = field('nf-proto', (v) => cond(v, (x) => protocol(x)));
  c.nftProto = field('nft-proto', (v) => cond(v, (x) => protocol(x)));
  c.sport = field('sport', (v) => cond(v, (x) => parseRange(x as string, 65535, 'port')));
  c.dport = field('dport', (v) => cond(v, (x) => parseRange(x as string, 65535, 'port')));
  c.nftSport = field('nft-sport', (v) => cond(v, (x) => parseRange(x as string, 65535, 'port')));
  c.nftDport = field('nft-dport', (v) => cond(v, (x) => parseRange(x as string, 65535, 'port')));
  c.spi = field('spi', (v) => spiCond(v, policy));
  c.ahSpi = field('ah-spi', (v) => spiCond(v, policy));
  const icmp4 = field('icmp', (v) => cond(v, (x) => icmpItem(x, false)));
  const icmp6 = field('icmpv6', (v) => cond(v, (x) => icmpItem(x, true)));
  if (icmp4 && icmp6) {
    if (icmp4.negate !== icmp6.negate) r.error([...at, 'icmpv6'], 'icmp and icmpv6 in one rule must both be negated or neither');
    c.icmp = { negate: icmp4.negate, values: [...icmp4.values, ...icmp6.values] };
  } else c.icmp = icmp4 ?? icmp6;
  field('ike', (v, where) => interpretIke(v, where, c, r));
  c.natt = field('natt', (v) => cond(v, (x) => parseNatt(x as string)));
  c.fragment = field('fragment', (v) => cond(v, (x) => parseFragment(x as string)));
  c.in = field('in', (v) => cond(v, (x) => parseInterface(String(x))));
  c.out = field('out', (v) => cond(v, (x) => parseInterface(String(x))));
  c.ctstate = field('ctstate', (v) => cond(v, (x) => {
    const s = String(x).toLowerCase();
    if (!CT_STATES.includes(s as CtState)) throw new ValueError(`unknown ctstate '${x}' (one of ${CT_STATES.join(', ')})`);
    return s as CtState;
  }));
  c.mark = field('mark', (v) => {
    const n = negation(v);
    if (Array.isArray(n.value)) throw new ValueError('mark takes one VALUE or VALUE/MASK, not a list');
    return { ...parseMark(n.value as string), negate: n.negate };
  });
  c.length = field('length', (v) => cond(v, (x) => parseRange(x as string, 65535 + 40, 'length')));
  c.l4Avail = field('l4-avail', (v) => cond(v, (x) => parseRange(x as string, 65535, 'l4-avail')));
  c.malformed = field('malformed', (v) => {
    if (typeof v !== 'boolean') throw new ValueError('malformed must be true or false');
    return v;
  });
  c.truncated = field('truncated', (v) => {
    const kinds = ['ah', 'tcp-frag1', 'ipv6-hdr'];
    if (!kinds.includes(String(v))) throw new ValueError(`truncated must be one of ${kinds.join(', ')}`);
    return v as TruncatedKind;
  });
  for (const k of Object.keys(c) as (keyof Conditions)[]) if (c[k] === undefined) delete c[k];
  return c;
}

function protocol(x: unknown): number {
  const n = parseProtocol(x as string);
  if (n < 0) throw new ValueError("'all' is not a protocol here: leave proto out to match every protocol");
  return n;
}

/** `value`, `[values]`, `"!value"` or `{not: value|[values]}`. */
function negation(v: unknown): { negate: boolean; value: unknown } {
  if (isObj(v)) {
    const keys = Object.keys(v);
    if (keys.length !== 1 || keys[0] !== 'not') throw new ValueError(`expected a value, a list, or {not: ...}; got keys ${keys.join(', ')}`);
    return { negate: true, value: v.not };
  }
  if (typeof v === 'string' && v.startsWith('!')) return { negate: true, value: v.slice(1).trim() };
  return { negate: false, value: v };
}

function cond<T>(v: unknown, item: (x: unknown) => T): Cond<T> {
  const n = negation(v);
  const list = Array.isArray(n.value) ? n.value : [n.value];
  if (list.length === 0) throw new ValueError('empty list: a condition needs at least one value');
  return { negate: n.negate, values: list.map((x) => {
    if (isObj(x) || Array.isArray(x)) throw new ValueError(`expected a single value in the list, got ${JSON.stringify(x)}`);
    return item(x);
  }) };
}

function icmpItem(x: unknown, v6: boolean): { v6: boolean; type: number; code: Range } {
  return parseIcmp(x as string, v6);
}

function setRefs(list: unknown[], policy: Policy, kind: 'address' | 'spi'): string[] | null {
  const refs = list.filter((x) => typeof x === 'string' && x.startsWith('@'));
  if (refs.length === 0) return null;
  if (refs.length !== list.length) throw new ValueError('a list that names a set (@name) may hold only set names: put the other values in a set, or in a rule of their own');
  return refs.map((x) => {
    const name = (x as string).slice(1);
    const set = policy.sets.get(name);
    if (!set) throw new ValueError(`unknown set '@${name}' (define it under sets:)`);
    if (set.kind !== kind) throw new ValueError(`set '@${name}' holds ${set.kind} elements, not ${kind === 'address' ? 'addresses' : 'SPIs'}`);
    return name;
  });
}

function addressCond(v: unknown, policy: Policy, kind: 'address'): Cond<AddressItem> | SetCond {
  const n = negation(v);
  const list = Array.isArray(n.value) ? n.value : [n.value];
  if (list.length === 0) throw new ValueError('empty address list');
  const sets = setRefs(list, policy, kind);
  if (sets) return { negate: n.negate, sets };
  return { negate: n.negate, values: list.map((x) => parseAddressItem(String(x))) };
}

function spiCond(v: unknown, policy: Policy): Cond<Range> | SetCond {
  const n = negation(v);
  const list = Array.isArray(n.value) ? n.value : [n.value];
  if (list.length === 0) throw new ValueError('empty SPI list');
  const sets = setRefs(list, policy, 'spi');
  if (sets) return { negate: n.negate, sets };
  return { negate: n.negate, values: list.map((x) => parseRange(x as string, 0xffffffff, 'spi')) };
}

const IKE_KEYS = ['version', 'exchange', 'initiator', 'response', 'initial', 'cookie'];

function interpretIke(v: unknown, at: PathPart[], c: Conditions, r: Reporter): void {
  if (!isObj(v)) throw new ValueError(`ike is a mapping: ${IKE_KEYS.join(', ')}`);
  for (const k of Object.keys(v)) if (!IKE_KEYS.includes(k)) keyError(r, [...at, k], `unknown ike key '${k}' (${IKE_KEYS.join(', ')})`);
  const read = fieldReader(v, at, r);
  const sub = <T>(key: string, fn: (x: unknown) => T): T | undefined => read(key, (x) => fn(x));
  c.ikeVersion = sub('version', (x) => cond(x, (y) => parseUint(y as string, 15, 'ike version')));
  c.ikeExchange = sub('exchange', (x) => cond(x, (y) => parseIkeExchange(y as string)));
  let set = 0, clear = 0;
  const flag = (key: string, bit: number): void => {
    sub(key, (x) => {
      if (typeof x !== 'boolean') throw new ValueError(`${key} must be true or false`);
      if (x) set |= bit; else clear |= bit;
    });
  };
  flag('initiator', IKE_FLAG_INITIATOR);
  flag('response', IKE_FLAG_RESPONSE);
  if (set || clear) c.ikeFlags = { set, clear };
  const bool = (key: string): boolean | undefined => sub(key, (x) => {
    if (typeof x !== 'boolean') throw new ValueError(`${key} must be true or false`);
    return x;
  });
  c.ikeInitial = bool('initial');
  c.ikeCookie = bool('cookie');
  // `ike: {}` means "carries an IKE header", whatever its version.
  if (!c.ikeVersion && !c.ikeExchange && !c.ikeFlags && c.ikeInitial === undefined && c.ikeCookie === undefined) c.ikeVersion = { negate: false, values: Array.from({ length: 16 }, (_, i) => i) };
}

const LIMIT_KEYS = ['rate', 'burst', 'per', 'per-prefix4', 'per-prefix6', 'max-sources'];

/** `{rate: "N/unit", burst?, per?: src, per-prefix4?, per-prefix6?, max-sources?}`. */
function interpretLimit(v: unknown, at: PathPart[], r: Reporter): Limit | undefined {
  if (!isObj(v)) throw new ValueError(`limit is a mapping: ${LIMIT_KEYS.join(', ')} (rate "20/s", burst 40, per src)`);
  for (const k of Object.keys(v)) if (!LIMIT_KEYS.includes(k)) keyError(r, [...at, k], `unknown limit key '${k}' (${LIMIT_KEYS.join(', ')})`);
  const read = fieldReader(v, at, r);
  const limit: Limit = {
    rate: 0, periodNs: 0n, burst: LIMIT_DEFAULT_BURST, per: 'rule',
    prefix4: LIMIT_DEFAULT_PREFIX4, prefix6: LIMIT_DEFAULT_PREFIX6, maxSources: LIMIT_DEFAULT_MAX_SOURCES,
  };
  let ok = true;
  if (v.rate === undefined) {
    r.error(at, "limit needs a rate (\"N/s\", \"N/min\", \"N/hour\", \"N/day\")");
    ok = false;
  }
  const rate = read('rate', (x) => parseRate(x));
  if (rate) { limit.rate = rate.rate; limit.periodNs = rate.periodNs; } else ok = false;
  const num = (key: string, min: number, max: number): number | undefined => read(key, (x) => {
    const n = parseUint(x as string, max, `limit ${key}`);
    if (n < min) throw new ValueError(`limit ${key}: at least ${min}`);
    return n;
  });
  const burst = num('burst', 1, 0xffffffff);
  if (burst !== undefined) limit.burst = burst; else if (v.burst !== undefined) ok = false;
  const per = read('per', (x) => {
    if (x !== 'src' && x !== 'rule') throw new ValueError(`limit per must be src (a bucket per source address) or rule, not ${JSON.stringify(x)}`);
    return x;
  });
  if (per) limit.per = per;
  for (const [key, field, max] of [['per-prefix4', 'prefix4', 32], ['per-prefix6', 'prefix6', 128], ['max-sources', 'maxSources', LIMIT_MAX_SOURCES]] as const) {
    if (v[key] === undefined) continue;
    if (limit.per !== 'src') r.error([...at, key], `${key} applies only to a limit per src`);
    const n = num(key, 1, max);
    if (n === undefined) ok = false; else limit[field] = n;
  }
  if (ok && !limitFits(limit)) {
    r.error(at, `limit: a burst of ${limit.burst} at this rate is too large to count exactly (burst x period / gcd(rate, period) must stay below 2^62 ns)`);
    return undefined;
  }
  return ok ? limit : undefined;
}

function interpretAction(v: unknown, _policy: Policy): Action {
  if (typeof v === 'string') {
    if (v === 'accept' || v === 'drop' || v === 'reject') return { type: v };
    if (v === 'count') return { type: 'count' };
    if (v === 'repeat') return { type: 'repeat' };
    throw new ValueError(`unknown action '${v}' (accept, drop, reject, repeat, count, {queue: N}, {mark: VALUE[/MASK], then: accept|continue|repeat})`);
  }
  if (isObj(v)) {
    if (v.queue !== undefined) {
      if (Object.keys(v).length !== 1) throw new ValueError('a queue action is {queue: N} alone');
      return { type: 'queue', queue: parseUint(v.queue as string, 65535, 'queue') };
    }
    if (v['skip-to'] !== undefined) {
      // Resolved against the rule count once all rules are read (checkSkips).
      return { type: 'skip', to: parseUint(v['skip-to'] as string, 0xffffffff, 'skip-to') - 1 };
    }
    if (v.mark !== undefined) {
      for (const k of Object.keys(v)) if (k !== 'mark' && k !== 'then') throw new ValueError(`unknown key '${k}' in a mark action (mark, then)`);
      const then = v.then ?? 'continue';
      if (then !== 'accept' && then !== 'continue' && then !== 'repeat') throw new ValueError(`then must be accept, continue or repeat, not ${JSON.stringify(then)}`);
      const m = parseMark(v.mark as string, 'action');
      return { type: 'mark', value: m.value, mask: m.mask, then };
    }
  }
  throw new ValueError('action must be accept, drop, reject, repeat, count, {queue: N} or {mark: VALUE[/MASK], then: accept|continue|repeat}');
}

export type { Prefix };
