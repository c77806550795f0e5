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

test('nfsieve demo runs its lab, shows counters, and removes everything', { skip }, () => {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'nfsieve.js'), 'demo', '--duration', '2', '--json'], { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  const stats = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((o) => o.event === 'stats' || o.event === 'final');
  const last = stats[stats.length - 1];
  const hits = Object.fromEntries(last.rules.map((x: { rule: string; packets: number }) => [x.rule, x.packets]));
  assert.ok(hits['ike-from-gateways'] > 0 && hits['ike-from-unknown'] > 0 && hits['icmp-unwanted'] > 0 && hits['traceroute'] > 0, JSON.stringify(hits));
  assert.equal(sh(['ip', 'netns', 'list']).includes('nfsieve-demo'), false);
});

test('Ctrl-C during the demo still removes the lab', { skip }, async () => {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'nfsieve.js'), 'demo', '--duration', '30'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await outputContains(child, child.stdout, 'lab:', 60000);
  child.kill('SIGINT');
  const code = await exited(child);
  assert.equal(code, 130);
  assert.equal(sh(['ip', 'netns', 'list']).includes('nfsieve-demo'), false);
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
