import { readCapture } from '../capture/pcap';
import { decodeFrame, packetJson } from '../decode/packet';
import { summaryLine } from '../decode/summary';
import { ParsedArgs, UsageError } from './args';
import { Output } from './output';

export const INSPECT_FLAGS = { json: 'boolean' } as const;

/** `nfsieve inspect FILE [--json]`: decode every frame of a capture. */
export function inspect(args: ParsedArgs, out: Output): number {
  if (args.positional.length !== 1) throw new UsageError('usage: nfsieve inspect FILE.pcap [--json]');
  const frames = readCapture(args.positional[0]);
  const json = args.flags.has('json');
  for (const f of frames) {
    const p = decodeFrame(f.linkType, f.data);
    out.line(json ? JSON.stringify(packetJson(f.index, p)) : summaryLine(f.index, f.time, p));
  }
  return 0;
}
