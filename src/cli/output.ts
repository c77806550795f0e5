/** Buffered line output to stdout, flushed in large writes. */

/**
 * Exit status when stdout is closed early (`nfsieve inspect big.pcap | head -1`):
 * what a shell reports for tcpdump or ls, which die by SIGPIPE (128 + 13).
 * Node ignores SIGPIPE, so the write fails with EPIPE instead; we exit quietly.
 */
export const BROKEN_PIPE_STATUS = 141;

let pipeGuard = false;
/** Exit quietly (status BROKEN_PIPE_STATUS) when stdout's reader goes away; once per process. */
export function quietOnBrokenPipe(): void {
  if (pipeGuard) return;
  pipeGuard = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(BROKEN_PIPE_STATUS);
    throw err;
  });
}

export class Output {
  private chunks: string[] = [];
  private size = 0;
  constructor(private readonly write: (s: string) => void = (s) => process.stdout.write(s)) {}

  line(s: string): void {
    this.chunks.push(s, '\n');
    this.size += s.length + 1;
    if (this.size > 1 << 18) this.flush();
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
