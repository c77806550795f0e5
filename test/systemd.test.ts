import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT } from './support/compare';
import { Lab, labSkip, sh } from './support/netns';

const UNIT = path.join(ROOT, 'examples', 'systemd', 'nfsieve.service');
const INSTALLED = '/usr/local/bin/nfsieve';
const BIN = path.join(ROOT, 'bin', 'nfsieve.js');

function analyzeMissing(): string | false {
  if (spawnSync('systemd-analyze', ['--version']).status === 0) return false;
  const why = 'systemd-analyze is not installed (apt-get install systemd)';
  if (process.env.CI === 'true') throw new Error(why);
  return why;
}

/** The unit with the installed path pointing at this checkout's bin/nfsieve.js. */
function localUnit(dir: string): string {
  const file = path.join(dir, 'nfsieve.service');
  fs.writeFileSync(file, fs.readFileSync(UNIT, 'utf8').split(INSTALLED).join(BIN));
  return file;
}

function settings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  }
  return out;
}

test('the systemd unit: hook before start, removal after stop, restart on failure, CAP_NET_ADMIN alone, sandboxed', () => {
  const s = settings(fs.readFileSync(UNIT, 'utf8'));
  assert.match(s.get('ExecStartPre')![0], /nfsieve hook "\$NFSIEVE_POLICY" --queue "\$NFSIEVE_QUEUE" \| \/bin\/sh -e/);
  assert.match(s.get('ExecStopPost')![0], /nfsieve hook --delete \| \/bin\/sh -e/);
  assert.match(s.get('ExecStart')![0], /nfsieve run \$\{NFSIEVE_POLICY\} --queue \$\{NFSIEVE_QUEUE\}/);
  assert.deepEqual(s.get('Restart'), ['on-failure']);
  assert.deepEqual(s.get('AmbientCapabilities'), ['CAP_NET_ADMIN']);
  assert.deepEqual(s.get('CapabilityBoundingSet'), ['CAP_NET_ADMIN']);
  assert.deepEqual(s.get('RestrictAddressFamilies'), ['AF_UNIX AF_NETLINK AF_INET AF_INET6']);
  assert.deepEqual(s.get('RuntimeDirectory'), ['nfsieve']);
  for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes']]) assert.deepEqual(s.get(k), [v], k);
  assert.equal(s.has('MemoryDenyWriteExecute'), false, 'V8 needs W+X pages');
});

test('systemd-analyze verify accepts the unit without a warning', { skip: analyzeMissing() }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-unit-'));
  try {
    const r = spawnSync('systemd-analyze', ['verify', localUnit(dir)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'verify prints unknown keys and bad values as warnings');
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

const skip = labSkip();

test('the unit\'s ExecStartPre installs the hook and its ExecStopPost removes it (run in a namespace)', { skip }, () => {
  const lab = new Lab(`nfsd${process.pid % 10000}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-unit-'));
  try {
    const ns = lab.ns('svc');
    const s = settings(fs.readFileSync(localUnit(dir), 'utf8'));
    const env = { NFSIEVE_POLICY: path.join(ROOT, 'examples', 'freeswan-gateway.yaml'), NFSIEVE_QUEUE: '7' };
    // systemd's "+" prefix is a privilege flag, not part of the command; the rest is a shell command line.
    const cmd = (line: string): string => {
      const m = /^\+\/bin\/sh -ec '(.*)'$/.exec(line);
      assert.ok(m, line);
      return m[1];
    };
    const run = (line: string): void => {
      const r = spawnSync('ip', ['netns', 'exec', ns, '/bin/sh', '-ec', cmd(line)], { encoding: 'utf8', env: { ...process.env, ...env } });
      assert.equal(r.status, 0, r.stderr);
    };
    run(s.get('ExecStartPre')![0]);
    run(s.get('ExecStartPre')![0]); // a restart after a crash that skipped ExecStopPost
    const save = sh(['iptables-save'], { ns });
    assert.equal(save.split('\n').filter((l) => l === '-A INPUT -j NFSIEVE').length, 1, save);
    assert.ok(save.includes('--queue-num 7 --queue-bypass'), save);
    run(s.get('ExecStopPost')![0]);
    assert.equal(/NFSIEVE/.test(sh(['iptables-save'], { ns }) + sh(['ip6tables-save'], { ns })), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    lab.cleanup();
  }
});
