/**
 * What the client commands (`set`, `stats`, `reload`) share: find the socket,
 * send one request, turn failures into the documented exit codes: 2 when no
 * daemon answers ("no nfsieve run is listening on PATH"), 1 when it refuses.
 */
import { request, controlPath, NotListeningError, ClientError } from '../control/client';
import { OkResponse } from '../control/protocol';
import { ParsedArgs, stringFlag } from './args';

export const CLIENT_FLAGS = { control: 'string', json: 'boolean' } as const;

/** Exit codes of the client commands. */
export const EXIT_REFUSED = 1;
export const EXIT_NO_DAEMON = 2;

/** The daemon's answer, or the exit code after a one-line message on stderr. */
export async function call(args: ParsedArgs, body: Record<string, unknown>, timeoutMs = 5000): Promise<OkResponse | number> {
  const file = controlPath(stringFlag(args, 'control'));
  try {
    const res = await request(file, body, timeoutMs);
    if (res.ok) return res;
    process.stderr.write(`nfsieve: ${res.error.message} (${res.error.code})\n`);
    return EXIT_REFUSED;
  } catch (e) {
    if (e instanceof NotListeningError || e instanceof ClientError) {
      process.stderr.write(`${e.message}\n`);
      return EXIT_NO_DAEMON;
    }
    throw e;
  }
}
