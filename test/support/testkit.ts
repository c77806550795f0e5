/**
 * The test kit addon (native/testkit, built by binding.gyp next to the product
 * addon, never shipped): native baselines for test/ and bench/ only.
 * NFSIEVE_TESTKIT names another build of it.
 */
import * as path from 'node:path';
import { ROOT } from './compare';

export interface TestKit {
  /** First-match linear scan over packed 5-tuple rules (test/support/linear.ts); out[i] = rule or -1. */
  linearClassifyTuples(rules: Uint32Array, tuples: Uint32Array, out: Int32Array): number;
  /** One queue worker's wake-up moderation (native/nfqueue/moderation.h) over made-up receives (count, max, begin, waited, end in ns, 5 per receive): per receive, the sleep it chose (ns) and its rate estimate (packets/s). */
  moderate(windowUs: number, target: number, receives: Float64Array): Float64Array;
  /** Runs the calling (JavaScript) thread on these CPUs only; returns the CPUs it could run on before. */
  setThreadCpus(cpus: number[]): number[];
}

let cached: TestKit | undefined;

/** Load (once) and return the test kit addon. */
export function testkit(): TestKit {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  cached ??= require(process.env.NFSIEVE_TESTKIT ?? path.join(ROOT, 'build', 'Release', 'nfsieve_testkit.node')) as TestKit;
  return cached;
}
