/**
 * Helper process for test/queue-api.test.ts, run inside a lab namespace:
 * exercises attach() in-process. Usage: attach-script MODE QUEUE
 *   unref     attach and return: the process must exit on its own
 *   throwing  a 'stats' listener that throws: the process must survive it
 *   worker    attach and close from a worker thread
 */
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import { attach } from '../../src/queue';
import { definePolicy } from '../../src/policy/define';

const policy = definePolicy({ default: 'accept', rules: [{ name: 'ike', proto: 'udp', dport: 500, action: 'accept' }] });

async function main(mode: string, queue: number): Promise<void> {
  if (mode === 'unref') {
    attach(policy, { queues: [queue] });
    process.stdout.write('attached\n');
    return; // nothing else keeps the loop alive: the process exits
  }
  if (mode === 'throwing') {
    const q = attach(policy, { queues: [queue], statsIntervalMs: 100 });
    let calls = 0;
    q.on('stats', () => {
      calls++;
      throw new Error('listener failure');
    });
    await new Promise((r) => setTimeout(r, 700));
    await q.close();
    process.stdout.write(`survived ${calls}\n`);
    return;
  }
  if (mode === 'worker') {
    if (isMainThread) {
      // Every listener before the first await: a worker that exits before
      // (or without) posting its message must not go unnoticed.
      const w = new Worker(__filename, { workerData: { queue }, argv: ['worker', String(queue)] });
      let msg: unknown;
      w.on('message', (m) => { msg = m; });
      const code = await new Promise<number>((resolve, reject) => { w.on('exit', resolve); w.on('error', reject); });
      if (code !== 0 || msg === undefined) throw new Error(`worker exited with ${code} and message ${String(msg)}`);
      process.stdout.write(`${msg}\n`);
    }
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

if (!isMainThread) {
  const q = attach(policy, { queues: [workerData.queue] });
  const s = q.stats();
  q.close().then(() => parentPort!.postMessage(`worker attached queue ${s.queues[0].queue} and closed`));
} else {
  let finished = false;
  // A promise nobody can settle any more lets the loop drain: say so, fail.
  process.on('exit', () => {
    if (!finished) { process.stderr.write('attach-script: exited before main() finished\n'); process.exitCode = 1; }
  });
  main(process.argv[2], Number(process.argv[3])).then(() => { finished = true; }, (e) => {
    finished = true;
    process.stderr.write(`${e.stack}\n`);
    process.exitCode = 1;
  });
}
