import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { haveTshark, compareFile, newStats, looseMalformed, CompareStats } from './support/tshark';
import { PCAPS, fixtureCaptures } from './support/compare';
import { writePcap } from '../src/capture/pcap';
import { Rng, randomIpPacket, randomFrameWide, frame } from './support/packets';

const CI = process.env.CI === 'true';
const available = haveTshark();
if (CI && !available) throw new Error('tshark is required in CI (apt-get install -y tshark)');

test('inspect --json agrees with tshark on every frame of the fixtures', { skip: !available && 'tshark not installed (apt-get install tshark)' }, () => {
  const files = fixtureCaptures();
  assert.ok(files.length > 0);
  const all = newStats();
  const problems = files.flatMap((f) => {
    const stats = newStats();
    const p = compareFile(path.join(PCAPS, f), stats);
    // Every IP frame compares at least its family and addresses.
    assert.ok(stats.fields >= 3 * stats.ipFrames, `${f}: only ${stats.fields} fields compared over ${stats.ipFrames} IP frames`);
    merge(all, stats);
    return p;
  });
  assert.deepEqual(problems, []);
  report('corpus', all);
  assert.ok(all.fields > 10 * files.length, `only ${all.fields} fields compared`);
});

function merge(into: CompareStats, s: CompareStats): void {
  into.frames += s.frames; into.ipFrames += s.ipFrames; into.fields += s.fields; into.onlyWireshark += s.onlyWireshark;
  for (const [k, m] of s.malformed) {
    const t = into.malformed.get(k) ?? { marked: 0, unmarked: 0 };
    t.marked += m.marked; t.unmarked += m.unmarked;
    into.malformed.set(k, t);
  }
}

function report(what: string, s: CompareStats): void {
  const kinds = [...s.malformed].map(([k, m]) => `${k} ${m.marked}/${m.marked + m.unmarked}`).join(', ');
  console.log(`# ${what}: ${s.frames} frames, ${s.ipFrames} IP, ${s.fields} fields compared; malformed marked by Wireshark too: ${kinds || 'none'}; marked by Wireshark only: ${s.onlyWireshark}`);
}

test('inspect --json agrees with tshark on 3,000 generated IPsec, ICMP and transport frames', { skip: !available && 'tshark not installed (apt-get install tshark)' }, () => {
  const seed = Number(process.env.NFSIEVE_SEED ?? 20261127);
  const rng = new Rng(seed);
  const frames = Array.from({ length: 3000 }, () => ({ data: frame(1, randomIpPacket(rng)) }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-tshark-'));
  try {
    const file = path.join(dir, 'generated.pcap');
    fs.writeFileSync(file, writePcap(frames, 1));
    const stats = newStats();
    assert.deepEqual(compareFile(file, stats), [], `seed ${seed}`);
    report('generated', stats);
    assert.equal(stats.frames, 3000);
    assert.ok(stats.fields >= 5 * stats.ipFrames, `only ${stats.fields} fields compared over ${stats.ipFrames} IP frames`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('malformed agrees with the markers of Wireshark on 3,000 header-chain frames at their length boundaries', { skip: !available && 'tshark not installed (apt-get install tshark)' }, () => {
  const seed = Number(process.env.NFSIEVE_SEED ?? 20261130);
  const rng = new Rng(seed);
  const frames = Array.from({ length: 3000 }, () => ({ data: frame(1, randomFrameWide(rng, 101).data) }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-tshark-'));
  try {
    const file = path.join(dir, 'chains.pcap');
    fs.writeFileSync(file, writePcap(frames, 1));
    const stats = newStats();
    const problems = compareFile(file, stats);
    report('header chains', stats);
    // Field-by-field agreement on these frames is open work (repeated fragment
    // headers, ESP deep in a chain, IPv4 lengths Wireshark refuses: docs/decoding.md);
    // what is asserted here is the malformed correspondence.
    const fieldDiffs = problems.filter((p) => !/: malformed: /.test(p));
    console.log(`# header chains: ${fieldDiffs.length} field disagreements not asserted yet, e.g. ${fieldDiffs.slice(0, 3).join('; ')}`);
    assert.deepEqual(problems.filter((p) => /: malformed: /.test(p)), [], `seed ${seed}`);
    assert.deepEqual(looseMalformed(stats), [], `seed ${seed}`);
    const malformed = [...stats.malformed.values()].reduce((n, m) => n + m.marked + m.unmarked, 0);
    assert.ok(malformed > 300, `only ${malformed} malformed frames: the generator must reach the boundaries`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
