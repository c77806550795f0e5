/**
 * docs/benchmarks.svg: ns per packet against rule count (both axes
 * logarithmic), one colour per classifier, one dash pattern per seed set.
 */
import { SetResult } from './classify';

const W = 760, H = 460, L = 70, R = 210, T = 30, B = 50;
const CLASSIFIERS: { key: keyof SetResult; label: string; colour: string }[] = [
  { key: 'lookupNs', label: 'nfsieve decision table', colour: '#1f77b4' },
  { key: 'rteAclNs', label: 'DPDK rte_acl', colour: '#d62728' },
  { key: 'linearNs', label: 'native linear scan', colour: '#7f7f7f' },
  { key: 'referenceNs', label: 'TypeScript reference', colour: '#2ca02c' },
];
const DASH: Record<string, string> = { acl1: '', fw1: '6 4', ipc1: '2 3' };

export function chartSvg(results: SetResult[], title: string): string {
  const values = results.flatMap((r) => CLASSIFIERS.map((c) => r[c.key] as number | null)).filter((v): v is number => v !== null && v > 0);
  const rules = results.map((r) => r.rules);
  if (values.length === 0) return '';
  const yLo = Math.floor(Math.log10(Math.min(...values))), yHi = Math.ceil(Math.log10(Math.max(...values)));
  const xLo = Math.floor(Math.log10(Math.min(...rules))), xHi = Math.ceil(Math.log10(Math.max(...rules)));
  const x = (v: number): number => L + ((Math.log10(v) - xLo) / Math.max(1, xHi - xLo)) * (W - L - R);
  const y = (v: number): number => H - B - ((Math.log10(v) - yLo) / Math.max(1, yHi - yLo)) * (H - T - B);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${L}" y="18" font-size="14">${escape(title)}</text>`);
  for (let e = yLo; e <= yHi; e++) {
    const v = 10 ** e;
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`);
  }
  for (let e = xLo; e <= xHi; e++) {
    const v = 10 ** e;
    out.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${T}" y2="${H - B}" stroke="#ddd"/><text x="${x(v)}" y="${H - B + 16}" text-anchor="middle">${fmt(v)}</text>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">rules</text>`);
  out.push(`<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">ns per packet (one thread, batched)</text>`);
  for (const c of CLASSIFIERS) {
    for (const seed of Object.keys(DASH)) {
      const pts = results.filter((r) => r.seed === seed && typeof r[c.key] === 'number' && (r[c.key] as number) > 0).sort((a, b) => a.rules - b.rules);
      if (pts.length === 0) continue;
      const d = pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.rules).toFixed(1)} ${y(p[c.key] as number).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${c.colour}" stroke-width="2"${DASH[seed] ? ` stroke-dasharray="${DASH[seed]}"` : ''}/>`);
      for (const p of pts) out.push(`<circle cx="${x(p.rules).toFixed(1)}" cy="${y(p[c.key] as number).toFixed(1)}" r="3" fill="${c.colour}"/>`);
    }
  }
  let ly = T + 10;
  for (const c of CLASSIFIERS) {
    out.push(`<line x1="${W - R + 15}" x2="${W - R + 45}" y1="${ly}" y2="${ly}" stroke="${c.colour}" stroke-width="3"/><text x="${W - R + 52}" y="${ly + 4}">${escape(c.label)}</text>`);
    ly += 20;
  }
  ly += 10;
  for (const [seed, dash] of Object.entries(DASH)) {
    out.push(`<line x1="${W - R + 15}" x2="${W - R + 45}" y1="${ly}" y2="${ly}" stroke="black" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/><text x="${W - R + 52}" y="${ly + 4}">${seed}</text>`);
    ly += 20;
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function fmt(v: number): string {
  return v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : String(v);
}

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}
