/** Buffered line output to stdout, flushed in large writes. */
export class Output {
  private chunks: string[] = [];
  private size = 0;
  constructor(private readonly write: (s: string) => void = (s) => process.stdout.write(s)) {}

  line(s: string): void {
    this.chunks.push(s, '\n');
    this.size += s.length + 1;
    if (this.size > 1 << 16) this.flush();
  }

  flush(): void {
    if (this.chunks.length === 0) return;
    this.write(this.chunks.join(''));
    this.chunks = [];
    this.size = 0;
  }
}

/**
 * Calls `each(object, line)` for every JSON line a stream (a child's stdout,
 * say) writes, across chunk boundaries; lines that are not JSON are skipped.
 */
export function onJsonLines(stream: NodeJS.ReadableStream, each: (o: Record<string, unknown>, line: string) => void): void {
  let buf = '';
  stream.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let o: Record<string, unknown>;
      try { o = JSON.parse(line); } catch { continue; }
      each(o, line);
    }
  });
}
