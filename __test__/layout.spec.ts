// lib/'s layout rule (DESIGN.md "Layout"): features depend on core, never the reverse,
// and on no other feature. Read from the sources' import statements, type imports included.
import fs from 'fs'
import path from 'path'

const LIB = path.resolve(__dirname, '..', 'lib')
const FEATURES = ['ratelimit', 'caching', 'sessions', 'nest', 'otel', 'bullmq']

/** Every module specifier that `file` imports or re-exports (static, dynamic and require). */
function importsOf(file: string): string[] {
  const src = fs.readFileSync(file, 'utf8')
  const found = [...src.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'|(?:^|\n)\s*import\s+'([^']+)'|\b(?:require|import)\(\s*'([^']+)'\s*\)/g)]
  return found.map((m) => m[1] ?? m[2] ?? m[3])
}

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f))
}

test('lib/core imports nothing but itself, node builtins and the native binding', () => {
  const files = tsFiles(path.join(LIB, 'core'))
  expect(files.map((f) => path.basename(f))).toEqual(expect.arrayContaining(['client.ts', 'errors.ts', 'index.ts']))
  const outside = files.flatMap((f) =>
    importsOf(f)
      .filter((s) => !s.startsWith('./') && !s.startsWith('node:') && s !== '../../index' && s !== '../../index.js')
      .map((s) => `${path.basename(f)}: ${s}`),
  )
  expect(outside).toEqual([])
  // the check reads imports at all: client.ts imports several core modules
  expect(importsOf(path.join(LIB, 'core', 'client.ts'))).toEqual(expect.arrayContaining(['./binding', './errors', './types']))
})

test('each feature folder imports core and itself, never another feature', () => {
  const crossings: string[] = []
  for (const feature of FEATURES) {
    for (const f of tsFiles(path.join(LIB, feature))) {
      for (const s of importsOf(f)) {
        const other = FEATURES.find((o) => o !== feature && (s === `../${o}` || s.startsWith(`../${o}/`)))
        if (other !== undefined) crossings.push(`${feature}/${path.basename(f)}: ${s}`)
      }
    }
  }
  expect(crossings).toEqual([])
})
