/**
 * `run` asks the kernel for conntrack state only when the policy reads it,
 * and says so when the kernel cannot attach it to queued packets (no NFQUEUE
 * conntrack glue: nf_conntrack_netlink absent). The kernel's own answer is
 * read independently from /sys/module after the attempt (the kernel tries
 * to load the module itself), so either kernel checks the matching branch.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, labSkip } from './support/netns';
import { ROOT } from './support/compare';
import { exited } from './support/child';

const skip = labSkip();
const BIN = path.join(ROOT, 'bin', 'nfsieve.js');
let lab: Lab;
let ns: string;

before(() => {
  if (skip) return;
  lab = new Lab(`nfct${process.pid % 10000}`);
  ns = lab.ns('gw');
});
after(() => { if (lab) lab.cleanup(); });

/** Start run on a policy, wait until it attached, stop it; its stderr. */
async function runOnce(policy: string, queue: number): Promise<string> {
  const file = lab.file(`p${queue}.yaml`, policy);
  const child = lab.spawn(ns, [process.execPath, BIN, 'run', file, '--queue', String(queue), '--no-control', '--stats-every', '0']);
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.resume();
  const done = exited(child);
  for (let t = 0; !/attached/.test(err) && child.exitCode === null && t < 150; t++) await new Promise((r) => setTimeout(r, 100));
  assert.match(err, /attached/, err);
  child.kill('SIGINT');
  await done;
  return err;
}

const WARNING = /warning: this kernel cannot attach conntrack state to queued packets/;

test('a policy that reads ctstate: a warning exactly when the kernel has no NFQUEUE conntrack glue; none without ctstate', { skip, timeout: 60_000 }, async () => {
  const withCt = await runOnce('default: accept\nrules:\n  - name: new-from-tunnel\n    in: ipsec+\n    ctstate: new\n    action: drop\n', 11);
  const glue = fs.existsSync('/sys/module/nf_conntrack_netlink');
  if (glue) assert.doesNotMatch(withCt, WARNING, withCt);
  else assert.match(withCt, WARNING, withCt);
  const without = await runOnce('default: accept\nrules:\n  - name: ike\n    proto: udp\n    dport: 500\n    action: accept\n', 12);
  assert.doesNotMatch(without, /conntrack/, without);
});
