import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { definePolicy, RuleInput } from '../src/policy/define';
import { compile } from '../src/compile/compile';
import { normalize } from '../src/compile/normalize';
import { packetShapes, witness, meet } from '../src/compile/space';
import { Field } from '../src/compile/fields';
import { referenceDecode } from '../src/decode/reference';
import { initialSets, ruleFailure, ruleHolds, Meta } from '../src/reference/evaluate';
import { Rule } from '../src/policy/model';
import { Rng, randomFrame, LINK_TYPES } from './support/packets';
import { randomMeta, randomPolicy } from './support/policies';
import { witnessablePolicy, witnessMeta, witnessPacket } from './support/witness';
import { toNativeMeta } from '../src/classifier';

const SEED = Number(process.env.NFSIEVE_SEED ?? Date.now() % 0x7fffffff);
const RAW_IP = 101;

const dead = (policy: ReturnType<typeof definePolicy>): Set<number> =>
  new Set(compile(policy).warnings.filter((w) => w.kind === 'dead').map((w) => w.rule));

test('check reports the issue\'s never-matching rules, and not their live neighbours', () => {
  const rules: RuleInput[] = [
    { name: 'tcp-icmp', proto: 'tcp', icmp: 'echo-request', action: 'drop' },
    { name: 'esp-ports', proto: 'esp', dport: 500, action: 'drop' },
    { name: 'icmp-icmpv6', proto: 'icmp', icmpv6: 'echo-request', action: 'drop' },
    { name: 'v4-with-v6-only', src: '10.0.0.1', icmpv6: 'echo-request', action: 'drop' },
    { name: 'ike-over-tcp', proto: 'tcp', ike: { version: 2 }, action: 'drop' },
    { name: 'later-fragment-ports', fragment: 'later', dport: 53, action: 'drop' },
    { name: 'natt-esp-spi-0', natt: 'esp', spi: 0, action: 'drop' },
    { name: 'esp-spi-0', proto: 'esp', spi: 0, action: 'accept' },
    { name: 'ike-4500', dport: 4500, ike: { version: 2 }, action: 'accept' },
    { name: 'icmp', proto: 'icmp', icmp: 'echo-request', action: 'accept' },
    { name: 'udp-500', proto: 'udp', dport: 500, action: 'accept' },
    { name: 'esp-ike-initial', proto: 'esp', ike: { initial: true }, action: 'drop' },
    { name: 'ike-initial', dport: 500, ike: { initial: true }, action: 'drop' },
  ];
  const policy = definePolicy({ default: 'drop', rules });
  const names = [...dead(policy)].map((i) => policy.rules[i].name);
  assert.deepEqual(names, ['tcp-icmp', 'esp-ports', 'icmp-icmpv6', 'v4-with-v6-only', 'ike-over-tcp', 'later-fragment-ports', 'natt-esp-spi-0', 'esp-ike-initial']);
});

function witnessFor(rule: Rule): { frame: Uint8Array; meta: Meta } | null {
  for (const family of [4, 6] as const) {
    const fr = normalize(rule, family);
    const w = witness(fr, family);
    if (!w || !fr) continue;
    return { frame: witnessPacket(w.shape, w.keys, w.box, family), meta: witnessMeta(w.keys, fr.residuals) };
  }
  return null;
}

test(`every rule check calls live is matched by a packet built from its region (seed ${SEED})`, () => {
  const rng = new Rng(SEED);
  let live = 0, reported = 0;
  for (let n = 0; n < 400; n++) {
    const policy = definePolicy(witnessablePolicy(rng));
    const gone = dead(policy);
    const sets = initialSets(policy);
    policy.rules.forEach((rule, i) => {
      if (gone.has(i)) { reported++; return; }
      const w = witnessFor(rule);
      assert.ok(w, `rule ${i} not reported dead but has no witness (seed ${SEED}, policy ${n})`);
      const p = referenceDecode(RAW_IP, w.frame);
      // The rule alone (as if first): the reference evaluator must say it matches.
      const failed = ruleFailure(rule, p, w.meta, sets, w.meta.mark ?? 0);
      assert.equal(failed, null, `seed ${SEED}, policy ${n}, rule ${i} ${JSON.stringify(rule.conditions)}: witness fails on ${failed}; packet ${Buffer.from(w.frame).toString('hex')}`);
      live++;
    });
  }
  assert.ok(live > 1000 && reported > 20, `too few rules of each kind to mean anything: ${live} live, ${reported} dead`);
});

test(`no rule check calls dead matches a random packet or one built from its own conditions (seed ${SEED})`, () => {
  const rng = new Rng(SEED ^ 0x5a5a);
  let deadRules = 0, tries = 0;
  for (let n = 0; n < 200; n++) {
    const policy = definePolicy(n % 2 ? randomPolicy(rng) : witnessablePolicy(rng));
    const gone = [...dead(policy)];
    if (gone.length === 0) continue;
    deadRules += gone.length;
    const sets = initialSets(policy);
    const check = (frame: Uint8Array, meta: Meta, what: string): void => {
      const p = referenceDecode(RAW_IP, frame);
      for (const i of gone) {
        tries++;
        assert.ok(!ruleHolds(policy.rules[i], p, meta, sets, meta.mark ?? 0), `seed ${SEED}: rule ${i} reported dead matches ${what} ${Buffer.from(frame).toString('hex')}`);
      }
    };
    for (let k = 0; k < 300; k++) {
      const m = randomMeta(rng);
      const meta: Meta = { in: m.in, out: m.out, ctstate: toNativeMeta(m)?.ctstate, mark: m.mark };
      check(randomFrame(rng, RAW_IP).data, meta, 'a random packet');
    }
    // Packets from the rule's own conditions, one per shape: each field's key from the rule where the shape allows it.
    for (const i of gone) {
      for (const family of [4, 6] as const) {
        const fr = normalize(policy.rules[i], family);
        if (!fr) continue;
        for (const s of packetShapes(family)) {
          const keys = new Map<Field, bigint | number>();
          for (const [f, ivs] of fr.dims) keys.set(f, ivs[0].lo);
          const inShape = meet({ dims: new Map(), residuals: [] }, s, family)!;
          check(witnessPacket(s.name, keys, new Map([...inShape, ...fr.dims]), family), witnessMeta(keys, fr.residuals), `a packet of shape ${s.name} from its conditions`);
        }
      }
    }
  }
  assert.ok(deadRules > 20 && tries > 0, `too few dead rules to mean anything: ${deadRules}`);
});

test('random packets never match a rule whose region is empty, on every link type', () => {
  // The same, framed on each link type, so the decoder's view of those frames is the one checked.
  const policy = definePolicy({ default: 'accept', rules: [{ proto: 'tcp', icmp: 'echo-request', action: 'drop' }, { proto: 'esp', sport: 500, action: 'drop' }] });
  assert.equal(dead(policy).size, 2);
  const rng = new Rng(SEED);
  const sets = initialSets(policy);
  for (const lt of LINK_TYPES) for (let k = 0; k < 2000; k++) {
    const p = referenceDecode(lt, randomFrame(rng, lt).data);
    if (p.family === null) continue;
    for (const r of policy.rules) assert.ok(!ruleHolds(r, p, {}, sets, 0));
  }
});

test('check and check --json name the dead rules with their lines', () => {
  const root = path.resolve(__dirname, '..', '..');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-dead-'));
  try {
    const file = path.join(dir, 'p.yaml');
    fs.writeFileSync(file, 'default: accept\nrules:\n  - name: ping-over-tcp\n    proto: tcp\n    icmp: echo-request\n    action: drop\n  - name: ike\n    proto: udp\n    dport: 500\n    action: accept\n');
    const bin = path.join(root, 'bin', 'nfsieve.js');
    const text = spawnSync(process.execPath, [bin, 'check', file], { encoding: 'utf8' });
    assert.equal(text.status, 0, text.stderr);
    assert.ok(text.stdout.includes(`${file}:3:5: warning: rule "ping-over-tcp": can never match`), text.stdout);
    assert.match(text.stdout, /1 warning\b/);
    const json = spawnSync(process.execPath, [bin, 'check', '--json', file], { encoding: 'utf8' });
    assert.equal(json.status, 0, json.stderr);
    const warnings = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { warnings?: unknown[] }).flatMap((o) => o.warnings ?? []);
    assert.deepEqual(warnings.map((w) => { const { message: _m, ...rest } = w as { message: string }; return rest; }), [{ kind: 'dead', rule: 1, line: 3, column: 5 }]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
