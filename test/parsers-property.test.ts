/**
 * fast-check properties for the readers of outside input: the policy reader,
 * the iptables importer, the capture reader and (when present) the control
 * socket's request parser. On any input, valid, mutated or noise, each one
 * returns a result or throws its own typed error: never a TypeError, a
 * RangeError or anything else that means a bug.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { parsePolicyText, PolicyError } from '../src/policy/parse';
import { policyToYaml } from '../src/policy/serialize';
import { definePolicy } from '../src/policy/define';
import { importIptables } from '../src/iptables/import';
import { ImportError } from '../src/iptables/rule';
import { ValueError } from '../src/policy/values';
import { parseCapture, writePcap, CaptureError } from '../src/capture/pcap';
import { Rng, LINK_TYPES } from './support/packets';
import { randomPolicy } from './support/policies';
import { randomIptablesSave } from './support/iptables';
import { ROOT } from './support/compare';

const SEED = Number(process.env.NFSIEVE_SEED ?? Date.now() % 1e9);
const RUNS = 2000;

/** Run fn; an error that is not one of `allowed` fails the property with the input. */
function onlyTyped(fn: () => unknown, allowed: (new (...a: never[]) => Error)[]): boolean {
  try {
    fn();
  } catch (e) {
    if (allowed.some((k) => e instanceof k)) return true;
    throw new Error(`untyped failure ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack}`);
  }
  return true;
}

/** Text edits that keep most of a document's shape: cut, duplicate, swap or replace a span. */
function textMutation(base: string[]): fc.Arbitrary<string> {
  return fc.tuple(fc.constantFrom(...base), fc.array(fc.tuple(fc.nat(), fc.nat(40), fc.nat(3), fc.string({ maxLength: 12 })), { maxLength: 6 }))
    .map(([text, edits]) => {
      let t = text;
      for (const [at, len, kind, repl] of edits) {
        const i = t.length ? at % t.length : 0;
        const span = t.slice(i, i + len);
        t = kind === 0 ? t.slice(0, i) + t.slice(i + len) : kind === 1 ? t.slice(0, i) + span + span + t.slice(i) : kind === 2 ? t.slice(0, i) + repl + t.slice(i + len) : t.slice(0, i) + repl + t.slice(i);
      }
      return t;
    });
}

const EXAMPLES = fs.readdirSync(path.join(ROOT, 'examples')).filter((f) => f.endsWith('.yaml')).map((f) => fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8'));
const POLICY_ERRORS = [PolicyError, ValueError];

test(`policy reader: mutated examples and noise give a policy or a PolicyError (fast-check, seed ${SEED})`, () => {
  assert.ok(EXAMPLES.length >= 3);
  fc.assert(fc.property(fc.oneof(textMutation(EXAMPLES), fc.string({ maxLength: 400 })), (text) => onlyTyped(() => parsePolicyText(text, 'fuzz.yaml'), POLICY_ERRORS)), { seed: SEED, numRuns: RUNS });
});

test('policy reader: an alias to no anchor, or too many aliases, is a PolicyError (found by the property above)', () => {
  assert.throws(() => parsePolicyText('*!', 'a.yaml'), (e: unknown) => e instanceof PolicyError && /a\.yaml:1:1: Unresolved alias/.test((e as Error).message));
  const bomb = `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [${Array(10).fill('*a').join(', ')}]\nc: &c [${Array(10).fill('*b').join(', ')}]\nd: [${Array(10).fill('*c').join(', ')}]\n`;
  assert.throws(() => parsePolicyText(bomb, 'bomb.yaml'), PolicyError);
});

test(`policy reader: random policies survive YAML and back unchanged (fast-check, seed ${SEED})`, () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), (s) => {
    const policy = definePolicy(randomPolicy(new Rng(s)));
    const yaml = policyToYaml(policy);
    assert.equal(policyToYaml(parsePolicyText(yaml, 'round.yaml')), yaml);
  }), { seed: SEED, numRuns: 200 });
});

test(`iptables importer: mutated iptables-save files give a policy or an ImportError (fast-check, seed ${SEED})`, () => {
  const rng = new Rng(SEED);
  const saves = Array.from({ length: 20 }, (_, i) => randomIptablesSave(rng, i % 2 === 0 ? 4 : 6));
  const lines = fc.constantFrom(...saves.flatMap((s) => s.split('\n')));
  const shuffled = fc.array(lines, { maxLength: 30 }).map((ls) => `*filter\n:INPUT DROP [0:0]\n${ls.join('\n')}\nCOMMIT\n`);
  fc.assert(fc.property(fc.oneof(textMutation(saves), shuffled, fc.string({ maxLength: 300 })), (text) =>
    onlyTyped(() => importIptables(text, 'fuzz.rules'), [ImportError, ...POLICY_ERRORS])), { seed: SEED, numRuns: RUNS });
});

test(`capture reader: mutated and cut captures give frames or a CaptureError; written captures read back (fast-check, seed ${SEED})`, () => {
  const frame = fc.uint8Array({ minLength: 1, maxLength: 200 });
  const capture = fc.tuple(fc.array(frame, { minLength: 1, maxLength: 8 }), fc.constantFrom(...LINK_TYPES));
  fc.assert(fc.property(capture, ([frames, lt]) => {
    const read = parseCapture(writePcap(frames.map((data) => ({ data })), lt), 'round.pcap');
    assert.deepEqual(read.map((f) => [f.linkType, Buffer.from(f.data).toString('hex')]), frames.map((f) => [lt, Buffer.from(f).toString('hex')]));
  }), { seed: SEED, numRuns: 300 });
  const mutated = fc.tuple(capture, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 8 }), fc.nat()).map(([[frames, lt], flips, cut]) => {
    const b = new Uint8Array(writePcap(frames.map((data) => ({ data })), lt));
    for (const [at, v] of flips) b[at % b.length] = v;
    return b.subarray(0, b.length - (cut % 8 === 0 ? cut % b.length : 0));
  });
  fc.assert(fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 300 })), (bytes) => onlyTyped(() => parseCapture(bytes, 'fuzz.pcap'), [CaptureError])), { seed: SEED, numRuns: RUNS });
});

// The control socket's request parser (src/control/protocol.ts, from the
// control-socket work): when it is part of this tree, it must never throw.
const protocolFile = path.join(ROOT, 'src', 'control', 'protocol.ts');
test(`control request parser: any line gives a request or a ControlError, never a throw (fast-check, seed ${SEED})`, { skip: !fs.existsSync(protocolFile) && 'src/control/protocol.ts is not in this tree yet' }, () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const protocol = require(path.join(ROOT, 'build-test', 'src', 'control', 'protocol.js')) as { parseRequest(line: string): unknown; ControlError: new () => object };
  const json = fc.jsonValue().map((v) => JSON.stringify(v));
  const requestish = fc.record({ v: fc.oneof(fc.constant(1), fc.jsonValue()), id: fc.oneof(fc.string(), fc.integer(), fc.constant(null)), cmd: fc.oneof(fc.constantFrom('ping', 'set.add', 'set.del', 'set.flush', 'set.test', 'set.list', 'stats', 'reload', 'peer.up', 'peer.down'), fc.string()), set: fc.jsonValue(), values: fc.jsonValue(), origin: fc.jsonValue(), timeout: fc.jsonValue() }, { requiredKeys: ['cmd'] }).map((o) => JSON.stringify(o));
  fc.assert(fc.property(fc.oneof(json, requestish, fc.string({ maxLength: 200 })), (line) => {
    const r = protocol.parseRequest(line);
    assert.ok(r !== null && typeof r === 'object');
  }), { seed: SEED, numRuns: RUNS * 2 });
});
