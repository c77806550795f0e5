import { loadClassbenchRules, loadTrace } from '../classbench/classbench';
import { compile } from '../compile/compile';
import { native } from '../native';
import { ParsedArgs, UsageError, stringFlag } from './args';
import { Output } from './output';

/** `nfsieve classify --classbench RULES --trace TRACE --json`: {"index":N,"rule":R} per trace line. */
export function classifyClassbench(args: ParsedArgs, out: Output): number {
  const rulesFile = stringFlag(args, 'classbench');
  const traceFile = stringFlag(args, 'trace');
  if (!rulesFile || !traceFile || args.positional.length !== 0) throw new UsageError('usage: nfsieve classify --classbench RULES --trace TRACE [--json]');
  const policy = loadClassbenchRules(rulesFile);
  const handle = new (native().Classifier)(compile(policy, { analyse: false }).table);
  const trace = loadTrace(traceFile);
  const result = new Int32Array(trace.count);
  handle.classifyTuples(trace.tuples, result);
  const json = args.flags.has('json');
  for (let i = 0; i < trace.count; i++) {
    const rule = result[i] < 0 ? null : result[i];
    out.line(json ? `{"index":${i},"rule":${rule}}` : `${i} ${rule ?? '-'}`);
  }
  return 0;
}
