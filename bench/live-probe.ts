/**
 * Helper of bench/live-nfqueue.ts, run inside the gateway's namespace: binds
 * UDP ADDRESS:500 (what the policy accepts reaches it), then ROUNDS times
 * adds the peer to the set through the control socket and times the first
 * datagram after the answer, and deletes it and times the last one.
 * Prints one JSON line: {"add": [ms...], "del": [ms...], "rtt": [ms...], "gaps": [ms...]}.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';

const [address, socketPath, peer, roundsText] = process.argv.slice(2);
const now = (): number => Number(process.hrtime.bigint()) / 1e6;  // CLOCK_MONOTONIC, ms
let lastArrival = 0;
let waiter: ((t: number) => void) | null = null;
const gaps: number[] = [];  // between consecutive admitted datagrams: the resolution of the measure
const udp = dgram.createSocket('udp4');
udp.on('message', () => {
  const t = now();
  if (t - lastArrival < 30) gaps.push(t - lastArrival);
  lastArrival = t;
  if (waiter) { const w = waiter; waiter = null; w(lastArrival); }
});

function request(conn: net.Socket, body: object): Promise<number> {
  return new Promise((resolve) => {
    conn.once('data', () => resolve(now()));
    conn.write(JSON.stringify({ v: 1, ...body }) + '\n');
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  await new Promise<void>((r) => udp.bind(500, address, () => r()));
  const conn = net.createConnection(socketPath);
  await new Promise((r) => conn.once('connect', r));
  const add: number[] = [], del: number[] = [], rtt: number[] = [];
  for (let i = 0; i < Number(roundsText); i++) {
    await sleep(30);
    const first = new Promise<number>((r) => { waiter = r; });
    const sent = now();
    const answered = await request(conn, { cmd: 'set.add', set: 'gateways', values: [peer] });
    rtt.push(answered - sent);
    add.push((await first) - answered);  // negative: a packet was admitted before the answer was read
    const answeredDel = await request(conn, { cmd: 'set.del', set: 'gateways', values: [peer] });
    await sleep(30);  // anything later than this would be a lost change, not a delay
    del.push(Math.max(0, lastArrival - answeredDel));
  }
  process.stdout.write(JSON.stringify({ add, del, rtt, gaps }) + '\n');
  conn.destroy();
  udp.close();
}

main().catch((e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
