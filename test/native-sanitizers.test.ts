import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ROOT, PCAPS, fixtureCaptures } from './support/compare';

const CI = process.env.CI === 'true';
function have(cmd: string): boolean {
  try { execFileSync(cmd, ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}
const available = have('cmake') && have('c++');
if (CI && !available) throw new Error('cmake and a C++ compiler are required in CI');

const BUILD = path.join(ROOT, 'build-asan');
let built = false;
function build(): void {
  if (built) return;
  execFileSync('cmake', ['-S', ROOT, '-B', BUILD, '-DCMAKE_BUILD_TYPE=Debug'], { stdio: 'ignore' });
  execFileSync('cmake', ['--build', BUILD, '-j2'], { stdio: ['ignore', 'ignore', 'inherit'] });
  built = true;
}

test('under AddressSanitizer the corpus decodes and the crash reproducers are malformed', { skip: !available && 'cmake or c++ missing (apt-get install cmake g++)' }, () => {
  build();
  const files = fixtureCaptures().map((f) => path.join(PCAPS, f));
  const out = execFileSync(path.join(BUILD, 'decode_pcap'), files, { encoding: 'utf8' });
  const lines = out.trim().split('\n').map((l) => l.split(' '));
  const verdict = (name: string): string => lines.find((l) => l[0].endsWith(name) && l[1] === '0')![4];
  assert.equal(verdict('esp_truncated.pcap'), 'udp-length');
  assert.equal(verdict('ip6_frag_asan.pcap'), 'ext-truncated');
  assert.equal(verdict('isakmp-delete-segfault.pcap'), 'udp-length');
  assert.ok(lines.length > 150);
});

test('under AddressSanitizer 2,000,000 random frames decode without a fault', { skip: !available && 'cmake or c++ missing (apt-get install cmake g++)' }, () => {
  build();
  const seed = String(process.env.NFSIEVE_SEED ?? Date.now() % 1e9);
  const out = execFileSync(path.join(BUILD, 'decode_fuzz'), ['2000000', seed], { encoding: 'utf8' });
  assert.match(out, /^decoded 2000000 frames, \d+ malformed/, `seed ${seed}`);
});

test('under AddressSanitizer 200,000 random named-set changes agree with a plain set model', { skip: !available && 'cmake or c++ missing (apt-get install cmake g++)' }, () => {
  build();
  const seed = String(process.env.NFSIEVE_SEED ?? Date.now() % 1e9);
  const out = execFileSync(path.join(BUILD, 'sets_stress'), ['200000', seed], { encoding: 'utf8' });
  assert.match(out, /^checked 200000 operations, \d+ members/, `seed ${seed}`);
});
