/**
 * CLI conventions: per-command help, node:util argument parsing, a quiet
 * exit on a closed pipe, '-' for stdin, streamed captures in bounded memory,
 * truncated captures, JSON-lines output with errors, strict JSON policies,
 * and exit statuses decided by error codes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { ROOT, PCAPS, UNDER_ASAN } from './support/compare';
import { readCapture, writePcap, CaptureParser, CaptureError } from '../src/capture/pcap';
import { COMMAND_NAMES, COMMAND_FLAGS, EXIT_STATUS } from '../src/cli/main';
import { FLAG_HELP } from '../src/cli/help';
import { NfsieveError, errorCode } from '../src/errors';
import { native } from '../src/native';
import { ipPacket, udp, frame } from './support/packets';

const BIN = path.join(ROOT, 'bin', 'nfsieve.js');
const EXAMPLE = path.join(ROOT, 'examples', 'freeswan-gateway.yaml');
const ISAKMP = path.join(PCAPS, 'isakmp4500.pcap');

function run(args: string[], input?: Buffer | string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', input, maxBuffer: 1 << 28 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-conv-'));
}

test('every command prints its own usage for --help and -h, exit 0, before reading any argument', () => {
  assert.ok(COMMAND_NAMES.length >= 9);
  for (const name of COMMAND_NAMES) {
    for (const flag of ['--help', '-h']) {
      const r = run([name, flag]);
      assert.equal(r.code, 0, `${name} ${flag}: ${r.stderr}`);
      assert.ok(r.stdout.startsWith(`usage: nfsieve ${name}`), `${name} ${flag}: ${r.stdout}`);
      assert.match(r.stdout, /-h, --help/);
      assert.equal(r.stderr, '');
    }
  }
  // Every flag is listed with what it does, and no line describes a flag nobody takes.
  const used = new Set<string>();
  for (const [name, flags] of Object.entries(COMMAND_FLAGS)) {
    const usage = run([name, '--help']).stdout;
    for (const flag of Object.keys(flags)) {
      used.add(flag);
      const help = FLAG_HELP[flag];
      assert.ok(help, `${name} --${flag} has no line in FLAG_HELP`);
      const line = usage.split('\n').find((l) => l.trimStart().startsWith(`--${flag} `) || l.trim() === `--${flag}`);
      assert.ok(line?.includes(help.text), `${name} --help lists --${flag} without its text: ${line}`);
    }
  }
  assert.deepEqual(Object.keys(FLAG_HELP).filter((f) => !used.has(f)), []);
  // -h is not a file name, and help wins over missing arguments.
  assert.equal(run(['check', '-h', 'no-such.yaml']).code, 0);
});

test('arguments: unknown options, missing values and values on booleans are usage errors (exit 2)', () => {
  const unknown = run(['inspect', ISAKMP, '--jsn']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^nfsieve inspect: Unknown option '--jsn'/);
  const missing = run(['classify', EXAMPLE, '--pcap']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--pcap <value>' argument missing/);
  assert.equal(run(['inspect', ISAKMP, '--json=yes']).code, 2);
  // --name=value and a lone '-' (stdin) both parse.
  assert.equal(run(['classify', EXAMPLE, `--pcap=${ISAKMP}`]).code, 0);
});

test('inspect | head -1 exits quietly, as tcpdump does (status 141, nothing on stderr)', () => {
  const dir = tmpdir();
  try {
    const file = path.join(dir, 'big.pcap');
    const ip = ipPacket({ family: 4, src: new Uint8Array([10, 0, 0, 1]), dst: new Uint8Array([10, 0, 0, 2]), proto: 17, upper: udp(500, 500, new Uint8Array(40)) });
    fs.writeFileSync(file, writePcap(Array.from({ length: 200_000 }, () => ({ data: frame(1, ip) })), 1));
    const err = path.join(dir, 'stderr');
    const script = `"${process.execPath}" "${BIN}" inspect "${file}" 2>"${err}" | head -1; echo "status=\${PIPESTATUS[0]}"`;
    const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 2, r.stdout);
    assert.match(lines[0], /^0 \S+ IP 10\.0\.0\.1\.500 > 10\.0\.0\.2\.500/);
    assert.equal(lines[1], 'status=141');
    assert.equal(fs.readFileSync(err, 'utf8'), '');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("'-' reads the capture from stdin for inspect and classify", () => {
  const bytes = fs.readFileSync(ISAKMP);
  for (const args of [['inspect'], ['inspect', '--json'], ['classify', EXAMPLE, '--json', '--pcap']]) {
    const fromFile = run([...args, ISAKMP]);
    const fromStdin = run([...args, '-'], bytes);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.equal(fromStdin.stdout.trim().split('\n').length, 35);
    assert.equal(fromStdin.stdout, fromFile.stdout, args.join(' '));
  }
});

test('a truncated capture prints every complete frame, then the warning, exit 1 (text and JSON lines)', () => {
  const dir = tmpdir();
  try {
    const bytes = fs.readFileSync(ISAKMP);
    const cut = path.join(dir, 'cut.pcap');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
    const whole = run(['inspect', ISAKMP]).stdout.split('\n');
    const text = run(['inspect', cut]);
    assert.equal(text.code, 1);
    const printed = text.stdout.trim().split('\n');
    assert.ok(printed.length >= 30 && printed.length < 35, `${printed.length} frames`);
    assert.deepEqual(printed, whole.slice(0, printed.length));
    assert.match(text.stderr, /^.*cut\.pcap: offset \d+: record of \d+ bytes runs past the end of the file \(\d+ left\)\n$/);
    const json = run(['inspect', cut, '--json']);
    assert.equal(json.code, 1);
    const lines = json.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, printed.length + 1);
    const last = lines[lines.length - 1];
    assert.equal(last.error.code, 'ECAPTURE');
    assert.equal(last.error.file, cut);
    assert.equal(typeof last.error.offset, 'number');
    assert.equal(json.stderr, '');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the incremental parser gives the same frames whatever the chunking, and keeps frames before a corruption', () => {
  const bytes = fs.readFileSync(ISAKMP);
  const want = readCapture(ISAKMP).map((f) => Buffer.from(f.data).toString('hex'));
  for (const size of [1, 7, 16, 100, 4096]) {
    const p = new CaptureParser('x');
    const got: string[] = [];
    for (let at = 0; at < bytes.length; at += size) for (const f of p.push(bytes.subarray(at, at + size))) got.push(Buffer.from(f.data).toString('hex'));
    p.end();
    assert.deepEqual(got, want, `chunks of ${size}`);
  }
  // A record claiming 1 GiB is refused at once, after the frames before it.
  const bad = Buffer.from(bytes);
  const second = 24 + 16 + bad.readUInt32LE(24 + 8);
  bad.writeUInt32LE(1 << 30, second + 8);
  const p = new CaptureParser('bad.pcap');
  assert.equal(p.push(bad).length, 1);
  assert.throws(() => p.end(), (e: Error) => e instanceof CaptureError && e.code === 'ECAPTURE' && /larger than any capture record/.test(e.message));
});

test('a 1 GiB capture streamed through stdin is read in bounded memory (peak RSS under 200 MB)', { skip: UNDER_ASAN && 'resident memory is measured without ASan (its shadow and quarantine count in RSS)' }, async () => {
  const ip = ipPacket({ family: 4, src: new Uint8Array([10, 0, 0, 1]), dst: new Uint8Array([10, 0, 0, 2]), proto: 17, upper: udp(4500, 4500, new Uint8Array(65000)) });
  const record = writePcap([{ data: frame(1, ip) }], 1);
  const header = record.subarray(0, 24);
  const one = record.subarray(24);
  const copies = Math.ceil((1 << 30) / one.length);
  const block = Buffer.concat(Array.from({ length: 64 }, () => one));
  const child = spawn(process.execPath, [BIN, 'classify', EXAMPLE, '--pcap', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let peakKb = 0;
  let lines = 0;
  let err = '';
  child.stdout.on('data', (d: Buffer) => { for (const b of d) if (b === 10) lines++; });
  child.stderr.on('data', (d) => (err += d));
  const sample = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peakKb = Math.max(peakKb, Number(m[1]));
    } catch { /* exited */ }
  }, 50);
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const write = (b: Buffer): Promise<void> => new Promise((resolve) => { if (child.stdin.write(b)) resolve(); else child.stdin.once('drain', resolve); });
  await write(header);
  for (let n = 0; n < copies; n += 64) await write(n + 64 <= copies ? block : Buffer.concat(Array.from({ length: copies - n }, () => one)));
  child.stdin.end();
  const code = await exit;
  clearInterval(sample);
  assert.equal(code, 0, err);
  assert.equal(lines, copies);
  assert.ok(peakKb > 0, 'RSS sampled');
  assert.ok(peakKb < 200 * 1024, `peak RSS ${Math.round(peakKb / 1024)} MB for ${copies} frames (${Math.round(copies * one.length / 2 ** 20)} MiB)`);
});

test('check --json and explain --json are JSON lines, errors included', () => {
  const dir = tmpdir();
  try {
    const ok = run(['check', EXAMPLE, '--json']);
    assert.equal(ok.code, 0);
    assert.equal(JSON.parse(ok.stdout).rules > 0, true);
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, 'default: drop\nrules:\n  - proto: udp\n    dport: 99999\n    action: accept\n  - proto: tcp\n    sport: nope\n    action: drop\n');
    const r = run(['check', bad, '--json']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, '');
    const errors = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(errors.length, 2);
    assert.deepEqual(Object.keys(errors[0].error), ['code', 'message', 'file', 'line', 'col']);
    assert.deepEqual(errors.map((e) => [e.error.code, e.error.file, e.error.line]), [['EPOLICY', bad, 4], ['EPOLICY', bad, 7]]);
    const usage = run(['check', '--json']);
    assert.equal(usage.code, 2);
    assert.equal(JSON.parse(usage.stdout).error.code, 'EUSAGE');
    const ex = run(['explain', EXAMPLE, '--pcap', ISAKMP, '--index', '17', '--json']);
    assert.equal(ex.code, 0, ex.stderr);
    const steps = ex.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(steps[0].decoded.natt, 'keepalive');
    assert.deepEqual(steps[1], { rule: 'ike-from-gateways', line: 22, match: false, failed: 'src', packet: '"192.1.2.254"' });
    assert.deepEqual(steps[steps.length - 1], { verdict: 'drop', rule: 'ike-from-unknown', line: 33, mark: null });
    const exBad = run(['explain', EXAMPLE, '--pcap', ISAKMP, '--index', '99', '--json']);
    assert.equal(exBad.code, 2);
    assert.match(JSON.parse(exBad.stdout).error.message, /has 35 frames/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('JSON policies are strict JSON: a trailing comma is refused at its line:column; YAML errors print the position once', () => {
  const dir = tmpdir();
  try {
    const good = '{\n  "default": "drop",\n  "rules": [\n    {"proto": "udp", "dport": 500, "action": "accept"}\n  ]\n}\n';
    const f = path.join(dir, 'p.json');
    fs.writeFileSync(f, good);
    assert.equal(run(['check', f]).code, 0);
    fs.writeFileSync(f, good.replace('"accept"}\n', '"accept"},\n'));
    const r = run(['check', f]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `${f}:5:3: not JSON: trailing comma before ']' (JSON allows none)\n`);
    for (const [text, where] of [["{'default': 'drop'}", ':1:2:'], ['{"default": "drop"} // c', ':1:21:'], ['{"a": 01}', ':1:8:']]) {
      fs.writeFileSync(f, text);
      const e = run(['check', f]);
      assert.equal(e.code, 1);
      assert.ok(e.stderr.startsWith(f + where), `${text}: ${e.stderr}`);
    }
    const y = path.join(dir, 'p.yaml');
    fs.writeFileSync(y, 'default: drop\nrules:\n  - proto: udp\n    dport: [500,\n  - x\n');
    const ye = run(['check', y]);
    assert.equal(ye.code, 1);
    const first = ye.stderr.split('\n')[0];
    assert.match(first, new RegExp(`^${y.replace(/[.]/g, '\\.')}:\\d+:\\d+: `));
    assert.doesNotMatch(ye.stderr, /at line \d+, column \d+/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('errors carry codes, and each code has one exit status', () => {
  assert.throws(() => new (native().Classifier)(new Uint8Array(64)), (e: Error) => errorCode(e) === 'ETABLE');
  assert.equal(errorCode(new NfsieveError('EPOLICY', 'x')), 'EPOLICY');
  assert.equal(errorCode(new Error('invalid table: looks like one')), null);
  assert.equal(errorCode(Object.assign(new Error('x'), { code: 'ENOENT' })), null);
  assert.deepEqual(EXIT_STATUS, { EUSAGE: 2, EVALUE: 2, EPOLICY: 1, ECAPTURE: 1, ETABLE: 1, EQUEUE: 1, ECONTROL: 1 });
  // A capture error exits 1 with its file and offset; an unknown command 2.
  const dir = tmpdir();
  try {
    const junk = path.join(dir, 'junk.pcap');
    fs.writeFileSync(junk, 'not a capture at all');
    const r = run(['inspect', junk]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `${junk}: offset 0: not a pcap or pcapng file (magic 0x6e6f7420)\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
