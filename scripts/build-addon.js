#!/usr/bin/env node
// Incremental build of the native addon before the tests (node-gyp build only
// recompiles what changed); configures first when build/ has no Makefile.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
const run = (...args) => execFileSync(process.execPath, [gyp, ...args], { cwd: root, stdio: 'inherit' });
if (!fs.existsSync(path.join(root, 'build', 'Makefile'))) run('configure');
run('build');
