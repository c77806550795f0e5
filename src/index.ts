/**
 * nfsieve: the public API. Everything here works from `require('nfsieve')`
 * and `import ... from 'nfsieve'`.
 */
export { decodeFrame, decodeFrames, packetJson, recordToPacket } from './decode/packet';
export type { DecodedPacket, IkeHeader, Fragment, NattKind } from './decode/packet';
export { referenceDecode } from './decode/reference';
export { formatAddress, parseAddress } from './decode/address';
export { readCapture, parseCapture, writePcap, CaptureError } from './capture/pcap';
export type { Frame } from './capture/pcap';
