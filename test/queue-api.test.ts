/**
 * attach() as a library, inside a lab namespace (root): unref'd, safe under
 * worker_threads, and immune to throwing listeners. And the demo.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync, spawn } from 'node:child_process';
import { Lab, labSkip, sh, toolSkip, TOOLS } from './support/netns';
import { ROOT } from './support/compare';
import { exited, outputContains } from './support/child';

const skip = labSkip();
const SCRIPT = path.join(ROOT, 'build-test', 'test', 'support', 'attach-script.js');
let lab: Lab;
let ns: string;

before(() => {
  if (skip) return;
  lab = new Lab(`nfsa${process.pid % 10000}`);
  ns = lab.ns('solo');
});
after(() => { if (lab) lab.cleanup(); });

const runIn = (mode: string): { status: number | null; stdout: string; stderr: string } => {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, SCRIPT, mode, '9'], { encoding: 'utf8', timeout: 20000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

test('an attached queue does not keep the process alive on its own', { skip }, () => {
  const r = runIn('unref');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'attached\n');
});

test('a throwing stats listener never takes the process down', { skip }, () => {
  const r = runIn('throwing');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^survived [1-9]\d*\n$/);
});

test('attach and close work from a worker thread', { skip }, () => {
  const r = runIn('worker');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'worker attached queue 9 and closed\n');
});

test('nfsieve demo tells the story: refused, admitted live, removed, a flood shed while the gateway passes; the lab is removed', { skip }, () => {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'nfsieve.js'), 'demo', '--duration', '1', '--json'], { encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, r.stderr);
  const steps = Object.fromEntries(r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((o) => o.event === 'step').map((o) => [o.name, o]));
  assert.deepEqual(Object.keys(steps), ['known-gateway', 'unknown-refused', 'admitted', 'removed', 'flood']);
  assert.deepEqual(steps['known-gateway'].delta, { 'ike-from-gateways': 15, 'esp-from-gateways': 20 });
  assert.deepEqual(steps['unknown-refused'].delta, { 'ike-from-unknown': 10, 'esp-from-unknown': 20 });
  assert.equal(steps.admitted.command, 'nfsieve set add gateways 10.250.2.2');
  assert.deepEqual(steps.admitted.delta, { 'ike-from-gateways': 10, 'esp-from-gateways': 20 });
  assert.equal(steps.removed.command, 'nfsieve set del gateways 10.250.2.2');
  assert.deepEqual(steps.removed.delta, { 'ike-from-unknown': 10, 'esp-from-unknown': 20 });
  const flood = steps.flood.delta;
  // The gateway's 50 IKE_SA_INIT and 50 IKE_AUTH pass in full, its ESP too.
  assert.equal(flood['ike-from-gateways'], 100);
  assert.equal(flood['esp-from-gateways'], 100);
  // 50,000 spoofed IKE_SA_INIT: each met the per-source limit, then the total; most are shed.
  assert.equal(flood['ike-sa-init-per-source'] + flood['ike-sa-init-source-over'], 50000);
  assert.equal(flood['ike-sa-init-unknown'] + flood['ike-sa-init-shed'], flood['ike-sa-init-per-source']);
  assert.ok(flood['ike-sa-init-source-over'] > 10000 && flood['ike-sa-init-unknown'] < 10000, JSON.stringify(flood));
  const overLimit = Object.fromEntries(steps.flood.rules.map((x: { rule: string; overLimit: number }) => [x.rule, x.overLimit]));
  assert.equal(overLimit['ike-sa-init-per-source'], flood['ike-sa-init-source-over']);
  assert.equal(sh(['ip', 'netns', 'list']).includes(`nfsieve-demo${r.pid}`), false);
});

test('the demo piped: lines, no screen control; on a terminal: redrawn in place', { skip }, () => {
  const piped = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'nfsieve.js'), 'demo', '--duration', '1'], { encoding: 'utf8', timeout: 120000 });
  assert.equal(piped.status, 0, piped.stderr);
  assert.equal(piped.stdout.includes('\x1b['), false);
  assert.match(piped.stdout, /\[3\] 10\.250\.2\.2 admitted live[^\n]*\n {4}\$ nfsieve set add gateways 10\.250\.2\.2\n {4}ike-from-gateways \+10, esp-from-gateways \+20\n/);
  assert.match(piped.stdout, /done: the lab is removed\.\n$/);
  // script(1) gives the demo a terminal: each step redraws one screen from its top.
  const tty = spawnSync('script', ['-qec', `${process.execPath} ${path.join(ROOT, 'bin', 'nfsieve.js')} demo --duration 1`, '/dev/null'], { encoding: 'utf8', timeout: 120000 });
  assert.equal(tty.status, 0, tty.stderr);
  const screens = tty.stdout.split('\x1b[H\x1b[2J');
  assert.equal(screens.length - 1, 6, 'five steps and one second of traffic, one screen each');
  assert.match(screens[5], /^lab: [^\n]*\r?\n\r?\n\[1\] the known gateway[\s\S]*\[5\] IKE_SA_INIT flood[\s\S]*ike-sa-init-shed/);
});

test('Ctrl-C during the demo still removes the lab', { skip }, async () => {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'nfsieve.js'), 'demo', '--duration', '30'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await outputContains(child, child.stdout, 'lab:', 60000);
  child.kill('SIGINT');
  const code = await exited(child);
  assert.equal(code, 130);
  assert.equal(sh(['ip', 'netns', 'list']).includes(`nfsieve-demo${child.pid}`), false);
});

/**
 * A copy of what `nfsieve demo` loads, in a fresh temp directory every user
 * can read: the check must not depend on the checkout's own permissions.
 */
function worldReadableCopy(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-nobody-'));
  for (const part of ['package.json', 'bin', 'dist', 'examples', path.join('node_modules', 'yaml'), path.join('node_modules', 'node-gyp-build')]) {
    fs.cpSync(path.join(ROOT, part), path.join(dir, part), { recursive: true });
  }
  const open = (p: string): void => {
    fs.chmodSync(p, fs.statSync(p).isDirectory() ? 0o755 : 0o644);
    if (fs.statSync(p).isDirectory()) for (const e of fs.readdirSync(p)) open(path.join(p, e));
  };
  open(dir);
  return dir;
}

const asRoot = process.getuid?.() === 0;
const noSetpriv = asRoot && toolSkip([TOOLS.setpriv]);

test('without root the demo says so and points to nfsieve bench', { skip: noSetpriv }, () => {
  const dir = worldReadableCopy();
  try {
    const cli = [process.execPath, path.join(dir, 'bin', 'nfsieve.js'), 'demo'];
    // As root, drop to nobody; otherwise this process already lacks root.
    const argv = asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...cli] : cli;
    const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', cwd: dir });
    assert.equal(r.error, undefined);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /needs root[\s\S]*nfsieve bench/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
