/**
 * The control socket: a Unix stream socket, mode 0600 (owner only) or 0660
 * with a group, serving newline-delimited JSON (protocol.ts) to a bounded
 * number of clients with bounded buffers. A stale socket file (nobody
 * answers) is replaced; a live one is an error naming it. Requests run on the
 * JavaScript thread; packet threads never wait for them (docs/control.md).
 */
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ControlError, MAX_LINE_BYTES, errorResponse } from './protocol';
import { NfsieveError } from '../errors';

/** Clients served at once; one more is told `too-many-clients` and closed. */
export const MAX_CLIENTS = 64;
/** Unsent response bytes a client may leave unread before it is closed. */
export const MAX_PENDING_OUTPUT = 1 << 20;
/** A connection idle this long is closed. */
export const IDLE_TIMEOUT_MS = 5 * 60 * 1000;
/** How long a probe of an existing socket file waits for an answer. */
export const PROBE_TIMEOUT_MS = 500;

export interface LineHandler { handleLine(line: string): string }

export interface ControlServerOptions {
  path: string;
  /** Group allowed to connect (name or number): mode 0660 instead of 0600. */
  group?: string;
  maxClients?: number;
  log?: (message: string) => void;
}

/** The control socket cannot be opened (code ECONTROL); `reason` says why. */
export class ControlSocketError extends NfsieveError {
  constructor(readonly reason: 'in-use' | 'not-a-socket' | 'bad-group' | 'listen', message: string) {
    super('ECONTROL', message);
    this.name = 'ControlSocketError';
  }
}

/** Whether something accepts connections on a socket file. */
export function probeSocket(file: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(file);
    const done = (alive: boolean): void => { clearTimeout(t); s.destroy(); resolve(alive); };
    const t = setTimeout(() => done(true), timeoutMs);  // connected but silent, or slow: treat as in use
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  let text = '';
  try { text = fs.readFileSync('/etc/group', 'utf8'); } catch { /* no group database */ }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === group && /^\d+$/.test(f[2] ?? '')) return Number(f[2]);
  }
  throw new ControlSocketError('bad-group', `--control-group: no group named '${group}'`);
}

async function clearStale(file: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new ControlSocketError('not-a-socket', `control socket path ${file} exists and is not a socket (not replacing it)`);
  if (await probeSocket(file)) throw new ControlSocketError('in-use', `another nfsieve run is listening on ${file}`);
  fs.unlinkSync(file);
}

export class ControlServer {
  private readonly server: net.Server;
  private readonly clients = new Set<net.Socket>();
  private closed = false;

  private constructor(private readonly handler: LineHandler, readonly path: string, private readonly options: ControlServerOptions) {
    this.server = net.createServer((s) => this.accept(s));
  }

  /** Listen on options.path; rejects with ControlSocketError. */
  static async listen(handler: LineHandler, options: ControlServerOptions): Promise<ControlServer> {
    const file = path.resolve(options.path);
    const gid = options.group === undefined ? null : groupId(options.group);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    await clearStale(file);
    const cs = new ControlServer(handler, file, options);
    // The socket is created by bind(2) with the umask's mode: narrow the umask
    // around it so no moment exists with a wider mode than asked for.
    const old = process.umask(gid === null ? 0o177 : 0o117);
    try {
      await new Promise<void>((resolve, reject) => {
        cs.server.once('error', (e) => reject(new ControlSocketError('listen', `cannot listen on ${file}: ${e.message}`)));
        cs.server.listen(file, () => resolve());
      });
    } finally {
      process.umask(old);
    }
    if (gid !== null) fs.chownSync(file, -1, gid);
    fs.chmodSync(file, gid === null ? 0o600 : 0o660);
    cs.server.on('error', (e) => options.log?.(`control socket: ${e.message}`));
    return cs;
  }

  get clientCount(): number { return this.clients.size; }

  private accept(s: net.Socket): void {
    if (this.clients.size >= (this.options.maxClients ?? MAX_CLIENTS)) {
      s.end(JSON.stringify(errorResponse(new ControlError('too-many-clients', `at most ${this.options.maxClients ?? MAX_CLIENTS} clients at once`))) + '\n');
      s.on('error', () => undefined);
      return;
    }
    this.clients.add(s);
    s.setTimeout(IDLE_TIMEOUT_MS, () => s.destroy());
    s.on('error', () => undefined);
    s.on('close', () => this.clients.delete(s));
    let chunks: Buffer[] = [];
    let buffered = 0;
    let skipping = false;  // after an oversize line: drop bytes up to the next newline
    s.on('data', (data: Buffer) => {
      let start = 0;
      for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, start)) {
        const piece = data.subarray(start, nl);
        start = nl + 1;
        if (skipping) {
          skipping = false;
        } else if (buffered + piece.length > MAX_LINE_BYTES) {
          this.reply(s, JSON.stringify(errorResponse(new ControlError('line-too-long', `request longer than ${MAX_LINE_BYTES} bytes`))));
        } else {
          chunks.push(piece);
          this.reply(s, this.answer(Buffer.concat(chunks).toString('utf8')));
        }
        chunks = [];
        buffered = 0;
      }
      const rest = data.subarray(start);
      if (skipping || rest.length === 0) return;
      if (buffered + rest.length > MAX_LINE_BYTES) {
        this.reply(s, JSON.stringify(errorResponse(new ControlError('line-too-long', `request longer than ${MAX_LINE_BYTES} bytes; skipped to the next newline`))));
        skipping = true;
        chunks = [];
        buffered = 0;
        return;
      }
      chunks.push(Buffer.from(rest));
      buffered += rest.length;
    });
  }

  private reply(s: net.Socket, line: string): void {
    if (s.destroyed) return;
    // A client that sends requests without reading its answers: cut off once
    // earlier answers pile up (one large answer, a long set list, is fine).
    if (s.writableLength > MAX_PENDING_OUTPUT) {
      s.destroy();
      return;
    }
    s.write(line + '\n');
  }

  private answer(line: string): string {
    try {
      return this.handler.handleLine(line);
    } catch (e) {  // a handler fault must not take the process down
      return JSON.stringify(errorResponse(new ControlError('internal', (e as Error)?.message ?? String(e))));
    }
  }

  /** Stop listening, close every client, remove the socket file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.clients) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try { fs.unlinkSync(this.path); } catch { /* already gone */ }
  }
}
