/**
 * The demo's frame sender, started inside a lab namespace (`ip netns exec NS
 * node demo-sender.js IFNAME`): each stdin line is a JSON request
 * `{ "frames": [hex...], "repeat": N, "pauseMs": P }`; the frames go out of
 * IFNAME N times over (a pause of P ms between rounds), and the count sent is
 * written back as a line.
 */
import * as readline from 'node:readline';
import { native } from '../native';

const ifname = process.argv[2];
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function send(line: string): number {
  const req = JSON.parse(line) as { frames: string[]; repeat?: number; pauseMs?: number };
  const frames = req.frames.map((h) => Buffer.from(h, 'hex'));
  let sent = 0;
  for (let r = 0; r < (req.repeat ?? 1); r++) {
    sent += native().sendFrames(ifname, frames, 1);
    if (req.pauseMs) Atomics.wait(sleeper, 0, 0, req.pauseMs);
  }
  return sent;
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let answer: string;
  try { answer = String(send(line)); } catch (e) { answer = `error ${(e as Error).message}`; }
  process.stdout.write(`${answer}\n`);
});
