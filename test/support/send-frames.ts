/**
 * Helper process for the network lab: send every frame of a pcap out of an
 * interface of the current network namespace. Usage: send-frames IFNAME FILE REPEAT
 */
import { readCapture } from '../../src/capture/pcap';
import { native } from '../../src/native';

const [ifname, file, repeat] = process.argv.slice(2);
const frames = readCapture(file).map((f) => f.data);
process.stdout.write(`${native().sendFrames(ifname, frames, Number(repeat ?? 1))}\n`);
