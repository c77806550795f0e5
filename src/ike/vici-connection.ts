/**
 * One connection to charon's vici socket: requests answered strictly in
 * order (the protocol has no sequence numbers, so one at a time), event
 * registration, and events handed to a callback as they arrive, during a
 * request too (that is how list-sas streams its list-sa events).
 */
import * as net from 'node:net';
import {
  CMD_REQUEST, CMD_RESPONSE, CMD_UNKNOWN, EVENT_REGISTER, EVENT_UNREGISTER, EVENT_CONFIRM, EVENT_UNKNOWN, EVENT,
  ViciError, ViciSection, ViciInput, SegmentReader, decodePacket, encodePacket,
} from './vici-message';

/** A request charon leaves this long without an answer or a streamed event fails the connection. */
export const VICI_REQUEST_TIMEOUT_MS = 10_000;

interface Pending {
  packet: Buffer;
  what: string;
  /** The packet types that answer this request: [success, failure]. */
  answers: [number, number];
  resolve: (message: ViciSection) => void;
  reject: (err: Error) => void;
}

export class ViciConnection {
  private readonly socket: net.Socket;
  private readonly reader = new SegmentReader();
  private readonly queue: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;
  private closedWith: Error | null = null;
  private closeListeners: ((err: Error) => void)[] = [];

  private constructor(socket: net.Socket, private readonly onEvent: (name: string, message: ViciSection) => void) {
    this.socket = socket;
    socket.on('data', (chunk) => this.receive(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('charon closed the connection')));
  }

  /** Connect to a Unix socket path; rejects with the socket error (ENOENT, ECONNREFUSED...). */
  static open(path: string, onEvent: (name: string, message: ViciSection) => void): Promise<ViciConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path });
      const early = (err: Error): void => reject(err);
      socket.once('error', early);
      socket.once('connect', () => {
        socket.removeListener('error', early);
        resolve(new ViciConnection(socket, onEvent));
      });
    });
  }

  /** A command; resolves with the response message. CMD_UNKNOWN rejects. */
  command(name: string, message: ViciInput = {}): Promise<ViciSection> {
    return this.enqueue(encodePacket({ type: CMD_REQUEST, name, message }), `command '${name}'`, [CMD_RESPONSE, CMD_UNKNOWN]);
  }

  register(event: string): Promise<ViciSection> {
    return this.enqueue(encodePacket({ type: EVENT_REGISTER, name: event }), `registration for '${event}'`, [EVENT_CONFIRM, EVENT_UNKNOWN]);
  }

  unregister(event: string): Promise<ViciSection> {
    return this.enqueue(encodePacket({ type: EVENT_UNREGISTER, name: event }), `unregistration of '${event}'`, [EVENT_CONFIRM, EVENT_UNKNOWN]);
  }

  /** Called once, with the reason, when the connection ends for any cause. */
  onClose(listener: (err: Error) => void): void {
    if (this.closedWith) listener(this.closedWith); else this.closeListeners.push(listener);
  }

  close(): void { this.fail(new Error('closed')); }

  private enqueue(packet: Buffer, what: string, answers: [number, number]): Promise<ViciSection> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise((resolve, reject) => {
      this.queue.push({ packet, what, answers, resolve, reject });
      if (this.queue.length === 1) this.sendHead();
    });
  }

  private sendHead(): void {
    const head = this.queue[0];
    if (!head) return;
    this.socket.write(head.packet);
    this.arm();
  }

  /** (Re)start the deadline of the request in flight: silence, not a long stream of events, fails it. */
  private arm(): void {
    const head = this.queue[0];
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!head) return;
    this.timer = setTimeout(() => this.fail(new Error(`charon did not answer the ${head.what} within ${VICI_REQUEST_TIMEOUT_MS} ms`)), VICI_REQUEST_TIMEOUT_MS);
    this.timer.unref();
  }

  private receive(chunk: Buffer): void {
    try {
      for (const segment of this.reader.push(chunk)) {
        if (this.closedWith) return;
        this.dispatch(segment);
      }
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private dispatch(segment: Buffer): void {
    const packet = decodePacket(segment);
    if (packet.type === EVENT) {
      if (this.timer) this.arm();
      this.onEvent(packet.name ?? '', packet.message ?? new Map());
      return;
    }
    const head = this.queue.shift();
    if (!head) throw new ViciError('bad-packet-type', `an answer (packet type ${packet.type}) with no request waiting`);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (packet.type === head.answers[0]) head.resolve(packet.message ?? new Map());
    else if (packet.type === head.answers[1]) head.reject(new Error(`charon refused the ${head.what} (unknown to it)`));
    else {
      const err = new ViciError('bad-packet-type', `packet type ${packet.type} in answer to the ${head.what}`);
      head.reject(err);
      throw err;
    }
    this.sendHead();
  }

  private fail(err: Error): void {
    if (this.closedWith) return;
    this.closedWith = err;
    if (this.timer) clearTimeout(this.timer);
    this.socket.destroy();
    for (const p of this.queue.splice(0)) p.reject(err);
    for (const l of this.closeListeners.splice(0)) l(err);
  }
}
