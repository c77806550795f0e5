#!/usr/bin/env node
// A few clang-tidy checks over every native/ source git tracks, zero warnings
// allowed: bugs the compiler does not flag (use after move, memset and sizeof
// slips, integer division in floating context, redundant expressions,
// misleading indentation, needless copies). The glue compiles against Node's
// own headers (beside the node binary, or npm's nodedir) and node-addon-api.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const CHECKS = [
  '-*', 'bugprone-use-after-move', 'bugprone-undefined-memory-manipulation', 'bugprone-suspicious-memset-usage',
  'bugprone-integer-division', 'bugprone-sizeof-expression', 'misc-redundant-expression',
  'performance-unnecessary-copy-initialization', 'readability-misleading-indentation',
].join(',');

const fs = require('node:fs');
const nodeInclude = [process.env.npm_config_nodedir, path.resolve(path.dirname(process.execPath), '..'), process.config.variables.node_prefix]
  .filter(Boolean).map((d) => path.join(d, 'include', 'node')).find((d) => fs.existsSync(path.join(d, 'node_api.h')));
if (!nodeInclude) { console.error('clang-tidy: no Node headers (include/node/node_api.h) beside node or in npm\'s nodedir'); process.exit(2); }
const addonApi = path.dirname(require.resolve('node-addon-api/package.json', { paths: [root] }));
const flags = ['-std=c++17', '-Inative', '-Inative/core', `-I${nodeInclude}`, `-I${addonApi}`,
  '-DNAPI_VERSION=8', '-DNODE_ADDON_API_DISABLE_DEPRECATED', '-DNAPI_CPP_EXCEPTIONS'];

const files = execFileSync('git', ['ls-files', 'native/*.cc'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);
let failed = 0;
for (const f of files) {
  const r = spawnSync('clang-tidy', ['-quiet', `--checks=${CHECKS}`, '--warnings-as-errors=*', f, '--', ...flags], { cwd: root, encoding: 'utf8' });
  if (r.error) { console.error(`clang-tidy: ${r.error.message} (apt-get install clang-tidy)`); process.exit(2); }
  if (r.status !== 0) { failed++; process.stderr.write(r.stdout + r.stderr); }
}
console.log(`clang-tidy: ${files.length} files, ${failed} with findings`);
process.exit(failed ? 1 : 0);
