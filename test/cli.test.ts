import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, PCAPS, CLASSBENCH, PCAP_COUNT, fixtureCaptures } from './support/compare';
import { readCapture } from '../src/capture/pcap';
import { loadPolicyFile } from '../src/policy/parse';
import { referenceDecode } from '../src/decode/reference';
import { referenceEvaluate } from '../src/reference/evaluate';
import { ruleLabel } from '../src/policy/model';
import { loadClassbenchRules } from '../src/classbench/classbench';

const BIN = path.join(ROOT, 'bin', 'nfsieve.js');
const EXAMPLE = path.join(ROOT, 'examples', 'freeswan-gateway.yaml');

function run(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}


test('inspect --json prints one object per frame with the contract keys in order', () => {
  const r = run('inspect', path.join(PCAPS, 'ikev2four.pcap'), '--json');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 21);
  assert.deepEqual(Object.keys(JSON.parse(lines[0])), ['index', 'family', 'src', 'dst', 'proto', 'fragment', 'sport', 'dport', 'spi', 'ah', 'icmp', 'ike', 'natt', 'malformed']);
  lines.forEach((l, i) => assert.equal(JSON.parse(l).index, i));
});

test('inspect without --json prints a readable line per frame; a corrupt capture names file and offset', () => {
  const r = run('inspect', path.join(PCAPS, 'isakmp4500.pcap'));
  assert.equal(r.code, 0);
  assert.match(r.stdout, /NAT-keepalive/);
  assert.match(r.stdout, /NONESP-encap IKEv1 Quick Mode/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-cli-'));
  try {
    const bad = path.join(dir, 'cut.pcap');
    const bytes = fs.readFileSync(path.join(PCAPS, 'espudp1.pcap'));
    fs.writeFileSync(bad, bytes.subarray(0, bytes.length - 10));
    const e = run('inspect', bad);
    assert.equal(e.code, 1);
    assert.match(e.stderr, new RegExp(`^${bad.replace(/[.]/g, '\\.')}: offset \\d+: record of \\d+ bytes runs past the end of the file`));
    const lt = path.join(dir, 'lt.pcap');
    const hdr = Buffer.from(bytes.subarray(0, 24));
    hdr.writeUInt32LE(147, 20);
    fs.writeFileSync(lt, hdr);
    assert.match(run('inspect', lt).stderr, /lt\.pcap: offset 20: unsupported link type 147/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('check reports rules, table size and warnings; errors exit 1 as FILE:LINE:COL lines', () => {
  const ok = run('check', EXAMPLE);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /freeswan-gateway\.yaml: 11 rules, 1 sets, default accept; table \d+ bytes/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-cli-'));
  try {
    const warn = path.join(dir, 'w.yaml');
    fs.writeFileSync(warn, 'default: drop\nrules:\n  - name: all-udp\n    proto: udp\n    action: accept\n  - name: ike\n    proto: udp\n    dport: 500\n    action: drop\n  - name: never\n    family: 4\n    src: 2001:db8::1\n    action: drop\n');
    const w = run('check', warn);
    assert.equal(w.code, 0);
    assert.ok(w.stdout.includes(`${warn}:6:5: warning: rule "ike": is shadowed by rule "all-udp" (line 3) and never decides`), w.stdout);
    assert.ok(w.stdout.includes(`${warn}:10:5: warning: rule "never": can never match (its conditions exclude each other)`), w.stdout);
    fs.writeFileSync(warn, 'default: drop\nrules:\n  - name: x\n    action: count\n  - name: x\n    action: drop\n');
    assert.match(run('check', warn).stdout, /w\.yaml:5:5: warning: rule "x": shares its name with rule 1 \(line 3\)/);
    const bad = path.join(dir, 'b.yaml');
    fs.writeFileSync(bad, 'default: drop\nrules:\n  - dport: 99999\n    action: accept\n');
    const b = run('check', bad);
    assert.equal(b.code, 1);
    assert.equal(b.stderr.trim(), `${bad}:3:12: port: 99999 is out of range (0-65535)`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('classify --json agrees with the reference evaluator on every frame of the corpus', () => {
  const policy = loadPolicyFile(EXAMPLE);
  const pcaps = fixtureCaptures();
  assert.equal(pcaps.length, PCAP_COUNT);
  let compared = 0;
  for (const name of pcaps) {
    const file = path.join(PCAPS, name);
    const r = run('classify', EXAMPLE, '--pcap', file, '--json', '--in', 'eth0', '--ctstate', 'new');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const frames = readCapture(file);
    assert.equal(lines.length, frames.length);
    frames.forEach((f, i) => {
      const d = referenceEvaluate(policy, referenceDecode(f.linkType, f.data), { in: 'eth0', ctstate: 2 });
      const rule = d.rule >= 0 ? policy.rules[d.rule] : null;
      assert.deepEqual(lines[i], { index: i, verdict: d.verdict, rule: rule ? ruleLabel(rule, d.rule) : null, line: rule ? rule.line : null, mark: d.mark }, `${name} frame ${i}`);
      compared++;
    });
  }
  assert.ok(compared >= 170, `compared ${compared} frames`);
});

test('explain walks the rules in order and names the failing condition', () => {
  const r = run('explain', EXAMPLE, '--pcap', path.join(PCAPS, 'isakmp4500.pcap'), '--index', '17');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /rule "ike-from-gateways" \(line 22\): no: src does not hold/);
  assert.match(r.stdout, /rule "ike-from-unknown" \(line 33\): MATCH: drop/);
  assert.match(r.stdout, /verdict: drop by rule "ike-from-unknown" \(line 33\)/);
  const hex = run('explain', EXAMPLE, '--hex', '4500001c000000004001000008080808c0000201' + '08000000' + '00000000');
  assert.match(hex.stdout, /verdict: accept by rule "icmp-needed"/);
});

test('import iptables prints a policy; bad files exit 1 with FILE:LINE: unsupported', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-cli-'));
  try {
    const f = path.join(dir, 'rules.v4');
    fs.writeFileSync(f, '*filter\n:INPUT DROP [0:0]\n-A INPUT -p udp -m udp --dport 500 -m comment --comment "ike" -j ACCEPT\n-A INPUT -m recent --set\nCOMMIT\n');
    const bad = run('import', 'iptables', f);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim(), `${f}:4: unsupported match -m recent`);
    fs.writeFileSync(f, '*filter\n:INPUT DROP [0:0]\n-A INPUT -p udp -m udp --dport 500 -m comment --comment "ike" -j ACCEPT\nCOMMIT\n');
    const good = run('import', 'iptables', f);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /default: drop/);
    const yaml = path.join(dir, 'p.yaml');
    fs.writeFileSync(yaml, good.stdout);
    assert.equal(run('check', yaml).code, 0);
    const cls = run('classify', f, '--iptables', '--pcap', path.join(PCAPS, 'ikev2four.pcap'), '--json');
    assert.equal(cls.code, 0, cls.stderr);
    // The comment is not a rule name (one iptables rule may become several): rules are labelled by position.
    assert.deepEqual(JSON.parse(cls.stdout.split('\n')[0]), { index: 0, verdict: 'accept', rule: 2, line: 3, mark: null });
    const withRecent = path.join(dir, 'recent.v4');
    fs.writeFileSync(withRecent, '*filter\n:INPUT DROP [0:0]\n-A INPUT -p udp -m udp --dport 500 -j ACCEPT\n-A INPUT -m recent --set\nCOMMIT\n');
    const skipped = run('import', 'iptables', withRecent, '--skip-unsupported');
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.equal(skipped.stderr.trim(), `${withRecent}:4: warning: unsupported match -m recent: rule left out`);
    assert.match(skipped.stdout, /iptables-legacy semantics/);
    assert.match(run('import', 'iptables', withRecent, '--skip-unsupported', '--backend', 'nft').stdout, /iptables-nft semantics/);
    assert.equal(run('import', 'iptables', withRecent, '--backend', 'bsd').code, 2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('classify --classbench prints the first matching rule of every trace line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-cli-'));
  try {
    const rulesFile = path.join(CLASSBENCH, 'acl1_1k');
    const policy = loadClassbenchRules(rulesFile);
    // A small trace: points inside chosen rules plus misses.
    const lines: string[] = [];
    const expect: (number | null)[] = [];
    for (let i = 0; i < policy.rules.length; i += 37) {
      const c = policy.rules[i].conditions;
      const addr = (x: typeof c.src): number => {
        if (!x || 'sets' in x) return 0x01020304;
        const it = x.values[0];
        if (it.kind !== 'prefix') return 0;
        const b = it.prefix.bytes;
        return ((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3];
      };
      const port = (x: typeof c.sport): number => (x ? x.values[0].lo : 1234);
      const proto = c.proto ? c.proto.values[0] : 6;
      lines.push(`${addr(c.src)}\t${addr(c.dst)}\t${port(c.sport)}\t${port(c.dport)}\t${proto}\t0\t${i}`);
    }
    const trace = path.join(dir, 'trace');
    fs.writeFileSync(trace, lines.join('\n') + '\n');
    const r = run('classify', '--classbench', rulesFile, '--trace', trace, '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(out.length, lines.length);
    // Independent check: the first rule, in file order, whose fields all contain the point.
    out.forEach((o, k) => {
      const [src, dst, sp, dp, pr] = lines[k].split('\t').map(Number);
      const first = policy.rules.findIndex((rule) => {
        const c = rule.conditions;
        const inAddr = (x: typeof c.src, v: number): boolean => {
          if (!x || 'sets' in x) return true;
          const it = x.values[0];
          if (it.kind !== 'prefix') return true;
          const b = it.prefix.bytes;
          const base = ((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3];
          return v >= base && v < base + 2 ** (32 - it.prefix.length);
        };
        const inPort = (x: typeof c.sport, v: number): boolean => !x || (v >= x.values[0].lo && v <= x.values[0].hi);
        return inAddr(c.src, src) && inAddr(c.dst, dst) && inPort(c.sport, sp) && inPort(c.dport, dp) && (!c.proto || c.proto.values.includes(pr));
      });
      expect.push(first < 0 ? null : first);
      assert.deepEqual(o, { index: k, rule: expect[k] });
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('unknown commands and options are usage errors (exit 2)', () => {
  assert.equal(run('frobnicate').code, 2);
  const r = run('inspect', 'x.pcap', '--jsn');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^nfsieve inspect: Unknown option '--jsn'/);
});
