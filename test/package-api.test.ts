/**
 * The package as users get it: the same API from require and import in the
 * checkout, and the packed tarball installed offline into an empty project on
 * a PATH with no compiler, classifying from CommonJS and ESM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from './support/compare';

const IKE = "Buffer.from('4500001c00000000401100000a0000010a00000101f401f400080000','hex')";
const POLICY = "{default:'drop',rules:[{proto:'udp',dport:500,action:'accept'}]}";

test('the package root works from require and from import, with the same exports', () => {
  const cjs = execFileSync(process.execPath, ['-e', `const n=require(process.argv[1]); const c=n.Classifier.fromPolicy(${POLICY}); console.log(Object.keys(n).sort().join(','), c.classify(${IKE}).verdict)`, ROOT], { encoding: 'utf8' });
  const esm = execFileSync(process.execPath, ['--input-type=module', '-e', `import * as n from ${JSON.stringify(path.join(ROOT, 'dist', 'index.mjs'))}; const c=n.Classifier.fromPolicy(${POLICY}); console.log(Object.keys(n).filter(k=>k!=='default').sort().join(','), c.classify(${IKE}).verdict)`], { encoding: 'utf8' });
  assert.match(cjs.trim(), / accept$/);
  assert.equal(esm.trim(), cjs.trim());
  for (const name of ['Classifier', 'loadPolicyFile', 'definePolicy', 'decodeFrame', 'importIptables', 'compile', 'readCapture', 'NfsieveError']) assert.ok(cjs.includes(name), name);
});

/** npm's own entry point, run by this node (the test restricts PATH below). */
function npmCli(): string {
  const r = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' });
  const cli = path.join(r.stdout.trim(), 'npm', 'bin', 'npm-cli.js');
  if (!fs.existsSync(cli)) throw new Error(`npm not found (npm root -g: ${r.stdout.trim()}): apt-get install npm`);
  return cli;
}

/** A directory holding only node and sh: no cc, c++, make or python for an install to fall back on. */
function bareBin(dir: string): string {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
  return bin;
}

test('the packed tarball installs offline with no compiler and classifies from CommonJS and ESM', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-pack-'));
  try {
    const npm = npmCli();
    // Packing runs prepack: the TypeScript build and the prebuilt addon (rebuilt only when native sources changed).
    const packed = execFileSync(process.execPath, [npm, 'pack', '--pack-destination', dir, '--json'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
    const info = JSON.parse(packed.slice(packed.indexOf('[')))[0] as { filename: string; files: { path: string }[] };
    const files = info.files.map((f) => f.path);
    assert.ok(files.some((f) => /^prebuilds\/linux-x64\/[^/]+\.node$/.test(f)), 'a linux-x64 prebuild');
    for (const must of ['LICENSE', 'README.md', 'dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/index.d.mts', 'bin/nfsieve.js', 'binding.gyp']) assert.ok(files.includes(must), must);
    const unwanted = files.filter((f) => /^(test|bench|src|scripts|build|build-test)\/|^native\/(fuzz|testkit)\/|testkit|\.map$|CMakeLists/.test(f));
    assert.deepEqual(unwanted, [], 'no tests, bench, fuzzers, test kit, sources maps or build files');
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    assert.deepEqual(pkg.os, ['linux']);
    assert.ok(pkg.repository && pkg.bugs, 'repository and bugs');

    const app = path.join(dir, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    const env = { ...process.env, PATH: bareBin(dir), CC: 'false', CXX: 'false' };
    const install = spawnSync(process.execPath, [npm, 'install', '--offline', '--no-audit', '--no-fund', path.join(dir, info.filename)], { cwd: app, env, encoding: 'utf8' });
    assert.equal(install.status, 0, install.stdout + install.stderr);
    const installed = path.join(app, 'node_modules', 'nfsieve');
    assert.equal(fs.existsSync(path.join(installed, 'build')), false, 'nothing was compiled');

    const cjs = spawnSync(process.execPath, ['-e', `const n=require('nfsieve'); console.log(n.Classifier.fromPolicy(${POLICY}).classify(${IKE}).verdict, require.resolve('nfsieve'))`], { cwd: app, env, encoding: 'utf8' });
    assert.equal(cjs.status, 0, cjs.stderr);
    assert.equal(cjs.stdout.trim(), `accept ${path.join(installed, 'dist', 'index.js')}`);
    const esm = spawnSync(process.execPath, ['--input-type=module', '-e', `import { Classifier } from 'nfsieve'; import n from 'nfsieve'; console.log(Classifier.fromPolicy(${POLICY}).classify(${IKE}).verdict, n.Classifier === Classifier)`], { cwd: app, env, encoding: 'utf8' });
    assert.equal(esm.status, 0, esm.stderr);
    assert.equal(esm.stdout.trim(), 'accept true');
    const cli = spawnSync(process.execPath, [path.join(app, 'node_modules', '.bin', 'nfsieve'), 'check', path.join(installed, 'examples', 'freeswan-gateway.yaml')], { cwd: app, env, encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /rules, \d+ sets, default accept/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
