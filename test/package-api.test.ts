import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { ROOT } from './support/compare';

test('the package root works from require and from import, with the same exports', () => {
  const cjs = execFileSync(process.execPath, ['-e', "const n=require(process.argv[1]); const c=n.Classifier.fromPolicy({default:'drop',rules:[{proto:'udp',dport:500,action:'accept'}]}); console.log(Object.keys(n).sort().join(','), c.classify(Buffer.from('4500001c00000000401100000a0000010a00000101f401f400080000','hex')).verdict)", ROOT], { encoding: 'utf8' });
  const esm = execFileSync(process.execPath, ['--input-type=module', '-e', `import * as n from ${JSON.stringify(path.join(ROOT, 'dist', 'index.mjs'))}; const c=n.Classifier.fromPolicy({default:'drop',rules:[{proto:'udp',dport:500,action:'accept'}]}); console.log(Object.keys(n).filter(k=>k!=='default').sort().join(','), c.classify(Buffer.from('4500001c00000000401100000a0000010a00000101f401f400080000','hex')).verdict)`], { encoding: 'utf8' });
  assert.match(cjs.trim(), / accept$/);
  assert.equal(esm.trim(), cjs.trim());
  for (const name of ['Classifier', 'loadPolicyFile', 'definePolicy', 'decodeFrame', 'importIptables', 'compile', 'readCapture']) assert.ok(cjs.includes(name), name);
});
