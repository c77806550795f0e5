/**
 * Metrics in the Prometheus text format, read back by a real parser
 * (prometheus_client's, Debian's python3-prometheus-client): label escaping,
 * counter naming, absent sources absent; the HTTP side (404, 405, loopback by
 * default, [::1]:PORT); and, as root, `nfsieve run --metrics` in a namespace
 * with values checked against the run's own statistics.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { spawnSync, ChildProcess } from 'node:child_process';
import { renderMetrics, serveMetrics, parseListen, escapeLabel, MetricsSnapshot, METRICS_CONTENT_TYPE } from '../src/metrics';
import { Lab, Link, labSkip, sh, espFrame, udpFrame } from './support/netns';
import { ROOT } from './support/compare';
import { onJsonLines } from '../src/cli/output';

const PYTHON = '/usr/bin/python3';
const haveParser = spawnSync(PYTHON, ['-c', 'import prometheus_client.parser'], { stdio: 'ignore' }).status === 0;
if (process.env.CI === 'true' && !haveParser) throw new Error('python3-prometheus-client is required in CI');
const noParser = !haveParser && 'the Prometheus parser is missing (apt-get install python3-prometheus-client)';

interface Family { name: string; type: string; help: string; samples: [string, Record<string, string>, number][] }

const PARSE = `
import sys, json
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
out = [{'name': f.name, 'type': f.type, 'help': f.documentation, 'samples': [[s.name, s.labels, s.value] for s in f.samples]} for f in text_string_to_metric_families(text)]
print(json.dumps(out))
`;

/** Parse exposition text with prometheus_client (in namespace `ns` when given, fetching URL instead of stdin). */
function parse(text: string): Family[] {
  const r = spawnSync(PYTHON, ['-c', PARSE], { input: text, encoding: 'utf8' });
  assert.equal(r.status, 0, `prometheus_client refused the text: ${r.stderr}\n${text}`);
  return JSON.parse(r.stdout);
}

const sample = (fams: Family[], name: string, labels: Record<string, string> = {}): number | undefined => {
  const key = (l: Record<string, string>): string => JSON.stringify(Object.entries(l).sort());
  for (const f of fams) for (const [n, l, v] of f.samples) if (n === name && key(l) === key(labels)) return v;
  return undefined;
};

const SNAPSHOT: MetricsSnapshot = {
  rules: [{ rule: 'ike "quoted" \\ back\nslash', packets: 12n, bytes: 3400n }, { rule: 'default', packets: 3, bytes: 180 }],
  queues: [{ queue: 3, received: 15, accepted: 12, dropped: 2, rejected: 1, enobufs: 0, verdictErrors: 0, kernel: { queueDropped: 4, userDropped: 5, present: true } }],
  sets: [{ name: 'gateways', file: 2, live: 7 }],
  limits: [{ rule: 'ike-init', overLimit: 99, evictions: 4n }],
  reloads: { ok: 2, failed: 1 },
  generation: 3,
  vici: { connected: true, hosts: 7 },
};

test('the renderer: label escaping, HELP and TYPE, *_total counters, read back by prometheus_client', { skip: noParser }, () => {
  assert.equal(escapeLabel('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  const text = renderMetrics(SNAPSHOT);
  assert.match(text, /^# HELP nfsieve_rule_packets_total .+\n# TYPE nfsieve_rule_packets_total counter\n/);
  assert.ok(text.includes('nfsieve_rule_packets_total{rule="ike \\"quoted\\" \\\\ back\\nslash"} 12\n'));
  const fams = parse(text);
  for (const f of fams) assert.ok(f.help.length > 0, `${f.name} has help`);
  const counters = fams.filter((f) => f.type === 'counter').flatMap((f) => f.samples.map((s) => s[0]));
  assert.ok(counters.length > 0 && counters.every((n) => n.endsWith('_total')), counters.join(' '));
  assert.equal(sample(fams, 'nfsieve_rule_packets_total', { rule: 'ike "quoted" \\ back\nslash' }), 12);
  assert.equal(sample(fams, 'nfsieve_rule_bytes_total', { rule: 'default' }), 180);
  assert.equal(sample(fams, 'nfsieve_rule_over_limit_total', { rule: 'ike-init' }), 99);
  assert.equal(sample(fams, 'nfsieve_rule_limit_evictions_total', { rule: 'ike-init' }), 4);
  assert.equal(sample(fams, 'nfsieve_queue_received_total', { queue: '3' }), 15);
  assert.equal(sample(fams, 'nfsieve_queue_verdicts_total', { queue: '3', verdict: 'accept' }), 12);
  assert.equal(sample(fams, 'nfsieve_queue_verdicts_total', { queue: '3', verdict: 'drop' }), 2);
  assert.equal(sample(fams, 'nfsieve_queue_verdicts_total', { queue: '3', verdict: 'reject' }), 1);
  assert.equal(sample(fams, 'nfsieve_queue_kernel_dropped_total', { queue: '3', reason: 'queue_dropped' }), 4);
  assert.equal(sample(fams, 'nfsieve_queue_kernel_dropped_total', { queue: '3', reason: 'user_dropped' }), 5);
  assert.equal(sample(fams, 'nfsieve_set_members', { origin: 'live', set: 'gateways' }), 7);
  assert.equal(sample(fams, 'nfsieve_reloads_total', { result: 'failed' }), 1);
  assert.equal(sample(fams, 'nfsieve_policy_generation'), 3);
  assert.equal(sample(fams, 'nfsieve_vici_connected'), 1);
});

test('absent sources are absent; an empty snapshot is an empty, valid text', { skip: noParser }, () => {
  assert.equal(renderMetrics({}), '');
  assert.deepEqual(parse(''), []);
  const fams = parse(renderMetrics({ rules: SNAPSHOT.rules }));
  assert.deepEqual(fams.map((f) => f.name).sort(), ['nfsieve_rule_bytes', 'nfsieve_rule_packets']);
});

test('listen addresses: loopback unless a host is given; [IPv6]:PORT', () => {
  assert.deepEqual(parseListen('9100'), { host: '127.0.0.1', port: 9100 });
  assert.deepEqual(parseListen(':9100'), { host: '127.0.0.1', port: 9100 });
  assert.deepEqual(parseListen('[::1]:9100'), { host: '::1', port: 9100 });
  assert.deepEqual(parseListen('0.0.0.0:9100'), { host: '0.0.0.0', port: 9100 });
  assert.deepEqual(parseListen('localhost:1'), { host: 'localhost', port: 1 });
  for (const bad of ['', 'host:', '::1:9100', '1.2.3.4:70000', 'a:b', '[::1]']) assert.throws(() => parseListen(bad), /--metrics expects/, bad);
});

function get(port: number, host: string, p: string, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path: p, method }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the server: GET /metrics, 404 elsewhere, 405 for other methods, loopback by default', async () => {
  const server = await serveMetrics(parseListen('0'), () => SNAPSHOT);
  try {
    assert.equal(server.address.host, '127.0.0.1');
    const ok = await get(server.address.port, '127.0.0.1', '/metrics');
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['content-type'], METRICS_CONTENT_TYPE);
    assert.equal(ok.body, renderMetrics(SNAPSHOT));
    assert.equal((await get(server.address.port, '127.0.0.1', '/metrics?x=1')).status, 200);
    assert.equal((await get(server.address.port, '127.0.0.1', '/')).status, 404);
    assert.equal((await get(server.address.port, '127.0.0.1', '/metrics/x')).status, 404);
    const post = await get(server.address.port, '127.0.0.1', '/metrics', 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const head = await get(server.address.port, '127.0.0.1', '/metrics', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  } finally {
    await server.close();
  }
  const six = await serveMetrics(parseListen('[::1]:0'), () => ({ generation: 1 }));
  try {
    assert.equal(six.address.host, '::1');
    assert.equal((await get(six.address.port, '::1', '/metrics')).body, renderMetrics({ generation: 1 }));
  } finally {
    await six.close();
  }
});

// ---- end to end, root -------------------------------------------------------

const labMissing = labSkip();
const rootSkip = labMissing || noParser;
const BIN = path.join(ROOT, 'bin', 'nfsieve.js');
const QUEUE = '31';
let lab: Lab;
let gw: Link, peer: Link;

before(() => {
  if (rootSkip) return;
  lab = new Lab(`nfsm${process.pid % 10000}`);
  [gw, peer] = lab.connect('metgw', 'metpeer', 53);
  sh(['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', gw.ifname, '-j', 'NFQUEUE', '--queue-num', QUEUE, '--queue-bypass'], { ns: gw.ns });
});
after(() => { if (lab) lab.cleanup(); });

const FETCH = `
import sys, json, urllib.request
from prometheus_client.parser import text_string_to_metric_families
r = urllib.request.urlopen(sys.argv[1])
print(json.dumps({'type': r.headers['Content-Type'], 'families': [{'name': f.name, 'type': f.type, 'help': f.documentation, 'samples': [[s.name, s.labels, s.value] for s in f.samples]} for f in text_string_to_metric_families(r.read().decode())]}))
`;

test('nfsieve run --metrics: values agree with the run\'s own statistics; reloads and generation move', { skip: rootSkip }, async () => {
  const policy = lab.file('m.yaml', `default: drop\nsets:\n  gateways:\n    type: address\n    elements: [${peer.address}, 10.99.0.0/16]\nrules:\n  - name: esp-from-gateways\n    src: "@gateways"\n    proto: esp\n    action: accept\n  - name: discard-limited\n    proto: udp\n    dport: 9\n    limit: {rate: 1/minute, burst: 2}\n    action: accept\n`);
  const child: ChildProcess = lab.spawn(gw.ns, [process.execPath, BIN, 'run', policy, '--queue', QUEUE, '--json', '--stats-every', '1', '--metrics', '127.0.0.1:0']);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the run's JSON lines, read field by field below
  const lines: Record<string, any>[] = [];
  onJsonLines(child.stdout!, (o) => lines.push(o));
  const exited = new Promise((r) => child.once('exit', r));
  const waitFor = async (what: string, fn: () => boolean): Promise<void> => {
    for (let t = 0; !fn(); t++) {
      if (t > 300) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(lines.slice(-3))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const fetch = (url: string): { type: string; families: Family[] } => {
    const r = spawnSync('ip', ['netns', 'exec', gw.ns, PYTHON, '-c', FETCH, url], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  try {
    await waitFor('the metrics note', () => lines.some((l) => l.event === 'note' && /^metrics on /.test(l.message)));
    const url = /^metrics on (\S+)/.exec(lines.find((l) => l.event === 'note' && /^metrics on /.test(l.message))!.message)![1];
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const frames = [
      ...Array.from({ length: 20 }, (_, i) => espFrame(gw.mac, peer.mac, peer.address, gw.address, 0x100, i + 1)),
      ...Array.from({ length: 10 }, () => udpFrame(gw.mac, peer.mac, peer.address, gw.address, 1000, 9, new Uint8Array(8))),
    ];
    assert.equal(lab.send(peer, frames), 30);
    await waitFor('the 30 packets in the statistics', () => lines.some((l) => l.event === 'stats' && l.queues[0].received === 30));
    const stats = [...lines].reverse().find((l) => l.event === 'stats')!;
    const m = fetch(url);
    assert.equal(m.type, METRICS_CONTENT_TYPE);
    const f = m.families;
    for (const r of stats.rules) {
      assert.equal(sample(f, 'nfsieve_rule_packets_total', { rule: String(r.rule) }), r.packets);
      assert.equal(sample(f, 'nfsieve_rule_bytes_total', { rule: String(r.rule) }), r.bytes);
    }
    assert.equal(sample(f, 'nfsieve_rule_packets_total', { rule: 'esp-from-gateways' }), 20);
    assert.equal(sample(f, 'nfsieve_rule_packets_total', { rule: 'discard-limited' }), 2);
    assert.equal(sample(f, 'nfsieve_rule_packets_total', { rule: 'default' }), 8);
    assert.equal(sample(f, 'nfsieve_rule_over_limit_total', { rule: 'discard-limited' }), 8);
    assert.equal(stats.rules[1].overLimit, 8);
    assert.equal(sample(f, 'nfsieve_rule_over_limit_total', { rule: 'esp-from-gateways' }), undefined, 'rules without a limit have no over-limit series');
    const q = { queue: QUEUE };
    assert.equal(sample(f, 'nfsieve_queue_received_total', q), 30);
    assert.equal(sample(f, 'nfsieve_queue_verdicts_total', { ...q, verdict: 'accept' }), 22);
    assert.equal(sample(f, 'nfsieve_queue_verdicts_total', { ...q, verdict: 'drop' }), 8);
    assert.equal(sample(f, 'nfsieve_queue_enobufs_total', q), stats.queues[0].enobufs);
    assert.equal(sample(f, 'nfsieve_queue_kernel_dropped_total', { ...q, reason: 'user_dropped' }), stats.queues[0].kernel.userDropped);
    assert.equal(sample(f, 'nfsieve_set_members', { origin: 'file', set: 'gateways' }), 2);
    assert.equal(sample(f, 'nfsieve_set_members', { origin: 'live', set: 'gateways' }), 0);
    assert.equal(sample(f, 'nfsieve_policy_generation'), stats.generation);
    assert.equal(sample(f, 'nfsieve_reloads_total', { result: 'ok' }), 0);
    child.kill('SIGHUP');
    await waitFor('the reload', () => lines.some((l) => l.event === 'note' && /^reloaded /.test(l.message)));
    const after = fetch(url).families;
    assert.equal(sample(after, 'nfsieve_reloads_total', { result: 'ok' }), 1);
    assert.equal(sample(after, 'nfsieve_policy_generation'), stats.generation + 1);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  assert.ok(fs.existsSync(policy));
});
