/**
 * A control server over a Classifier (no NFQUEUE, no root): the same
 * ControlService and ControlServer `nfsieve run` uses, for the non-root tests.
 * argv: POLICY SOCKET [STATE]; prints "ready" when listening.
 */
import { Classifier } from '../../src/classifier';
import { loadPolicyFile } from '../../src/policy/parse';
import { ControlService } from '../../src/control/service';
import { ControlServer } from '../../src/control/server';
import { readState } from '../../src/control/state';

async function main(): Promise<void> {
  const [policy, socket, state] = process.argv.slice(2);
  const c = Classifier.fromPolicy(loadPolicyFile(policy));
  const service = new ControlService({ sets: c }, { stateFile: state, log: (m) => process.stderr.write(m + '\n') });
  if (state) {
    const s = readState(state);
    if (s) for (const w of service.restore(s)) process.stderr.write(`warning: ${w}\n`);
  }
  const server = await ControlServer.listen(service, { path: socket, group: process.env.CONTROL_GROUP });
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => { void server.close().then(() => process.exit(0)); });
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
});
