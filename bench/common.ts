/**
 * Shared benchmark plumbing: tinybench loading (it is an ES module), the
 * machine description recorded next to every result, and Markdown tables.
 */
import * as os from 'node:os';
import * as fs from 'node:fs';

// tinybench ships as an ES module only; load it without letting TypeScript turn import() into require().
const importEsm = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<typeof import('tinybench')>;

export async function tinybench(): Promise<typeof import('tinybench')> {
  return importEsm('tinybench');
}

export interface Row { [column: string]: string | number }

export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  let flags = '';
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    flags = ['avx2', 'avx512f', 'sse4_2'].filter((f) => new RegExp(`\\b${f}\\b`).test(info)).join(', ');
  } catch { /* not Linux */ }
  return `${cpu} (${os.cpus().length} cores${flags ? `; ${flags}` : ''}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
}

export function markdownTable(rows: Row[]): string {
  if (rows.length === 0) return '(no rows)\n';
  const cols = Object.keys(rows[0]);
  const line = (cells: (string | number)[]): string => `| ${cells.join(' | ')} |`;
  return [line(cols), line(cols.map(() => '---')), ...rows.map((r) => line(cols.map((c) => r[c] ?? '')))].join('\n') + '\n';
}

/**
 * Nanoseconds per item of a tinybench task that processes `items` items per
 * iteration: the median iteration, or with `fastest` the fastest one (this
 * class of shared VM has bursts of interference from its neighbours that move
 * the mean, and even the median, by tens of percent from run to run).
 */
export function nsPerItem(task: { result?: unknown }, items: number, fastest = false): number {
  const r = task.result as { latency?: { mean: number; p50?: number; min?: number }; mean?: number; p50?: number; min?: number } | undefined;
  const ms = fastest ? (r?.latency?.min ?? r?.min ?? NaN) : (r?.latency?.p50 ?? r?.p50 ?? r?.latency?.mean ?? r?.mean ?? NaN);
  return (ms * 1e6) / items;
}
