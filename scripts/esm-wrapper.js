// Writes dist/index.mjs, an ES-module face over the CommonJS build, so that
// `import { compile } from 'nfsieve'` and `require('nfsieve')` see one module,
// and dist/index.d.mts, its own types (ESM consumers must not get the CJS
// index.d.ts for an .mjs file: "are the types wrong" tools flag that).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const dist = path.join(__dirname, '..', 'dist');
const api = require(path.join(dist, 'index.js'));
const names = Object.keys(api).filter((k) => k !== 'default' && /^[A-Za-z_$][\w$]*$/.test(k));
const lines = ["import api from './index.js';", 'export default api;'];
for (const n of names) lines.push(`export const ${n} = api.${n};`);
fs.writeFileSync(path.join(dist, 'index.mjs'), lines.join('\n') + '\n');
const types = [
  '// Types of dist/index.mjs: the same names as the CommonJS build, and the whole API as the default export.',
  "import * as api from './index.js';",
  "export * from './index.js';",
  'export default api;',
];
fs.writeFileSync(path.join(dist, 'index.d.mts'), types.join('\n') + '\n');
