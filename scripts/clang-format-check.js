#!/usr/bin/env node
// clang-format --dry-run -Werror over every native/ file git tracks (the style
// is .clang-format). `--fix` formats instead. EXCLUDED names files left out,
// each with its reason; none is today.
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const EXCLUDED = [];

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
