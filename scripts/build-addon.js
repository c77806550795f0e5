#!/usr/bin/env node
// Incremental build of the native addon before the tests (node-gyp build only
// recompiles what changed); configures first when build/ has no Makefile, or
// when it was configured without the test kit (prebuildify's product-only build).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
const run = (...args) => execFileSync(process.execPath, [gyp, ...args], { cwd: root, stdio: 'inherit' });
const configured = fs.existsSync(path.join(root, 'build', 'Makefile'));
const kitMissing = fs.existsSync(path.join(root, 'native', 'testkit')) && !fs.existsSync(path.join(root, 'build', 'nfsieve_testkit.target.mk'));
if (!configured || kitMissing) run('configure');
run('build');
