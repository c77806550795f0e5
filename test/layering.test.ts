/**
 * The package ships only the library: nothing under src/ imports from test/
 * or bench/ (scanned from every import and require of every src/ file), and
 * the product addon's exports hold no test helper (those live in the test kit).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './support/compare';
import { native } from '../src/native';
import { testkit } from './support/testkit';

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []);
}

/** Every module specifier a file names: import/export ... from, import(), require(). */
export function specifiers(source: string): string[] {
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)(['"])([^'"]+)\1/gm;
  return [...source.matchAll(re)].map((m) => m[2]);
}

test('the import scanner sees every form of import', () => {
  const got = specifiers("import a from './a';\nexport * from \"../b\";\nconst c = require('./c');\nimport './d';\nawait import('../e');");
  assert.deepEqual(got, ['./a', '../b', './c', './d', '../e']);
});

test('nothing in src/ imports from test/ or bench/', () => {
  const src = path.join(ROOT, 'src');
  const bad: string[] = [];
  for (const file of tsFiles(src)) {
    for (const spec of specifiers(fs.readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = path.relative(ROOT, path.resolve(path.dirname(file), spec));
      if (/^(test|bench|build-test)(\/|$)/.test(target.split(path.sep).join('/'))) bad.push(`${path.relative(ROOT, file)} -> ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('the layering check itself catches an import of the test tree', () => {
  const target = path.relative(ROOT, path.resolve(path.join(ROOT, 'src', 'cli'), '../../test/support/packets'));
  assert.match(target.split(path.sep).join('/'), /^(test|bench|build-test)(\/|$)/);
});

test('test helpers live in the test kit addon, not in the product addon', () => {
  const product = native() as unknown as Record<string, unknown>;
  assert.equal(product.linearClassifyTuples, undefined);
  assert.equal(typeof testkit().linearClassifyTuples, 'function');
});
