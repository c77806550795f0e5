#!/usr/bin/env node
// Builds the prebuilt addon the package ships (prebuilds/linux-x64/*.node, N-API,
// so one binary serves every Node >= 20) with prebuildify; node-gyp-build
// loads it at run time, so installing needs no compiler. Run by `prepack`;
// skipped when the prebuild is newer than every native source (--force rebuilds).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const target = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);

function newest(dir) {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== 'fuzz' && e.name !== 'testkit') t = Math.max(t, newest(p)); }
    else if (/\.(cc|h)$/.test(e.name)) t = Math.max(t, fs.statSync(p).mtimeMs);
  }
  return t;
}

function builtAt() {
  if (!fs.existsSync(target)) return 0;
  const nodes = fs.readdirSync(target).filter((f) => f.endsWith('.node'));
  return nodes.length ? Math.min(...nodes.map((f) => fs.statSync(path.join(target, f)).mtimeMs)) : 0;
}

const sources = Math.max(newest(path.join(root, 'native')), fs.statSync(path.join(root, 'binding.gyp')).mtimeMs);
if (!process.argv.includes('--force') && builtAt() > sources) {
  console.log(`prebuild: ${path.relative(root, target)} is up to date`);
  process.exit(0);
}
if (process.platform !== 'linux') throw new Error('nfsieve builds for Linux only (netlink, NFQUEUE)');
const bin = require.resolve('prebuildify/bin.js', { paths: [root] });
// The product addon only (NFSIEVE_NO_TESTKIT: binding.gyp leaves the test kit out).
// Against this Node's own headers (N-API is stable across versions; no download).
execFileSync(process.execPath, [bin, '--napi', '--strip', '--tag-libc', '--target', process.versions.node], { cwd: root, stdio: 'inherit', env: { ...process.env, NFSIEVE_NO_TESTKIT: '1' } });
