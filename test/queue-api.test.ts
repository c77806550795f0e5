/**
 * attach() as a library, inside a lab namespace (root): unref'd, safe under
 * worker_threads, and immune to throwing listeners. And the demo.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync, spawn } from 'node:child_process';
import { Lab, labSkip, sh } from './support/netns';
import { ROOT } from './support/compare';

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
  await new Promise<void>((resolve) => child.stdout.on('data', (d) => { if (String(d).includes('lab:')) resolve(); }));
  child.kill('SIGINT');
  const code = await new Promise((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 130);
  assert.equal(sh(['ip', 'netns', 'list']).includes('nfsieve-demo'), false);
});

test('without root the demo says so and points to nfsieve bench', () => {
  if (process.getuid?.() === 0) {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, path.join(ROOT, 'bin', 'nfsieve.js'), 'demo'], { encoding: 'utf8' });
    if (r.error) return; // setpriv missing: nothing to show
    assert.equal(r.status, 1);
    assert.match(r.stderr, /needs root[\s\S]*nfsieve bench/);
  }
});
