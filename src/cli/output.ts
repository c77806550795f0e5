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
