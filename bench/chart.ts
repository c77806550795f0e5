/**
 * docs/benchmarks.svg: ns per packet against rule count (both axes
 * logarithmic, the same scales in every panel), one panel per ClassBench
 * family, one colour per classifier (ClassBench-style trace).
 */
import { SetResult } from './classify';

const PW = 230, PH = 170, COLS = 4, L = 60, T = 40, GAP = 45, LEGEND = 40;
const CLASSIFIERS: { key: keyof SetResult; label: string; colour: string }[] = [
  { key: 'lookupNs', label: 'nfsieve', colour: '#1f77b4' },
  { key: 'rteAclNs', label: 'DPDK rte_acl', colour: '#d62728' },
  { key: 'linearNs', label: 'native linear scan', colour: '#7f7f7f' },
];

export function chartSvg(results: SetResult[], title: string): string {
  const values = results.flatMap((r) => CLASSIFIERS.map((c) => r[c.key] as number | null)).filter((v): v is number => typeof v === 'number' && v > 0);
  if (values.length === 0) return '';
  const seeds = [...new Set(results.map((r) => r.seed))];
  const rows = Math.ceil(seeds.length / COLS);
  const W = L + COLS * (PW + GAP), H = T + LEGEND + rows * (PH + GAP);
  const yLo = Math.floor(Math.log10(Math.min(...values))), yHi = Math.ceil(Math.log10(Math.max(...values)));
  const rules = results.map((r) => r.rules);
  const xLo = Math.floor(Math.log10(Math.min(...rules))), xHi = Math.ceil(Math.log10(Math.max(...rules)));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${L}" y="18" font-size="14">${escape(title)}</text>`);
  let lx = L;
  for (const c of CLASSIFIERS) {
    out.push(`<line x1="${lx}" x2="${lx + 25}" y1="${T}" y2="${T}" stroke="${c.colour}" stroke-width="3"/><text x="${lx + 30}" y="${T + 4}">${escape(c.label)}</text>`);
    lx += 170;
  }
  out.push(`<text x="${lx}" y="${T + 4}">x: rules, y: ns per packet (one thread, batched), log scales</text>`);
  seeds.forEach((seed, i) => {
    const ox = L + (i % COLS) * (PW + GAP), oy = T + LEGEND + Math.floor(i / COLS) * (PH + GAP);
    const x = (v: number): number => ox + ((Math.log10(v) - xLo) / Math.max(1, xHi - xLo)) * PW;
    const y = (v: number): number => oy + PH - ((Math.log10(v) - yLo) / Math.max(1, yHi - yLo)) * PH;
    out.push(`<text x="${ox}" y="${oy - 6}" font-size="13">${escape(seed)}</text>`);
    out.push(`<rect x="${ox}" y="${oy}" width="${PW}" height="${PH}" fill="none" stroke="#bbb"/>`);
    for (let e = yLo; e <= yHi; e++) {
      out.push(`<line x1="${ox}" x2="${ox + PW}" y1="${y(10 ** e)}" y2="${y(10 ** e)}" stroke="#eee"/><text x="${ox - 4}" y="${y(10 ** e) + 4}" text-anchor="end">${fmt(10 ** e)}</text>`);
    }
    for (let e = xLo; e <= xHi; e++) {
      out.push(`<line x1="${x(10 ** e)}" x2="${x(10 ** e)}" y1="${oy}" y2="${oy + PH}" stroke="#eee"/><text x="${x(10 ** e)}" y="${oy + PH + 14}" text-anchor="middle">${fmt(10 ** e)}</text>`);
    }
    for (const c of CLASSIFIERS) {
      const pts = results.filter((r) => r.seed === seed && typeof r[c.key] === 'number' && (r[c.key] as number) > 0).sort((a, b) => a.rules - b.rules);
      if (pts.length === 0) continue;
      const d = pts.map((p, k) => `${k ? 'L' : 'M'}${x(p.rules).toFixed(1)} ${y(p[c.key] as number).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${c.colour}" stroke-width="2"/>`);
      for (const p of pts) out.push(`<circle cx="${x(p.rules).toFixed(1)}" cy="${y(p[c.key] as number).toFixed(1)}" r="3" fill="${c.colour}"/>`);
    }
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function fmt(v: number): string {
  return v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : String(v);
}

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}
