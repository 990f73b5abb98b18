// A copy of the repo's __test__/esm-transform.js (the example is its own project).
// Jest runs CommonJS; NestJS 12 (and other framework packages) ship ES modules.
// This transformer rewrites the few ESM-only expressions they use into their
// CommonJS equivalents, then lets ts-jest compile the module to CommonJS.
const { TsJestTransformer } = require('ts-jest')

const REWRITES = [
  // `const require = createRequire(import.meta.url)` would redeclare CommonJS' own require.
  [/^\s*const require = createRequire\(import\.meta\.url\);?\s*$/gm, ''],
  [/import\.meta\.url/g, "require('url').pathToFileURL(__filename).href"],
  [/import\.meta\.dirname/g, '__dirname'],
  [/import\.meta\.filename/g, '__filename'],
  [/import\.meta\.resolve\(/g, 'require.resolve('],
]

class EsmToCjs extends TsJestTransformer {
  process(source, path, options) {
    if (path.includes('/node_modules/')) {
      for (const [re, to] of REWRITES) source = source.replace(re, to)
    }
    return super.process(source, path, options)
  }

  getCacheKey(source, path, options) {
    return super.getCacheKey(source, path, options) + ':esm-cjs-1'
  }
}

module.exports = {
  createTransformer: (config) => new EsmToCjs(config),
}
