/**
 * A strict JSON (RFC 8259) checker for .json policies: the YAML 1.2 reader
 * that gives every value its line and column also accepts what JSON refuses
 * (trailing commas, comments, single quotes, bare words), so the text is
 * checked against the JSON grammar first and the first offence reported at
 * its line:column.
 */

export interface JsonOffence { offset: number; message: string }

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const LITERALS = ['true', 'false', 'null'];
const MAX_DEPTH = 512;

/** The first place `text` departs from JSON, or null when it is JSON. */
export function checkStrictJson(text: string): JsonOffence | null {
  const c = new Checker(text);
  try {
    c.ws();
    c.value(0);
    c.ws();
    if (c.at < text.length) c.fail(`unexpected ${c.show()} after the end of the JSON value`);
    return null;
  } catch (e) {
    if (e instanceof Offence) return { offset: e.offset, message: e.message };
    throw e;
  }
}

class Offence extends Error {
  constructor(readonly offset: number, message: string) { super(message); }
}

class Checker {
  at = 0;
  constructor(private readonly s: string) {}

  fail(message: string): never { throw new Offence(this.at, message); }
  show(): string { return this.at < this.s.length ? `'${this.s[this.at]}'` : 'end of file'; }
  ws(): void { while (this.at < this.s.length && WS.has(this.s.charCodeAt(this.at))) this.at++; }

  value(depth: number): void {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    const ch = this.s[this.at];
    if (ch === '{') return this.container(depth, '}', true);
    if (ch === '[') return this.container(depth, ']', false);
    if (ch === '"') return this.string();
    NUMBER.lastIndex = this.at;
    const m = NUMBER.exec(this.s);
    if (m && m[0].length > 0) { this.at += m[0].length; return; }
    for (const lit of LITERALS) if (this.s.startsWith(lit, this.at)) { this.at += lit.length; return; }
    this.fail(`expected a JSON value, found ${this.show()}`);
  }

  /** An object (members "key": value) or an array, with no trailing comma. */
  container(depth: number, close: string, object: boolean): void {
    this.at++;
    this.ws();
    if (this.s[this.at] === close) { this.at++; return; }
    for (;;) {
      if (object) {
        if (this.s[this.at] !== '"') this.fail(`expected a "quoted" key, found ${this.show()}`);
        this.string();
        this.ws();
        if (this.s[this.at] !== ':') this.fail(`expected ':' after the key, found ${this.show()}`);
        this.at++;
        this.ws();
      }
      this.value(depth + 1);
      this.ws();
      const ch = this.s[this.at];
      if (ch === close) { this.at++; return; }
      if (ch !== ',') this.fail(`expected ',' or '${close}', found ${this.show()}`);
      this.at++;
      this.ws();
      if (this.s[this.at] === close) this.fail(`trailing comma before '${close}' (JSON allows none)`);
    }
  }

  string(): void {
    this.at++;
    while (this.at < this.s.length) {
      const code = this.s.charCodeAt(this.at);
      if (code === 0x22) { this.at++; return; }
      if (code < 0x20) this.fail('control character in a string (escape it)');
      if (code === 0x5c) {
        const e = this.s[this.at + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(this.s.slice(this.at + 2, this.at + 6))) this.fail('\\u needs four hex digits');
          this.at += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) this.fail(`bad escape \\${e ?? ''}`);
        this.at += 2;
        continue;
      }
      this.at++;
    }
    this.fail('unterminated string');
  }
}
