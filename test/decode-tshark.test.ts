import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { haveTshark, compareFile } from './support/tshark';
import { PCAPS, fixtureCaptures } from './support/compare';
import { writePcap } from '../src/capture/pcap';
import { Rng, randomIpPacket, frame } from './support/packets';

const CI = process.env.CI === 'true';
const available = haveTshark();
if (CI && !available) throw new Error('tshark is required in CI (apt-get install -y tshark)');

test('inspect --json agrees with tshark on every frame of the fixtures', { skip: !available && 'tshark not installed (apt-get install tshark)' }, () => {
  const files = fixtureCaptures();
  const problems = files.flatMap((f) => compareFile(path.join(PCAPS, f)));
  assert.deepEqual(problems, []);
});

test('inspect --json agrees with tshark on 3,000 generated IPsec, ICMP and transport frames', { skip: !available && 'tshark not installed (apt-get install tshark)' }, () => {
  const seed = Number(process.env.NFSIEVE_SEED ?? 20261127);
  const rng = new Rng(seed);
  const frames = Array.from({ length: 3000 }, () => ({ data: frame(1, randomIpPacket(rng)) }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-tshark-'));
  try {
    const file = path.join(dir, 'generated.pcap');
    fs.writeFileSync(file, writePcap(frames, 1));
    assert.deepEqual(compareFile(file), [], `seed ${seed}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
