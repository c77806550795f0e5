import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import * as path from 'node:path';
import { native } from '../src/native';
import { compile } from '../src/compile/compile';
import { crc32, crc32Slicing } from '../src/compile/format';
import { loadPolicyFile } from '../src/policy/parse';
import { Rng, randomFrame } from './support/packets';
import { randomPolicy } from './support/policies';
import { definePolicy } from '../src/policy/define';
import { ROOT } from './support/compare';

const table = compile(loadPolicyFile(path.join(ROOT, 'examples', 'freeswan-gateway.yaml'))).table;
const load = (bytes: Uint8Array): unknown => new (native().Classifier)(bytes);
const u32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const put32 = (b: Uint8Array, at: number, v: number): void => new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, true);
/** Re-seal a modified table so that its checksum is right and only the structure is wrong. */
const reseal = (b: Uint8Array): Uint8Array => { put32(b, 12, crc32(b, 16, b.length)); return b; };

test('a compiled table loads', () => {
  assert.doesNotThrow(() => load(table));
});

test('a table with a bad magic, version, size or checksum is refused with the exact reason', () => {
  const bad = table.slice(); bad[0] ^= 1;
  assert.throws(() => load(bad), { message: 'invalid table: not an nfsieve table (bad magic)' });
  const v3 = table.slice(); v3[4] = 3;
  assert.throws(() => load(reseal(v3)), { message: 'invalid table: table version 3 is not supported (this build reads versions 1 and 2)' });
  assert.throws(() => load(table.slice(0, table.length - 8)), { message: `invalid table: table size field ${table.length} does not match its ${table.length - 8} bytes` });
  assert.throws(() => load(table.slice(0, 40)), { message: 'invalid table: table too short for its header (40 bytes)' });
  const flipped = table.slice(); flipped[table.length - 3] ^= 0x40;
  assert.throws(() => load(flipped), { message: 'invalid table: checksum mismatch: the table is corrupt' });
});

test('structural corruption behind a valid checksum is refused, not trusted', () => {
  // A rule's skip target pointing backwards.
  const rulesOff = u32(table, 24);
  const skip = table.slice();
  skip[rulesOff] = 5; // action skip
  put32(skip, rulesOff + 12, 0);
  assert.throws(() => load(reseal(skip)), { message: 'invalid table: rule 0: skip target out of range' });
  // A residual referring past the reference list.
  const resOff = u32(table, 28);
  const res = table.slice();
  put32(res, resOff + 4, 1_000_000);
  assert.throws(() => load(reseal(res)), { message: 'invalid table: residual 0: references out of range' });
  // A class index past the vector count in the IPv4 table.
  const fam = u32(table, 36);
  const dim = fam + 16;
  const classes = u32(table, dim + 12);
  const cls = table.slice();
  put32(cls, classes, 0xffff);
  assert.throws(() => load(reseal(cls)), /invalid table: IPv4 table: field \d+: class index out of range/);
  // A section offset past the end.
  const off = table.slice();
  put32(off, 24, table.length + 64);
  assert.throws(() => load(reseal(off)), { message: 'invalid table: rules section out of bounds' });
  // An unknown field id.
  const field = table.slice();
  field[dim] = 99;
  assert.throws(() => load(reseal(field)), { message: 'invalid table: IPv4 table: field 99: unknown field' });
});

test('20,000 randomly corrupted (and re-sealed) tables are refused or classify safely', () => {
  const rng = new Rng(Number(process.env.NFSIEVE_SEED ?? 7));
  const frames = Array.from({ length: 50 }, () => randomFrame(rng, 101).data);
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    const t = table.slice();
    const edits = 1 + rng.int(4);
    for (let k = 0; k < edits; k++) {
      const at = 16 + rng.int(t.length - 16);
      t[at] = rng.chance(0.5) ? rng.u32() & 0xff : t[at] ^ (1 << rng.int(8));
    }
    let c: ReturnType<typeof native>['Classifier']['prototype'];
    try {
      c = new (native().Classifier)(reseal(t));
    } catch (e) {
      assert.match((e as Error).message, /^invalid table: /);
      refused++;
      continue;
    }
    for (const f of frames) c.classify(101, f);
  }
  assert.ok(refused > 1000, `only ${refused} refused`);
});

test('the table format documentation names every header field the writer sets', () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'table-format.md'), 'utf8');
  for (const field of ['magic', 'version', 'total_size', 'checksum', 'rule_count', 'default_verdict', 'rules_off', 'residuals_off', 'fam4_off', 'fam6_off', 'strings_off', 'sets_off', 'refs_off', 'limits_off', 'limit_count']) {
    assert.ok(doc.includes(field), `docs/table-format.md misses ${field}`);
  }
});

test('the table checksum is the standard CRC-32 on every path (the addon\'s, both ways; zlib\'s; the portable one)', () => {
  const check = new TextEncoder().encode('123456789');
  assert.equal(crc32(check), 0xcbf43926);
  assert.equal(crc32Slicing(check), 0xcbf43926);
  const rng = new Uint8Array(100_003).map((_, i) => (i * 2654435761) >>> 24);
  const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
  const saved = process.env.NFSIEVE_SIMD;
  try {
    for (const simd of [undefined, 'scalar']) {
      if (simd === undefined) delete process.env.NFSIEVE_SIMD; else process.env.NFSIEVE_SIMD = simd;
      for (const [from, to] of [[0, 0], [0, 1], [3, 11], [0, 64], [1, 80], [5, 4096], [7, 4171], [0, rng.length], [17, rng.length - 5]]) {
        const want = crc32Slicing(rng, from, to);
        assert.equal(crc32(rng, from, to), want, `bytes ${from}..${to}`);
        assert.equal(native().crc32(rng.subarray(from, to)) >>> 0, want, `addon, bytes ${from}..${to}, ${simd ?? 'default'} path`);
        if (zlibCrc32) assert.equal(zlibCrc32(rng.subarray(from, to)) >>> 0, want, `zlib, bytes ${from}..${to}`);
      }
    }
  } finally {
    if (saved === undefined) delete process.env.NFSIEVE_SIMD; else process.env.NFSIEVE_SIMD = saved;
  }
});

test('both checksum paths (carry-less multiply, and NFSIEVE_SIMD=scalar slicing) accept sound tables and refuse one flipped byte anywhere', () => {
  const rng = new Rng(77);
  const tables = Array.from({ length: 12 }, () => compile(definePolicy(randomPolicy(rng, 1 + rng.int(300))), { analyse: false }).table);
  const saved = process.env.NFSIEVE_SIMD;
  try {
    for (const simd of [undefined, 'scalar']) {
      if (simd === undefined) delete process.env.NFSIEVE_SIMD; else process.env.NFSIEVE_SIMD = simd;
      for (const t of tables) {
        assert.doesNotThrow(() => load(t), `${t.length} bytes, ${simd ?? 'default'} path`);
        for (const at of [16, 17, 40, 79, Math.floor(t.length / 2), t.length - 17, t.length - 9, t.length - 1]) {
          const bad = t.slice();
          bad[at] ^= 0x20;
          assert.throws(() => load(bad), { message: 'invalid table: checksum mismatch: the table is corrupt' }, `byte ${at} of ${t.length}, ${simd ?? 'default'} path`);
        }
      }
    }
  } finally {
    if (saved === undefined) delete process.env.NFSIEVE_SIMD; else process.env.NFSIEVE_SIMD = saved;
  }
});

test('the native sweep writes byte-identical tables to the TypeScript one: 300 random policies and the example policies', () => {
  const rng = new Rng(4242);
  const policies = Array.from({ length: 300 }, () => definePolicy(randomPolicy(rng, 1 + rng.int(120))));
  for (const name of fs.readdirSync(path.join(ROOT, 'examples')).filter((f) => /\.(ya?ml|json)$/.test(f))) policies.push(loadPolicyFile(path.join(ROOT, 'examples', name)));
  policies.forEach((policy, i) => {
    const js = compile(policy, { analyse: false, sweep: 'js' }).table;
    const nat = compile(policy, { analyse: false, sweep: 'native' }).table;
    assert.ok(Buffer.from(js).equals(Buffer.from(nat)), `policy ${i} (${policy.source}): tables differ`);
  });
});

test('the native sweep refuses out-of-range input instead of trusting it', () => {
  const f = (lo: number[], hi: number[], rule: number[], rules: number, top = 65535): unknown =>
    native().sweepField(Float64Array.from(lo), Float64Array.from(hi), Uint32Array.from(rule), new Uint32Array(0), rules, top);
  assert.throws(() => f([5], [4], [0], 1), /interval out of range/);
  assert.throws(() => f([0], [70000], [0], 1), /interval out of range/);
  assert.throws(() => f([0.5], [3], [0], 1), /interval out of range/);
  assert.throws(() => f([0], [3], [1], 1), /rule index out of range/);
  assert.throws(() => f([0], [3, 4], [0], 1), /one entry per interval/);
  const ok = f([10, 20], [19, 29], [0, 1], 2) as { boundaries: Float64Array; classes: Uint32Array; vectorCount: number };
  assert.deepEqual([...ok.boundaries], [10, 20, 30]);
  assert.deepEqual([...ok.classes], [0, 1, 2, 0]);
  assert.equal(ok.vectorCount, 3);
});

test('held sweeps write the same vectors as sweepField, with summaries, into range-checked places and only once', () => {
  const args = [Float64Array.from([10, 20, 5]), Float64Array.from([19, 29, 400]), Uint32Array.from([0, 1, 70]), Uint32Array.from([3]), 100, 65535] as const;
  const plain = native().sweepField(...args);
  const held = native().sweepFieldHeld(...args);
  assert.deepEqual([...held.boundaries], [...plain.boundaries]);
  assert.deepEqual([...held.classes], [...plain.classes]);
  assert.equal(held.vectorCount, plain.vectorCount);
  const words = 2, vBytes = held.vectorCount * words * 8, sBytes = held.vectorCount * 8;
  const table = new Uint8Array(8 + vBytes + sBytes);
  assert.throws(() => native().writeHeldVectors(held.held, table, 8, 8), /offsets out of range/);  // overlapping
  assert.throws(() => native().writeHeldVectors(held.held, table, 16, 16 + vBytes), /offsets out of range/);  // past the end
  assert.throws(() => native().writeHeldVectors(held.held, table, 0.5, 8 + vBytes), /offsets out of range/);
  native().writeHeldVectors(held.held, table, 8, 8 + vBytes);
  assert.deepEqual(new Uint32Array(table.buffer.slice(8, 8 + vBytes)), plain.vectors);
  const summaries = new Uint32Array(table.buffer.slice(8 + vBytes));
  for (let j = 0; j < held.vectorCount; j++) {
    const v = plain.vectors.subarray(j * 4, j * 4 + 4);
    assert.equal(summaries[2 * j], ((v[0] | v[1]) !== 0 ? 1 : 0) | ((v[2] | v[3]) !== 0 ? 2 : 0), `summary of vector ${j}`);
    assert.equal(summaries[2 * j + 1], 0);
  }
  assert.throws(() => native().writeHeldVectors(held.held, table, 8, 8 + vBytes), /already written/);
  assert.throws(() => native().writeHeldVectors({} as never, table, 8, 8 + vBytes), TypeError);
});
