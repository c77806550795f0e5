import { compile } from '../compile/compile';
import { native } from '../native';
import { ParsedArgs, UsageError } from './args';
import { Output } from './output';
import { loadPolicyArg, POLICY_FLAGS } from './policy-arg';

export const CHECK_FLAGS = { ...POLICY_FLAGS, json: 'boolean' } as const;

/** `nfsieve check POLICY`: compile, load natively, report size and warnings. */
export function check(args: ParsedArgs, out: Output): number {
  if (args.positional.length !== 1) throw new UsageError('usage: nfsieve check POLICY [--iptables [--table T] [--chain C] [--ipset FILE]] [--json]');
  const file = args.positional[0];
  const policy = loadPolicyArg(file, args);
  const compiled = compile(policy);
  const t0 = performance.now();
  const handle = new (native().Classifier)(compiled.table);
  const loadMs = performance.now() - t0;
  if (args.flags.has('json')) {
    out.line(JSON.stringify({
      file, rules: handle.ruleCount, sets: policy.sets.size, table_bytes: compiled.table.length,
      compile_ms: round(compiled.compileMs), load_ms: round(loadMs),
      warnings: compiled.warnings.map((w) => ({ kind: w.kind, rule: w.rule + 1, line: w.line, column: w.column, message: w.message })),
    }));
    return 0;
  }
  for (const w of compiled.warnings) out.line(`${file}:${w.line}:${w.column}: warning: ${w.message}`);
  out.line(`${file}: ${handle.ruleCount} rules, ${policy.sets.size} sets, default ${policy.default}; table ${compiled.table.length} bytes, compiled in ${round(compiled.compileMs)} ms, loaded in ${round(loadMs)} ms; ${compiled.warnings.length} warning${compiled.warnings.length === 1 ? '' : 's'}`);
  return 0;
}

const round = (x: number): number => Math.round(x * 100) / 100;
