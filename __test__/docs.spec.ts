// The documentation, checked: every ```ts sample of README.md and docs/*.md is
// compiled, strict, against the package's own published types (dist/*.d.ts,
// each entry point's name mapped to its .d.ts by `paths`), and every relative
// link of those pages points at a file (and heading) that exists.
//
// A sample may start with declarations the reader does not need to see (the
// `redis` client it uses, a value from the app around it): put them in an HTML
// comment right above the fence, which Markdown does not render:
//
//   <!-- ts-preamble
//   import type { RedisClient } from '@atlas-erp/redis'
//   declare const redis: RedisClient
//   -->
//   ```ts
//   await redis.get('k')
//   ```
//
// Errors are reported as `docs/page.md:line` of the Markdown source.
import fs from 'fs'
import os from 'os'
import path from 'path'
import ts from 'typescript'

const root = path.resolve(__dirname, '..')

/** README.md and every page under docs/, as paths relative to the repo. */
function documentationPages(): string[] {
  const docsDir = path.join(root, 'docs')
  const pages = fs.existsSync(docsDir)
    ? fs.readdirSync(docsDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f))
    : []
  return ['README.md', ...pages.sort()]
}

/** One ```ts fence: its code, its hidden preamble, and the Markdown line of each of their lines. */
interface Sample {
  page: string
  /** 1-based line of the opening fence. */
  line: number
  /** The TypeScript source: the preamble's lines, then the fence's. */
  source: string[]
  /** For each line of `source`, its 1-based line in the page. */
  lineMap: number[]
}

/** A fenced code block: its opening and closing lines (0-based), language and indentation. */
interface Fence {
  open: number
  close: number
  lang: string
  indent: number
}

/** The fenced code blocks of a page (``` or longer runs of backticks, closed by a run at least as long). */
function fences(page: string, lines: string[]): Fence[] {
  const out: Fence[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,})([^`\s]*)\s*$/.exec(lines[i])
    if (!open) continue
    let close = i + 1
    while (close < lines.length) {
      const m = /^\s*(`{3,})\s*$/.exec(lines[close])
      if (m && m[1].length >= open[2].length) break
      close++
    }
    if (close === lines.length) throw new Error(`${page}:${i + 1}: a fence that never closes`)
    out.push({ open: i, close, lang: open[3], indent: open[1].length })
    i = close
  }
  return out
}

/** Whether line `i` is inside (or is a line of) one of `fenced`. */
function inFence(fenced: Fence[], i: number): boolean {
  return fenced.some((f) => i >= f.open && i <= f.close)
}

const PREAMBLE_OPEN = '<!-- ts-preamble'

/** The ```ts (and ```typescript) fences of a Markdown page, with their preambles. */
export function extractSamples(page: string, text: string): Sample[] {
  const lines = text.split('\n')
  const samples: Sample[] = []
  for (const f of fences(page, lines)) {
    if (f.lang !== 'ts' && f.lang !== 'typescript') continue
    const source: string[] = []
    const lineMap: number[] = []
    for (const p of preambleAbove(lines, f.open)) {
      source.push(p.text)
      lineMap.push(p.line)
    }
    for (let j = f.open + 1; j < f.close; j++) {
      // a fence inside a list item is indented: so is its code
      source.push(lines[j].slice(Math.min(f.indent, lines[j].length - lines[j].trimStart().length)))
      lineMap.push(j + 1)
    }
    samples.push({ page, line: f.open + 1, source, lineMap })
  }
  return samples
}

/** The lines of a `<!-- ts-preamble … -->` comment that ends right above line `fence` (blank lines between allowed). */
function preambleAbove(lines: string[], fence: number): Array<{ text: string; line: number }> {
  let last = fence - 1
  while (last >= 0 && lines[last].trim() === '') last--
  if (last < 0 || !lines[last].trimEnd().endsWith('-->')) return []
  let first = last
  while (first >= 0 && !lines[first].includes(PREAMBLE_OPEN)) {
    if (first < last && lines[first].includes('-->')) return [] // another comment: not a preamble
    first--
  }
  if (first < 0) return []
  const out: Array<{ text: string; line: number }> = []
  for (let j = first; j <= last; j++) {
    let text = lines[j]
    if (j === first) text = text.slice(text.indexOf(PREAMBLE_OPEN) + PREAMBLE_OPEN.length).replace(/^:/, '')
    if (j === last) text = text.slice(0, text.lastIndexOf('-->'))
    out.push({ text: text.trim(), line: j + 1 })
  }
  return out
}

/** `paths` for each entry point of package.json `exports`, to its .d.ts under dist/. */
function packagePaths(): Record<string, string[]> {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    name: string
    exports: Record<string, string | { types?: string }>
  }
  const paths: Record<string, string[]> = {}
  for (const [sub, target] of Object.entries(pkg.exports)) {
    if (typeof target !== 'object' || !target.types) continue
    const name = sub === '.' ? pkg.name : `${pkg.name}/${sub.slice(2)}`
    paths[name] = [path.join(root, target.types)]
  }
  return paths
}

/** Compiles the samples as modules in `dir`; resolves the errors as `page:line: TSxxxx message`. */
export function typeCheck(samples: Sample[], dir: string): string[] {
  const files = new Map<string, Sample>()
  samples.forEach((s, n) => {
    const file = path.join(dir, `${n}-${s.page.replace(/[^\w.-]+/g, '_')}-${s.line}.ts`)
    fs.writeFileSync(file, s.source.join('\n') + '\n')
    files.set(path.resolve(file), s)
  })
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext, // top-level await, as an app's ESM or a REPL allows
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    moduleDetection: ts.ModuleDetectionKind.Force, // each sample is a module of its own
    esModuleInterop: true,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    skipLibCheck: true,
    types: ['node'],
    paths: packagePaths(),
  }
  const program = ts.createProgram([...files.keys()], options)
  const errors: string[] = []
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n  ')
    const sample = d.file && files.get(path.resolve(d.file.fileName))
    if (!d.file || !sample) {
      errors.push(`${d.file ? d.file.fileName : '(compiler)'}: TS${d.code} ${message}`)
      continue
    }
    const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0)
    errors.push(`${sample.page}:${sample.lineMap[line] ?? sample.line}: TS${d.code} ${message}`)
  }
  return errors
}

/** A temp dir whose node_modules is the repo's, so that samples resolve the packages the repo has. */
function sampleDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atlas-docs-'))
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir')
  return dir
}

/** The samples compile against dist/: it must exist (npm test builds it before jest). */
function requireBuiltTypes(): void {
  if (!fs.existsSync(path.join(root, 'dist', 'index.d.ts'))) throw new Error('dist/ is not built: run `npm run build:ts` first')
}

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

describe('TypeScript samples', () => {
  test('the checker is real: an error is reported at its Markdown line, and a preamble declares what the reader does not see', () => {
    const page = [
      '# A page',
      '',
      '<!-- ts-preamble',
      "import type { RedisClient } from '@atlas-erp/redis'",
      'declare const redis: RedisClient',
      '-->',
      '```ts',
      "const n: number = await redis.get('k')", // line 8: get resolves string | null
      '```',
      '',
      '- a list item:',
      '',
      '  ```ts',
      "  import { RedisClient } from '@atlas-erp/redis'",
      "  await RedisClient.connect({ hots: 'x' })", // line 15: no such option
      '  ```',
      '',
      '```ts',
      "await redis.get('k')", // line 19: no preamble above this fence, so `redis` is unknown
      '```',
      '```sh',
      'npm test',
      '```',
      '````md',
      '```ts',
      "const shown: number = 'inside a longer fence: shown, not compiled'",
      '```',
      '````',
    ].join('\n')
    requireBuiltTypes()
    const samples = extractSamples('page.md', page)
    expect(samples.map((s) => s.line)).toEqual([7, 13, 18])
    const dir = sampleDir()
    dirs.push(dir)
    const errors = typeCheck(samples, dir)
    expect(errors).toEqual([
      expect.stringMatching(/^page\.md:8: TS2322 Type 'string \| null' is not assignable to type 'number'/),
      expect.stringMatching(/^page\.md:15: TS2353 .*'hots'/),
      expect.stringMatching(/^page\.md:19: TS2304 Cannot find name 'redis'/),
    ])
  })

  test('every ```ts sample of README.md and docs/ compiles against the published types', () => {
    requireBuiltTypes()
    const pages = documentationPages()
    const samples = pages.flatMap((p) => extractSamples(p, fs.readFileSync(path.join(root, p), 'utf8')))
    // The pages hold about twenty: finding only a handful would mean the extraction broke.
    expect(samples.length).toBeGreaterThan(15)
    expect(samples.some((s) => s.page === 'README.md')).toBe(true)
    const dir = sampleDir()
    dirs.push(dir)
    expect(typeCheck(samples, dir)).toEqual([])
  }, 120_000)
})

// ---- links ------------------------------------------------------------------------------------

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .replace(/`/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

/** The anchors of a Markdown page's headings (outside fences), with GitHub's -1, -2… for repeats. */
function anchors(file: string, text: string): Set<string> {
  const out = new Set<string>()
  const seen = new Map<string, number>()
  const lines = text.split('\n')
  const fenced = fences(file, lines)
  lines.forEach((line, i) => {
    const h = !inFence(fenced, i) && /^#{1,6}\s+(.*)$/.exec(line)
    if (!h) return
    const base = slug(h[1])
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  })
  return out
}

test('every relative link of README.md and docs/ points at a file, and a #heading that exists', () => {
  const broken: string[] = []
  let checked = 0
  for (const page of documentationPages()) {
    const lines = fs.readFileSync(path.join(root, page), 'utf8').split('\n')
    const fenced = fences(page, lines)
    lines.forEach((line, i) => {
      if (inFence(fenced, i)) return
      for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]
        if (/^[a-z]+:/i.test(target)) continue // https:, mailto:
        const [file, anchor] = target.split('#')
        const resolved = file === '' ? path.join(root, page) : path.resolve(path.dirname(path.join(root, page)), file)
        checked++
        if (!fs.existsSync(resolved)) {
          broken.push(`${page}:${i + 1}: ${target} (no such file)`)
        } else if (anchor && resolved.endsWith('.md') && !anchors(resolved, fs.readFileSync(resolved, 'utf8')).has(anchor)) {
          broken.push(`${page}:${i + 1}: ${target} (no such heading)`)
        }
      }
    })
  }
  expect(checked).toBeGreaterThan(10)
  expect(broken).toEqual([])
})
