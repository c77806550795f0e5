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
      const w = new Worker(__filename, { workerData: { queue }, argv: ['worker', String(queue)] });
      const msg = await new Promise((resolve, reject) => { w.on('message', resolve); w.on('error', reject); });
      await new Promise((r) => w.on('exit', r));
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
  main(process.argv[2], Number(process.argv[3])).catch((e) => {
    process.stderr.write(`${e.stack}\n`);
    process.exitCode = 1;
  });
}
