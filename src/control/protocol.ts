/**
 * The control protocol of `nfsieve run --control PATH` (docs/control.md): one
 * JSON request per line, one JSON response per line, versioned. The parser is
 * a pure function from a line to a request or an error, so it can be fuzzed
 * and tested without a socket.
 */

export const PROTOCOL_VERSION = 1;
/** Longest request line accepted, newline excluded. */
export const MAX_LINE_BYTES = 64 * 1024;
/** Most values one set.add / set.del request may carry. */
export const MAX_VALUES = 4096;
/** Longest set name, peer, SA key or value string. */
export const MAX_STRING = 256;

export const COMMANDS = ['ping', 'set.add', 'set.del', 'set.flush', 'set.test', 'set.list', 'stats', 'reload', 'peer.up', 'peer.down'] as const;
export type CommandName = (typeof COMMANDS)[number];

export type ErrorCode =
  | 'bad-json' | 'bad-request' | 'unknown-command' | 'unsupported-version' | 'line-too-long' | 'too-many-clients'
  | 'unknown-set' | 'bad-value' | 'bad-timeout' | 'reload-failed' | 'unavailable' | 'internal';

export type Id = string | number | null;
export type OriginArg = 'live' | 'file' | 'all';

interface Base { v: typeof PROTOCOL_VERSION; id: Id }
export type Request = Base & (
  | { cmd: 'ping' }
  | { cmd: 'set.add'; set: string; values: (string | number)[]; timeout: number }
  | { cmd: 'set.del'; set: string; values: (string | number)[]; origin: OriginArg }
  | { cmd: 'set.flush'; set: string; origin: OriginArg }
  | { cmd: 'set.test'; set: string; value: string | number }
  | { cmd: 'set.list'; set: string | null }
  | { cmd: 'stats' }
  | { cmd: 'reload' }
  | { cmd: 'peer.up' | 'peer.down'; set: string; peer: string; sa: string }
);

/** An error answer: a code from ErrorCode, a message for people, the request id when known. */
export class ControlError {
  constructor(readonly code: ErrorCode, readonly message: string, readonly id: Id = null) {}
}

export interface OkResponse { v: number; id: Id; ok: true; [k: string]: unknown }
export interface ErrorResponse { v: number; id: Id; ok: false; error: { code: ErrorCode; message: string } }
export type Response = OkResponse | ErrorResponse;

export function okResponse(id: Id, body: Record<string, unknown> = {}): OkResponse {
  return { v: PROTOCOL_VERSION, id, ok: true, ...body };
}

export function errorResponse(e: ControlError): ErrorResponse {
  return { v: PROTOCOL_VERSION, id: e.id, ok: false, error: { code: e.code, message: e.message } };
}

type Obj = Record<string, unknown>;

function str(o: Obj, key: string, id: Id, optional = false): string | null {
  const v = o[key];
  if (v === undefined && optional) return null;
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_STRING) {
    throw new ControlError('bad-request', `'${key}' must be a non-empty string of at most ${MAX_STRING} characters`, id);
  }
  return v;
}

function value(v: unknown, key: string, id: Id): string | number {
  if ((typeof v === 'string' && v.length > 0 && v.length <= MAX_STRING) || (Number.isSafeInteger(v) && (v as number) >= 0)) return v as string | number;
  throw new ControlError('bad-request', `'${key}' must hold address/SPI strings or non-negative integers`, id);
}

function values(o: Obj, id: Id): (string | number)[] {
  const v = o.values;
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_VALUES) {
    throw new ControlError('bad-request', `'values' must be an array of 1 to ${MAX_VALUES} values`, id);
  }
  return v.map((x) => value(x, 'values', id));
}

function origin(o: Obj, id: Id, fallback: OriginArg): OriginArg {
  const v = o.origin ?? fallback;
  if (v !== 'live' && v !== 'file' && v !== 'all') throw new ControlError('bad-request', "'origin' must be live, file or all", id);
  return v;
}

function timeout(o: Obj, id: Id): number {
  const v = o.timeout ?? 0;
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw new ControlError('bad-request', "'timeout' must be a whole number of seconds (0: none)", id);
  return v as number;
}

/** The command-specific fields of a request whose envelope is sound. */
function body(cmd: CommandName, o: Obj, id: Id): Request {
  const base = { v: PROTOCOL_VERSION, id } as const;
  switch (cmd) {
    case 'ping': case 'stats': case 'reload': return { ...base, cmd };
    case 'set.add': return { ...base, cmd, set: str(o, 'set', id)!, values: values(o, id), timeout: timeout(o, id) };
    case 'set.del': return { ...base, cmd, set: str(o, 'set', id)!, values: values(o, id), origin: origin(o, id, 'all') };
    case 'set.flush': return { ...base, cmd, set: str(o, 'set', id)!, origin: origin(o, id, 'live') };
    case 'set.test': return { ...base, cmd, set: str(o, 'set', id)!, value: value(o.value, 'value', id) };
    case 'set.list': return { ...base, cmd, set: str(o, 'set', id, true) };
    case 'peer.up': case 'peer.down': return { ...base, cmd, set: str(o, 'set', id)!, peer: str(o, 'peer', id)!, sa: str(o, 'sa', id)! };
  }
}

/** Parse one request line (without its newline). Never throws. */
export function parseRequest(line: string): Request | ControlError {
  if (Buffer.byteLength(line, 'utf8') > MAX_LINE_BYTES) return new ControlError('line-too-long', `request longer than ${MAX_LINE_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (e) {
    return new ControlError('bad-json', `request is not JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return new ControlError('bad-request', 'request must be a JSON object');
  const o = parsed as Obj;
  const rawId = o.id ?? null;
  const id: Id = typeof rawId === 'string' || (typeof rawId === 'number' && Number.isFinite(rawId)) ? rawId : null;
  if (rawId !== null && id === null) return new ControlError('bad-request', "'id' must be a string or a number");
  if (o.v !== PROTOCOL_VERSION) return new ControlError('unsupported-version', `'v' must be ${PROTOCOL_VERSION}`, id);
  if (typeof o.cmd !== 'string') return new ControlError('bad-request', "'cmd' must be a string", id);
  if (!(COMMANDS as readonly string[]).includes(o.cmd)) return new ControlError('unknown-command', `unknown command '${o.cmd.slice(0, 64)}' (known: ${COMMANDS.join(', ')})`, id);
  try {
    return body(o.cmd as CommandName, o, id);
  } catch (e) {
    if (e instanceof ControlError) return e;
    return new ControlError('internal', String(e), id);
  }
}
