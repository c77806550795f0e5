/**
 * Waiting on child processes and workers without missing events: every
 * listener is in place before anything is awaited, and an exit that already
 * happened resolves at once (a listener added after 'exit' never fires).
 */
import { ChildProcess } from 'node:child_process';
import { Readable } from 'node:stream';

/** Resolves with the exit code (or signal name) of a child, even if it has already exited. */
export function exited(child: ChildProcess): Promise<number | string | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
}

/**
 * Resolves once `stream` has written text containing `marker`; rejects if the
 * child exits first (with what it wrote), or after `ms`.
 */
export function outputContains(child: ChildProcess, stream: Readable, marker: string, ms = 20000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no '${marker}' after ${ms} ms: ${text}`)), ms);
    const onData = (d: Buffer | string): void => {
      text += d;
      if (text.includes(marker)) { clearTimeout(timer); stream.off('data', onData); resolve(text); }
    };
    stream.on('data', onData);
    exited(child).then((code) => { clearTimeout(timer); reject(new Error(`exited (${code}) before '${marker}': ${text}`)); });
  });
}
