/**
 * `nfsieve updown`: the updown program of an IKE daemon (strongSwan's
 * `updown =` or a line in its _updown script, Libreswan's `leftupdown=`). It
 * reads the PLUTO_* environment the daemon sets and tells the running
 * `nfsieve run` that an SA to PLUTO_PEER came up or went down; the daemon
 * keeps the peer in the set (default `gateways`) while one SA to it is up.
 * It never makes the IKE daemon wait more than UPDOWN_DEADLINE_MS.
 */
import { ParsedArgs, UsageError, stringFlag } from './args';
import { Output } from './output';
import { request, controlPath, NotListeningError } from '../control/client';
import { readState, writeState, recordPeer, emptyState, StateError } from '../control/state';

export const UPDOWN_FLAGS = { set: 'string', control: 'string', state: 'string' } as const;
/** Connect + request + answer, at most. */
export const UPDOWN_DEADLINE_MS = 200;
export const DEFAULT_UPDOWN_SET = 'gateways';

const ACT = /^(up|down)-(host|client)(-v6)?$/;
const IGNORED = /^(prepare|route|unroute)-(host|client)(-v6)?$/;

/** What a PLUTO_* environment asks for: peer.up/peer.down, nothing (null), or a note for an unknown verb. */
export function updownAction(env: NodeJS.ProcessEnv): { up: boolean; peer: string; sa: string } | null | string {
  const verb = env.PLUTO_VERB;
  if (!verb) throw new UsageError('PLUTO_VERB is not set: nfsieve updown is run by an IKE daemon (strongSwan updown=, Libreswan leftupdown=)');
  if (IGNORED.test(verb)) return null;
  const m = ACT.exec(verb);
  if (!m) return `ignoring PLUTO_VERB=${verb}`;
  const peer = env.PLUTO_PEER;
  if (!peer) throw new UsageError(`PLUTO_VERB=${verb} without PLUTO_PEER`);
  // strongSwan: PLUTO_UNIQUEID names the IKE SA, PLUTO_REQID the CHILD_SA;
  // Libreswan: PLUTO_CONNECTION (with PLUTO_SA_REQID / PLUTO_REQID when set).
  const sa = env.PLUTO_UNIQUEID || env.PLUTO_CONNECTION;
  if (!sa) throw new UsageError(`PLUTO_VERB=${verb} without PLUTO_UNIQUEID or PLUTO_CONNECTION`);
  const reqid = env.PLUTO_REQID || env.PLUTO_SA_REQID;
  return { up: m[1] === 'up', peer, sa: reqid ? `${sa}/${reqid}` : sa };
}

function recordOffline(file: string, up: boolean, set: string, peer: string, sa: string): string {
  try {
    const state = readState(file) ?? emptyState();
    recordPeer(state, up, set, peer, sa);
    writeState(file, state);
    return `; recorded in ${file} for the next nfsieve run`;
  } catch (e) {
    return `; not recorded: ${e instanceof StateError ? e.message : (e as Error).message}`;
  }
}

export async function updown(args: ParsedArgs, _out: Output): Promise<number> {
  if (args.positional.length > 0) throw new UsageError('usage: nfsieve updown [--set NAME] [--control PATH] [--state FILE] (run by the IKE daemon)');
  const action = updownAction(process.env);
  if (action === null) return 0;
  if (typeof action === 'string') {
    process.stderr.write(`nfsieve updown: ${action}\n`);
    return 0;
  }
  const set = stringFlag(args, 'set') ?? DEFAULT_UPDOWN_SET;
  const file = controlPath(stringFlag(args, 'control'));
  const verb = action.up ? 'peer.up' : 'peer.down';
  try {
    const res = await request(file, { cmd: verb, set, peer: action.peer, sa: action.sa }, UPDOWN_DEADLINE_MS);
    if (res.ok) return 0;
    process.stderr.write(`nfsieve updown: ${verb} ${action.peer}: ${res.error.message}\n`);
    return 1;
  } catch (e) {
    const state = stringFlag(args, 'state');
    const recorded = state ? recordOffline(state, action.up, set, action.peer, action.sa) : '';
    const why = e instanceof NotListeningError ? e.message : `${verb} ${action.peer}: ${(e as Error).message}`;
    process.stderr.write(`nfsieve updown: ${why}${recorded}\n`);
    return 2;
  }
}
