/**
 * What each command-line flag means, once for every command that takes it:
 * `nfsieve COMMAND --help` lists a command's flags with these lines (a test
 * checks that every flag of every command has one).
 */
import { CT_STATES } from '../policy/model';

/** A flag's value placeholder ('' for a boolean flag) and what it does. */
export interface FlagHelp { value: string; text: string }

const h = (value: string, text: string): FlagHelp => ({ value, text });

export const FLAG_HELP: Readonly<Record<string, FlagHelp>> = {
  // Policies and their sources.
  iptables: h('', 'POLICY is iptables-save output, imported as `nfsieve import iptables` does'),
  table: h('T', 'iptables table to import (default filter)'),
  chain: h('C', 'iptables chain to import (default INPUT)'),
  ipset: h('FILE', 'ipset save file giving the members of the sets the rules name'),
  backend: h('legacy|nft', "iptables semantics to follow (default: the iptables-save header's)"),
  'skip-unsupported': h('', 'warn about and skip rules that cannot be imported exactly, instead of refusing the file'),
  // Inputs and outputs.
  json: h('', 'JSON lines on stdout (errors too)'),
  pcap: h('FILE|-', 'pcap or pcapng capture (- reads stdin)'),
  classbench: h('RULES', 'a ClassBench filter set instead of a policy'),
  trace: h('TRACE', 'ClassBench trace of headers (bench: generated from the rules when omitted)'),
  seconds: h('S', 'measure for about S seconds, the best pass wins (default 2)'),
  hex: h('PACKET', 'the packet as hexadecimal (spaces and colons ignored)'),
  'link-type': h('N', 'link type of --hex (pcap LINKTYPE_*; default 101, raw IP)'),
  index: h('N', 'frame number in --pcap, from 0'),
  duration: h('S', 'seconds both peers keep talking at the end (default 10)'),
  // Packet metadata a capture lacks.
  in: h('IF', 'input interface of every packet'),
  out: h('IF', 'output interface of every packet'),
  ctstate: h('STATE', `conntrack state of every packet (${CT_STATES.join(', ')})`),
  mark: h('N', 'packet mark of every packet'),
  // NFQUEUE.
  queue: h('N[:M]', 'queue number, or a range of queues (one native thread each)'),
  'fail-open': h('', 'let the kernel accept packets while the queue is full (default: it drops them)'),
  'copy-range': h('B', 'bytes of each packet copied to user space (default 256)'),
  'coalesce-us': h('U', 'wake-up coalescing: the longest a queue thread sleeps to gather a batch of 32, and so the most a packet waits for it, in microseconds, 0-1000 (default 1000; 0: off)'),
  'max-len': h('N', 'kernel queue length in packets (default 4096)'),
  rcvbuf: h('B', 'socket receive buffer in bytes (default 8 MiB)'),
  'no-gso': h('', 'have the kernel segment GSO packets before queueing them'),
  'reject-mark': h('M', 'verdict reject: accept with mark M (for an iptables REJECT rule after the queue) instead of dropping'),
  'stats-every': h('S', 'print counters every S seconds (default 10; 0: only at the end)'),
  offload: h('', 'ESP and fixed-port UDP from set members decided in the kernel through ipsets (hook: print the rules; run: keep the ipsets in step)'),
  // The daemon's control socket, state and learning.
  control: h('PATH', 'control socket (default $NFSIEVE_CONTROL, else /run/nfsieve/nfsieve.sock)'),
  'control-group': h('G', 'make the control socket 0660 for group G (default 0600, owner only)'),
  'no-control': h('', 'no control socket'),
  state: h('FILE', 'live set members kept across restarts in FILE'),
  vici: h('', "learn gateways from strongSwan's vici socket as IKE SAs come up and go down"),
  'vici-socket': h('PATH', 'vici socket (default /var/run/charon.vici); implies --vici'),
  'learn-set': h('NAME', 'the set --vici fills (default gateways)'),
  metrics: h('[HOST:]PORT', 'serve Prometheus metrics over HTTP (HOST defaults to loopback)'),
  // Live sets.
  timeout: h('S', 'the member expires after S seconds'),
  live: h('', 'flush only live members (the default)'),
  file: h('', "flush only the policy file's members"),
  all: h('', 'flush every member'),
  set: h('NAME', 'the set the IKE daemon\'s peers go into (default gateways)'),
  // Kernel rules.
  'hook-chain': h('CHAIN', 'built-in chain to hook (default INPUT)'),
  'hook-table': h('TABLE', 'table to hook (default filter)'),
  'hook-name': h('NAME', 'name of the chain or nftables table the rules go into (default NFSIEVE, nfsieve with --nft)'),
  nft: h('', 'an nftables ruleset for nft -f instead of an iptables script'),
  delete: h('', 'print the removal of exactly what the rules add'),
  'fail-closed': h('', 'no --queue-bypass: queued packets are dropped while nfsieve is not attached'),
  'cpu-fanout': h('', 'spread a queue range by CPU (--queue-cpu-fanout)'),
};

/** The options section of a command's usage, one aligned line per flag. */
export function flagLines(flags: Record<string, unknown>): string[] {
  const heads = Object.keys(flags).map((f) => {
    const help = FLAG_HELP[f];
    return { head: `  --${f}${help?.value ? ` ${help.value}` : ''}`, text: help?.text ?? '' };
  });
  heads.push({ head: '  -h, --help', text: 'this text' });
  const width = Math.max(...heads.map((x) => x.head.length)) + 2;
  return heads.map((x) => (x.text ? x.head.padEnd(width) + x.text : x.head));
}
