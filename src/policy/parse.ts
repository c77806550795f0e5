/**
 * Reading a policy file (YAML or JSON; JSON is checked strictly, then read by
 * the same YAML 1.2 parser, so both report FILE:LINE:COL). A policy with any error yields a
 * PolicyError listing every diagnostic; nothing is half-applied.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LineCounter, parseDocument, isNode, isMap, isScalar, Document } from 'yaml';
import { Policy } from './model';
import { NfsieveError } from '../errors';
import { interpretPolicy, PathPart, Position } from './interpret';
import { checkStrictJson } from './json';

export interface Diagnostic { file: string; line: number; column: number; message: string }

/** A refused policy (code EPOLICY): every diagnostic, the first one's place on the error. */
export class PolicyError extends NfsieveError {
  constructor(readonly diagnostics: Diagnostic[]) {
    const first = diagnostics[0];
    super('EPOLICY', diagnostics.map(formatDiagnostic).join('\n'), first ? { file: first.file, line: first.line, col: first.column } : {});
    this.name = 'PolicyError';
  }
}

export function formatDiagnostic(d: Diagnostic): string {
  if (d.line <= 0) return `${d.file}: ${d.message}`;
  return d.column > 0 ? `${d.file}:${d.line}:${d.column}: ${d.message}` : `${d.file}:${d.line}: ${d.message}`;
}

export function loadPolicyFile(file: string): Policy {
  const ext = path.extname(file).toLowerCase();
  if (!['.yaml', '.yml', '.json'].includes(ext)) {
    throw new PolicyError([{ file, line: 0, column: 0, message: 'a policy file ends in .yaml, .yml or .json (iptables-save files need --iptables)' }]);
  }
  const text = readInputFile(file);
  if (ext === '.json') checkJsonPolicy(text, file);
  return parsePolicyText(text, file);
}

/** A .json policy is JSON, strictly: the first offence is a PolicyError at its line:column. */
export function checkJsonPolicy(text: string, file: string): void {
  const offence = checkStrictJson(text);
  if (!offence) return;
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offence.offset; i = text.indexOf('\n', i + 1)) { line++; lineStart = i + 1; }
  throw new PolicyError([{ file, line, column: offence.offset - lineStart + 1, message: `not JSON: ${offence.message}` }]);
}

/** Read a policy, rule, set or trace file; failure is a PolicyError naming the file. */
export function readInputFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new PolicyError([{ file, line: 0, column: 0, message: `cannot read: ${(e as Error).message}` }]);
  }
}

export function parsePolicyText(text: string, file = '<policy>'): Policy {
  const lc = new LineCounter();
  // prettyErrors off: the message is the plain sentence; the position is ours to print, once.
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, version: '1.2' });
  const diagnostics: Diagnostic[] = [];
  for (const e of doc.errors) {
    const pos = lc.linePos(e.pos[0]);
    diagnostics.push({ file, line: pos.line, column: pos.col, message: e.message.split('\n')[0] });
  }
  if (diagnostics.length) throw new PolicyError(diagnostics);
  const locate = (at: PathPart[]): Position => locateIn(doc, lc, at);
  let js: unknown;
  try {
    js = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    // Aliases are resolved here, not while parsing: an unknown anchor or an alias bomb.
    throw new PolicyError([{ file, line: 1, column: 1, message: (e as Error).message }]);
  }
  const policy = interpretPolicy(js, {
    error: (at, message) => {
      const p = locate(at);
      diagnostics.push({ file, line: p.line, column: p.column, message });
    },
    keyError: (at, message) => {
      const p = locateKey(doc, lc, at) ?? locate(at);
      diagnostics.push({ file, line: p.line, column: p.column, message });
    },
    locate,
    baseDir: path.dirname(path.resolve(file)),
    source: file,
  });
  if (diagnostics.length) {
    diagnostics.sort((a, b) => a.line - b.line || a.column - b.column);
    throw new PolicyError(diagnostics);
  }
  return policy;
}

/** Position of the key of the mapping entry at `at`. */
function locateKey(doc: Document, lc: LineCounter, at: PathPart[]): Position | null {
  const parent = at.length === 1 ? doc.contents : doc.getIn(at.slice(0, -1), true);
  if (!isMap(parent)) return null;
  const pair = parent.items.find((it) => isScalar(it.key) && it.key.value === at[at.length - 1]);
  if (!pair || !isNode(pair.key) || !pair.key.range) return null;
  const p = lc.linePos(pair.key.range[0]);
  return { line: p.line, column: p.col };
}

/** Position of the node at `at`, or of its nearest existing ancestor. */
function locateIn(doc: Document, lc: LineCounter, at: PathPart[]): Position {
  for (let n = at.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(at.slice(0, n), true);
    if (isNode(node) && node.range) {
      const p = lc.linePos(node.range[0]);
      return { line: p.line, column: p.col };
    }
  }
  return { line: 1, column: 1 };
}
