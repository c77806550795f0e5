/**
 * `nfsieve run` as the root tests start it: inside a lab namespace, JSON lines
 * on stdout collected, resolved once it says it attached (rejected when it
 * exits first or does not attach within 15 s).
 */
import { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { Lab } from './netns';
import { ROOT } from './compare';
import { onJsonLines } from '../../src/cli/output';

const BIN = path.join(ROOT, 'bin', 'nfsieve.js');

export interface RunHandle {
  child: ChildProcess;
  /** Every JSON line it printed so far (notes, stats, final). */
  lines: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Start `nfsieve run ARGS...` in namespace `ns`; resolves once it has attached. */
export async function startRun(lab: Lab, ns: string, args: string[]): Promise<RunHandle> {
  const child = lab.spawn(ns, [process.execPath, BIN, 'run', ...args]);
  const lines: Record<string, unknown>[] = [];
  let err = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.stderr!.on('data', (d) => (err += d));
  await new Promise<void>((resolve, reject) => {
    onJsonLines(child.stdout!, (o) => {
      lines.push(o);
      if (o.event === 'note' && String(o.message).startsWith('attached')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`nfsieve run exited ${code}: ${err}`)));
    setTimeout(() => reject(new Error(`nfsieve run did not attach: ${err}`)), 15000);
  });
  return { child, lines, stderr: () => err, exited };
}
