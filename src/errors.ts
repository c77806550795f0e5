/**
 * Errors that carry a code (like Node's system errors and better-sqlite3's
 * SqliteError): callers and the CLI decide by `code`, never by message text.
 */

/**
 * EUSAGE   a command line that cannot be run (unknown option, missing argument)
 * EPOLICY  a policy, rule, set or trace file refused (every diagnostic listed)
 * ECAPTURE a capture that cannot be read, or was cut short
 * ETABLE   a compiled decision table the addon refused to load
 * EVALUE   a value refused by the API (a port, a prefix, a queue number...)
 * EQUEUE   attaching to or running NFQUEUE failed (the kernel said no)
 * ECONTROL a control endpoint cannot be opened: the control socket (in use, not a
 *          socket, bad group) or the metrics listener (address in use...)
 */
export type ErrorCode = 'EUSAGE' | 'EPOLICY' | 'ECAPTURE' | 'ETABLE' | 'EVALUE' | 'EQUEUE' | 'ECONTROL';

/** Where in an input file an error was found (1-based; 0 when unknown). */
export interface ErrorPlace { file?: string; line?: number; col?: number }

export class NfsieveError extends Error {
  readonly file?: string;
  readonly line?: number;
  readonly col?: number;

  constructor(readonly code: ErrorCode, message: string, place: ErrorPlace = {}) {
    super(message);
    this.name = 'NfsieveError';
    if (place.file !== undefined) this.file = place.file;
    if (place.line !== undefined) this.line = place.line;
    if (place.col !== undefined) this.col = place.col;
  }
}

const CODES: readonly ErrorCode[] = ['EUSAGE', 'EPOLICY', 'ECAPTURE', 'ETABLE', 'EVALUE', 'EQUEUE', 'ECONTROL'];

/** The nfsieve code an error carries (an NfsieveError, or a native error with `code`), or null. */
export function errorCode(err: unknown): ErrorCode | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (CODES as readonly string[]).includes(code) ? code as ErrorCode : null;
}
