/**
 * One source list for both native builds: native/sources.gypi names every
 * C++ file of the addon once; binding.gyp (node-gyp) includes it and
 * CMakeLists.txt (cmake-js, the sanitizer builds) reads it, so the two
 * builds cannot drift apart. A file added to native/ and not listed fails here.
 * The test kit (native/testkit) is a second list and a second target, built in
 * a checkout only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './support/compare';

const read = (f: string): string => fs.readFileSync(path.join(ROOT, f), 'utf8');

test('native/sources.gypi lists every addon source once; binding.gyp and CMakeLists.txt both take it from there', () => {
  const vars = (JSON.parse(read('native/sources.gypi')) as { variables: Record<string, string[]> }).variables;
  const listed = [...vars.nfsieve_core_sources, ...vars.nfsieve_compile_sources, ...vars.nfsieve_addon_sources, ...vars.nfsieve_testkit_sources];
  assert.equal(new Set(listed).size, listed.length, 'a source listed twice');
  const onDisk = ['native', 'native/core', 'native/compile', 'native/nfqueue', 'native/testkit'].flatMap((d) =>
    fs.readdirSync(path.join(ROOT, d)).filter((f) => f.endsWith('.cc')).map((f) => `${d}/${f}`));
  assert.deepEqual([...listed].sort(), onDisk.sort(), 'native/sources.gypi and the .cc files of native/ differ');
  assert.ok(vars.nfsieve_core_sources.every((f) => f.startsWith('native/core/')), 'the core list holds only native/core (no Node-API)');
  assert.ok(vars.nfsieve_compile_sources.every((f) => f.startsWith('native/compile/')), 'the compile side (the build of a table) lives apart from the run side');
  assert.ok(vars.nfsieve_testkit_sources.every((f) => f.startsWith('native/testkit/')), 'the test kit lives in native/testkit (not shipped)');
  type Target = { target_name: string; sources: string[] };
  const gyp = JSON.parse(read('binding.gyp')) as { includes: string[]; targets: Target[]; conditions: [string, { targets: Target[] }][] };
  assert.deepEqual(gyp.includes, ['native/sources.gypi']);
  assert.deepEqual(gyp.targets.map((t) => [t.target_name, t.sources]), [['nfsieve', ['<@(nfsieve_core_sources)', '<@(nfsieve_compile_sources)', '<@(nfsieve_addon_sources)']]]);
  // The test kit target exists only where native/testkit does (a checkout, not the package).
  assert.deepEqual(gyp.conditions.map(([when, then]) => [when, then.targets.map((t) => [t.target_name, t.sources])]),
    [['nfsieve_with_testkit==1', [['nfsieve_testkit', ['<@(nfsieve_testkit_sources)']]]]]);
  const cmake = read('CMakeLists.txt');
  assert.match(cmake, /file\(READ \$\{CMAKE_CURRENT_SOURCE_DIR\}\/native\/sources\.gypi/);
  assert.match(cmake, /nfsieve_source_list\(CORE nfsieve_core_sources\)/);
  assert.match(cmake, /nfsieve_source_list\(COMPILE nfsieve_compile_sources\)/);
  assert.match(cmake, /nfsieve_source_list\(ADDON nfsieve_addon_sources\)/);
  assert.doesNotMatch(cmake.replace(/native\/fuzz\/[\w$.{}]+\.cc/g, ''), /native\/(core|compile|nfqueue|testkit)\/\w+\.cc/, 'CMakeLists.txt names a source itself');
});
