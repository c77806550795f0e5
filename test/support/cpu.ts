import * as fs from 'node:fs';

/** The CPU flags Linux lists in /proc/cpuinfo (empty elsewhere): which SIMD paths the native side can take. */
export function cpuFlags(): Set<string> {
  try {
    const line = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    return new Set(line ? line[1].trim().split(/\s+/) : []);
  } catch {
    return new Set();
  }
}

/** The widest SIMD the trees use here by default (native/core/cuts.cc: cuts_avx2_available(), cuts_avx512_available()). */
export function widestTreeSimd(): 'scalar' | 'avx2' | 'avx512' {
  const f = cpuFlags();
  if (!f.has('avx2')) return 'scalar';
  return f.has('avx512f') && f.has('avx512bw') ? 'avx512' : 'avx2';
}
