#!/usr/bin/env node
// clang-format --dry-run -Werror over native/ (the style is .clang-format).
// Left out for now: the lookup's files, which the lookup rewrite replaces
// (issue 14: do not polish code about to be replaced). `--fix` formats instead.
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const EXCLUDED = [
  'native/core/index.h', 'native/core/index.cc', 'native/core/lanes.cc', 'native/core/classify.h', 'native/core/classify.cc',
  'native/core/cuts.h', 'native/core/cuts.cc',
];

function files() {
  const listed = execFileSync('git', ['ls-files', 'native/*.cc', 'native/*.h'], { cwd: root, encoding: 'utf8' });
  return listed.split('\n').filter((f) => f && !EXCLUDED.includes(f));
}

module.exports = { EXCLUDED, files };

if (require.main === module) {
  const args = process.argv.includes('--fix') ? ['-i'] : ['--dry-run', '-Werror'];
  try {
    execFileSync('clang-format', [...args, ...files()], { cwd: root, stdio: 'inherit' });
  } catch (e) {
    if (e.code === 'ENOENT') console.error('clang-format is not installed (apt-get install clang-format)');
    process.exit(1);
  }
}
