/**
 * `nfsieve demo` (root): the live-gateway story in network namespaces, on
 * examples/live-gateway.yaml with the known peer as its one gateway. The
 * known gateway's IKE and ESP pass; an unknown peer's are refused; it is
 * admitted live (`nfsieve set add` over the control socket) and removed again;
 * a flood of IKE_SA_INIT from 1,000 spoofed sources is shed to the policy's
 * rates while the known gateway's IKE passes in full; then both peers keep
 * talking for --duration seconds. Counters after each step: redrawn in place
 * on a terminal (one screen, like top), lines when piped, JSON with --json.
 */
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { ParsedArgs, intFlag } from './args';
import { Output } from './output';
import { DemoLab, Sender } from './demo-lab';
import { End, tunnelTraffic, ikeSaInit, spoofedInits } from './demo-traffic';
import { request } from '../control/client';

export const DEMO_FLAGS = { duration: 'string', json: 'boolean' } as const;

const EXAMPLE = path.resolve(__dirname, '..', '..', 'examples', 'live-gateway.yaml');
const FLOOD_SOURCES = 1000;
const FLOOD_ROUNDS = 50;
const FLOOD_PAUSE_MS = 20;
/** ANSI: cursor home, clear the screen. */
const HOME_CLEAR = '\x1b[H\x1b[2J';

interface RuleRow { rule: string; packets: number; overLimit?: number }
interface Stats { rules: RuleRow[]; queues: { received: number; accepted: number; dropped: number }[] }
interface Step { name: string; title: string; command?: string; sent: number; delta: Record<string, number> }
interface Ctx { lab: DemoLab; ends: ReturnType<DemoLab['build']>; peer: Sender; stranger: Sender }

async function stats(lab: DemoLab): Promise<Stats> {
  const r = await request(lab.control, { cmd: 'stats' });
  if (!r.ok) throw new Error(`stats: ${r.error.message}`);
  return r.stats as Stats;
}

const received = (s: Stats): number => s.queues.reduce((n, q) => n + q.received, 0);

/** Wait until the queue has received `count` more packets than in `before` (every frame the demo sends is queued). */
async function settle(lab: DemoLab, before: Stats, count: number): Promise<Stats> {
  let now = await stats(lab);
  for (let t = 0; received(now) - received(before) < count && t < 100; t++) {
    await new Promise((r) => setTimeout(r, 50));
    now = await stats(lab);
  }
  return now;
}

function delta(before: Stats, after: Stats): Record<string, number> {
  const out: Record<string, number> = {};
  after.rules.forEach((r, i) => { const d = r.packets - (before.rules[i]?.packets ?? 0); if (d) out[r.rule] = d; });
  return out;
}

async function setCommand(lab: DemoLab, cmd: 'set.add' | 'set.del', value: string): Promise<string> {
  const r = await request(lab.control, { cmd, set: 'gateways', values: [value] });
  if (!r.ok) throw new Error(`${cmd}: ${r.error.message}`);
  return `nfsieve set ${cmd === 'set.add' ? 'add' : 'del'} gateways ${value}`;
}

const tunnel = (s: Sender, from: End, to: End, rounds: number): Promise<number> => s.send(tunnelTraffic(from, to), rounds);

/** The story: each entry acts, and returns what it sent (and the command it ran). */
function story(c: Ctx): { name: string; title: string; act: () => Promise<{ sent: number; command?: string }> }[] {
  const { peer, gwPeer, stranger, gwStranger } = c.ends;
  return [
    { name: 'known-gateway', title: `the known gateway ${peer.ip}: IKE_SA_INIT, IKE_AUTH and ESP pass`,
      act: async () => ({ sent: (await c.peer.send([ikeSaInit(peer, gwPeer, 1)], 5)) + (await tunnel(c.peer, peer, gwPeer, 10)) }) },
    { name: 'unknown-refused', title: `an unknown peer ${stranger.ip}: its IKE_AUTH and ESP are refused`,
      act: async () => ({ sent: await tunnel(c.stranger, stranger, gwStranger, 10) }) },
    { name: 'admitted', title: `${stranger.ip} admitted live through the control socket: it passes`,
      act: async () => { const command = await setCommand(c.lab, 'set.add', stranger.ip); return { command, sent: await tunnel(c.stranger, stranger, gwStranger, 10) }; } },
    { name: 'removed', title: `${stranger.ip} removed again: refused`,
      act: async () => { const command = await setCommand(c.lab, 'set.del', stranger.ip); return { command, sent: await tunnel(c.stranger, stranger, gwStranger, 10) }; } },
    { name: 'flood', title: `IKE_SA_INIT flood from ${FLOOD_SOURCES} spoofed sources (~${Math.round((FLOOD_SOURCES * 1000) / FLOOD_PAUSE_MS / 1000)}k/s): shed to 10/s per source, 1,000/s in all; the gateway's IKE passes`,
      act: async () => {
        const [flood, known] = await Promise.all([
          c.stranger.send(spoofedInits(stranger, gwStranger, FLOOD_SOURCES), FLOOD_ROUNDS, FLOOD_PAUSE_MS),
          c.peer.send([ikeSaInit(peer, gwPeer, 2), ...tunnelTraffic(peer, gwPeer)], FLOOD_ROUNDS, FLOOD_PAUSE_MS),
        ]);
        return { sent: flood + known };
      } },
  ];
}

class Screen {
  readonly steps: Step[] = [];
  latest: Stats | null = null;
  constructor(private readonly out: Output, private readonly mode: 'tty' | 'lines' | 'json', private readonly header: string) {}

  step(s: Step, after: Stats): void {
    this.steps.push(s);
    this.latest = after;
    if (this.mode === 'json') return this.emit({ event: 'step', ...s, rules: after.rules });
    if (this.mode === 'lines') return this.print([...this.stepLines(s, this.steps.length)]);
    this.redraw();
  }

  counters(s: Stats, label: string): void {
    this.latest = s;
    if (this.mode === 'json') return this.emit({ event: 'counters', label, rules: s.rules, queues: s.queues });
    if (this.mode === 'lines') return this.print([`${label}:`, ...this.table(s)]);
    this.redraw(label);
  }

  private *stepLines(s: Step, n: number): Generator<string> {
    yield `[${n}] ${s.title}`;
    if (s.command) yield `    $ ${s.command}`;
    yield `    ${Object.entries(s.delta).map(([r, d]) => `${r} +${d}`).join(', ') || 'nothing counted'}`;
  }

  private table(s: Stats): string[] {
    const q = s.queues[0];
    return [`  queue 0: received ${q.received}, accepted ${q.accepted}, dropped ${q.dropped}`, `  ${'rule'.padEnd(24)} ${'packets'.padStart(9)} ${'over-limit'.padStart(11)}`,
      ...s.rules.map((r) => `  ${String(r.rule).padEnd(24)} ${String(r.packets).padStart(9)} ${String(r.overLimit ?? 0).padStart(11)}`)];
  }

  private redraw(label = ''): void {
    const lines = [this.header, ''];
    this.steps.forEach((s, i) => lines.push(...this.stepLines(s, i + 1)));
    if (this.latest) lines.push('', label || 'counters:', ...this.table(this.latest));
    this.out.flush();
    process.stdout.write(HOME_CLEAR);
    this.print(lines);
  }

  private emit(o: Record<string, unknown>): void { this.print([JSON.stringify(o)]); }
  private print(lines: string[]): void { for (const l of lines) this.out.line(l); this.out.flush(); }
}

function policyFor(lab: DemoLab, peer: End): string {
  const doc = parseDocument(fs.readFileSync(EXAMPLE, 'utf8'));
  doc.setIn(['sets', 'gateways', 'elements'], [peer.ip]);
  const file = path.join(lab.tmp, 'live-gateway.yaml');
  fs.writeFileSync(file, doc.toString());
  return file;
}

async function tellStory(c: Ctx, screen: Screen): Promise<void> {
  for (const s of story(c)) {
    const before = await stats(c.lab);
    const { sent, command } = await s.act();
    const after = await settle(c.lab, before, sent);
    screen.step({ name: s.name, title: s.title, command, sent, delta: delta(before, after) }, after);
  }
}

/** Both peers keep talking for `seconds`, the counters once a second. */
async function steady(c: Ctx, screen: Screen, seconds: number): Promise<void> {
  const { peer, gwPeer, stranger, gwStranger } = c.ends;
  for (let s = 1; s <= seconds; s++) {
    await Promise.all([tunnel(c.peer, peer, gwPeer, 5), tunnel(c.stranger, stranger, gwStranger, 5), new Promise((r) => setTimeout(r, 1000))]);
    screen.counters(await stats(c.lab), `t=${s}s of traffic from both peers`);
  }
}

function preflight(): string | null {
  if (process.getuid?.() !== 0) return 'nfsieve demo needs root: it builds network namespaces and iptables rules.\nWithout root, see the classifier at work on captures and rule sets:\n  nfsieve classify examples/freeswan-gateway.yaml --pcap FILE\n  nfsieve bench examples/freeswan-gateway.yaml\n';
  for (const tool of [['ip', '-V'], ['iptables', '--version']]) {
    try { execFileSync(tool[0], tool.slice(1), { stdio: 'ignore' }); } catch { return `nfsieve demo needs ${tool[0]} (apt-get install -y iproute2 iptables)\n`; }
  }
  return null;
}

export async function demo(args: ParsedArgs, out: Output): Promise<number> {
  const refused = preflight();
  if (refused) { process.stderr.write(refused); return 1; }
  const duration = intFlag(args, 'duration', 0, 86400) ?? 10;
  const mode = args.flags.has('json') ? 'json' : process.stdout.isTTY ? 'tty' : 'lines';
  const lab = new DemoLab();
  const onSignal = (): void => { lab.cleanupNow(); process.exit(130); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const ends = lab.build();
    await lab.startGateway(policyFor(lab, ends.peer), (o, line) => { if (mode === 'json' && o.event === 'note') { out.line(line); out.flush(); } });
    const header = `lab: gateway ${ends.gwPeer.ip}/${ends.gwStranger.ip} running examples/live-gateway.yaml on queue 0; known gateway ${ends.peer.ip}, unknown peer ${ends.stranger.ip} (Ctrl-C stops)`;
    if (mode !== 'tty') { out.line(mode === 'json' ? JSON.stringify({ event: 'lab', message: header }) : header); out.flush(); }
    const screen = new Screen(out, mode, header);
    const ctx: Ctx = { lab, ends, peer: lab.sender(ends.peer), stranger: lab.sender(ends.stranger) };
    await tellStory(ctx, screen);
    await steady(ctx, screen, duration);
    await lab.cleanup();
    if (mode !== 'json') { out.line('done: the lab is removed.'); out.flush(); }
    return 0;
  } finally {
    lab.cleanupNow();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
