/**
 * Helper process for the network lab: send every frame of a pcap out of an
 * interface of the current network namespace.
 * Usage: send-frames IFNAME FILE REPEAT [CHUNK PAUSE_MS]
 * With CHUNK, pause PAUSE_MS after every CHUNK frames (so that receivers that
 * log each packet, NFLOG for one, are not overrun).
 */
import { readCapture } from '../../src/capture/pcap';
import { native } from '../../src/native';

const [ifname, file, repeat, chunk, pause] = process.argv.slice(2);
const frames = readCapture(file).map((f) => f.data);
const size = Number(chunk ?? 0);
let sent = 0;
if (size > 0) {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (let r = 0; r < Number(repeat ?? 1); r++) {
    for (let i = 0; i < frames.length; i += size) {
      sent += native().sendFrames(ifname, frames.slice(i, i + size), 1);
      Atomics.wait(sleeper, 0, 0, Number(pause ?? 1));
    }
  }
} else {
  sent = native().sendFrames(ifname, frames, Number(repeat ?? 1));
}
process.stdout.write(`${sent}\n`);
