/**
 * The client side of the control socket: one request, one response, with a
 * deadline. Used by `nfsieve set`, `stats`, `reload` and `updown`.
 */
import * as net from 'node:net';
import { PROTOCOL_VERSION, Response } from './protocol';

export const DEFAULT_CONTROL_PATH = '/run/nfsieve/nfsieve.sock';
/** Environment variable that overrides the default control socket path for every command. */
export const CONTROL_ENV = 'NFSIEVE_CONTROL';

/** The path a command uses: its --control flag, else $NFSIEVE_CONTROL, else the default. */
export function controlPath(flag: string | undefined): string {
  return flag ?? (process.env[CONTROL_ENV] || DEFAULT_CONTROL_PATH);
}

/** Nothing listens on the path (no file, or a stale one). */
export class NotListeningError extends Error {
  constructor(readonly path: string) {
    super(`no nfsieve run is listening on ${path}`);
    this.name = 'NotListeningError';
  }
}

/** Any other failure to get an answer (permission, timeout, a broken answer). */
export class ClientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClientError';
  }
}

let nextId = 1;

/** Send one request ({cmd, ...}; v and id are added) and wait for its answer. */
export function request(file: string, body: Record<string, unknown>, timeoutMs = 5000): Promise<Response> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const s = net.createConnection(file);
    let settled = false;
    let buffer = '';
    const finish = (err: Error | null, res?: Response): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(res as Response);
    };
    const timer = setTimeout(() => finish(new ClientError(`no answer from ${file} within ${timeoutMs} ms`)), timeoutMs);
    s.setEncoding('utf8');
    s.on('connect', () => s.write(JSON.stringify({ v: PROTOCOL_VERSION, id, ...body }) + '\n'));
    s.on('data', (d: string) => {
      buffer += d;
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      try {
        finish(null, JSON.parse(buffer.slice(0, nl)) as Response);
      } catch {
        finish(new ClientError(`unreadable answer from ${file}`));
      }
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'ENOTSOCK') finish(new NotListeningError(file));
      else if (e.code === 'EACCES' || e.code === 'EPERM') finish(new ClientError(`permission denied on ${file} (the socket is for its owner or --control-group)`));
      else finish(new ClientError(`${file}: ${e.message}`));
    });
    s.on('close', () => finish(new ClientError(`${file} closed the connection without an answer`)));
  });
}
