/** `nfsieve inspect FILE|- [--json]`: decode every frame of a capture, streamed. */
import { streamCapture, Frame } from '../capture/pcap';
import { decodeFrames, packetJson } from '../decode/packet';
import { summaryLine } from '../decode/summary';
import { ParsedArgs, UsageError } from './args';
import { Output } from './output';

export const INSPECT_FLAGS = { json: 'boolean' } as const;

/** Consecutive runs of frames with the same key, in file order (the whole array when there is one run). */
export function runsOf<K>(frames: Frame[], key: (f: Frame) => K): Frame[][] {
  const runs: Frame[][] = [];
  for (let i = 0; i < frames.length;) {
    let j = i + 1;
    while (j < frames.length && key(frames[j]) === key(frames[i])) j++;
    runs.push(i === 0 && j === frames.length ? frames : frames.slice(i, j));
    i = j;
  }
  return runs;
}

/** Calls `each(run)` for every run of consecutive frames sharing a link type. */
export function byLinkType(frames: Frame[], each: (run: Frame[]) => void): void {
  for (const run of runsOf(frames, (f) => f.linkType)) each(run);
}

export async function inspect(args: ParsedArgs, out: Output): Promise<number> {
  if (args.positional.length !== 1) throw new UsageError('usage: nfsieve inspect FILE.pcap|- [--json]');
  const json = args.flags.has('json');
  for await (const batch of streamCapture(args.positional[0])) {
    byLinkType(batch, (run) => {
      const packets = decodeFrames(run[0].linkType, run.map((f) => f.data));
      for (let k = 0; k < run.length; k++) {
        const f = run[k];
        out.line(json ? JSON.stringify(packetJson(f.index, packets[k])) : summaryLine(f.index, f.time, packets[k], f));
      }
    });
  }
  return 0;
}
