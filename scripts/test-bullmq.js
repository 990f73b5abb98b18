#!/usr/bin/env node
// BullMQ's own test suites against BullMQRedisClient (@atlas-erp/redis/bullmq),
// and the same files against BullMQ's ioredis adapter, side by side.
//
// BullMQ's tests get their connections from a factory that a vitest setup file
// sets (tests/utils/connection-factory.ts: setConnectionFactory), which is how
// BullMQ runs them for node-redis and GLIDE; this script writes a setup file
// that sets it to our client (or to ioredis), points the tests' `../src`
// imports at the installed bullmq package, starts its own redis-server on a
// free port, and runs each file on its own.
//
//   npm run test:bullmq                         # both adapters, the default files
//   npm run test:bullmq -- --adapter atlas --files queue,worker
//   npm run test:bullmq -- --update-docs        # also writes the table into docs/bullmq.md
//
// Environment:
//   BULLMQ_REPO  where BullMQ's tests come from: a git URL, a local checkout or
//                bare repository, or a directory that already holds them
//                (default: the GitHub repository)
//   BULLMQ_REF   the tag or commit (default: v<installed bullmq version>, else the
//                newest v<major>.x tag below it that the repository has)
//   BULLMQ_DIR   where they are prepared (default: <os tmp>/atlas-redis-bullmq-tests);
//                outside this repository, never committed
//   BULLMQ_FILE_TIMEOUT_MS  a file's run is killed after this long (default 1,200,000)
'use strict'

const { execFileSync, spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const ROOT = path.resolve(__dirname, '..')
const MODULES = path.join(ROOT, 'node_modules')
const BULLMQ = path.join(MODULES, 'bullmq')
const INSTALLED = require(path.join(BULLMQ, 'package.json')).version
const DOCS = path.join(ROOT, 'docs', 'bullmq.md')

/** The files the issue names: the adapter conformance suite and BullMQ's main suites. */
const DEFAULT_FILES = [
  'adapter-conformance',
  'queue',
  'worker',
  'flow',
  'job_scheduler',
  'events',
  'delay',
  'rate_limiter',
  'stalled_jobs',
  'sandboxed_process',
  'getters',
]
/** Test-only dependencies of those files that this repository does not have. */
const EXTRA_DEPS = ['sinon', 'rrule', 'moment', 'test-console', 'progress']
const ADAPTERS = { atlas: 'BullMQRedisClient', ioredis: 'ioredis adapter' }

function parseArgs(argv) {
  const o = { adapters: ['atlas', 'ioredis'], files: DEFAULT_FILES, updateDocs: false, prepareOnly: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    if (a === '--adapter') {
      const v = value()
      o.adapters = v === 'both' ? ['atlas', 'ioredis'] : [v]
      if (!o.adapters.every((x) => x in ADAPTERS)) throw new Error(`--adapter: atlas, ioredis or both, not ${v}`)
    } else if (a === '--files') o.files = value().split(',').map((f) => f.trim().replace(/\.test\.ts$/, '')).filter(Boolean)
    else if (a === '--update-docs') o.updateDocs = true
    else if (a === '--prepare-only') o.prepareOnly = true
    else throw new Error(`unknown argument ${a}`)
  }
  return o
}

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28, ...opts })
}

// ---- fetching BullMQ's tests ---------------------------------------------------------------

/** The git directory of a local checkout or bare repository, or undefined. */
function gitDirOf(p) {
  try {
    return path.resolve(p, sh('git', ['-C', p, 'rev-parse', '--git-dir']).trim())
  } catch {
    return undefined
  }
}

/** BULLMQ_REF, or v<installed>, or the newest same-major tag below the installed version. */
function pickRef(tags) {
  if (process.env.BULLMQ_REF) return { ref: process.env.BULLMQ_REF, exact: true }
  const want = `v${INSTALLED}`
  if (tags.includes(want)) return { ref: want, exact: true }
  const [major] = INSTALLED.split('.')
  const num = (t) => t.slice(1).split('.').map(Number)
  const below = tags
    .filter((t) => /^v\d+\.\d+\.\d+$/.test(t) && t.startsWith(`v${major}.`))
    .filter((t) => cmpVersion(num(t), num(want)) < 0)
    .sort((a, b) => cmpVersion(num(a), num(b)))
  if (below.length === 0) throw new Error(`BullMQ's repository has no tag ${want} nor an earlier v${major}.x one; set BULLMQ_REF`)
  return { ref: below[below.length - 1], exact: false }
}

function cmpVersion(a, b) {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i]
  return 0
}

/** Extracts `tests/` and `package.json` of BullMQ at the chosen ref into `dir`; returns what was used. */
function fetchTests(dir) {
  const repo = process.env.BULLMQ_REPO || 'https://github.com/taskforcesh/bullmq.git'
  fs.rmSync(path.join(dir, 'tests'), { recursive: true, force: true })
  const local = fs.existsSync(repo) ? gitDirOf(repo) : undefined
  if (fs.existsSync(repo) && local === undefined) {
    // A directory that holds BullMQ's tests already (no git).
    fs.cpSync(path.join(repo, 'tests'), path.join(dir, 'tests'), { recursive: true })
    fs.copyFileSync(path.join(repo, 'package.json'), path.join(dir, 'package.json'))
    return { source: repo, ref: '(a directory)', exact: false }
  }
  let gitDir = local
  if (gitDir === undefined) {
    gitDir = path.join(dir, '.repo.git')
    if (!fs.existsSync(gitDir)) sh('git', ['clone', '--bare', '--filter=blob:none', repo, gitDir], { stdio: 'inherit' })
    else sh('git', ['--git-dir', gitDir, 'fetch', '--tags', 'origin'])
  }
  const tags = sh('git', ['--git-dir', gitDir, 'tag', '--list', 'v*']).split('\n').filter(Boolean)
  const { ref, exact } = pickRef(tags)
  const commit = sh('git', ['--git-dir', gitDir, 'rev-parse', `${ref}^{commit}`]).trim()
  const tar = spawnSync('git', ['--git-dir', gitDir, 'archive', commit, 'tests', 'package.json'], { maxBuffer: 1 << 30 })
  if (tar.status !== 0) throw new Error(`git archive failed: ${tar.stderr}`)
  execFileSync('tar', ['-x', '-C', dir], { input: tar.stdout })
  return { source: repo, ref, commit, exact }
}

// ---- preparing them --------------------------------------------------------------------------

/**
 * The tests import BullMQ from `../src` (its sources) and their sandbox fixtures
 * from `../../dist/cjs`: both become the installed package's build, so that the
 * code under test is the BullMQ this repository runs with.
 */
function linkBullMQ(dir) {
  for (const [name, target] of [
    ['src', path.join(BULLMQ, 'dist', 'cjs')],
    ['dist', path.join(BULLMQ, 'dist')],
  ]) {
    fs.rmSync(path.join(dir, name), { recursive: true, force: true })
    fs.symlinkSync(target, path.join(dir, name))
  }
}

/**
 * node_modules of the prepared dir: every package of this repository (vitest,
 * ioredis, redis, …) linked, plus the few test-only ones BullMQ's files import
 * (sinon, rrule…), installed once in `.deps` at the versions BullMQ pins.
 */
function linkModules(dir) {
  const pinned = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).devDependencies || {}
  const deps = path.join(dir, '.deps')
  const want = EXTRA_DEPS.map((d) => `${d}@${pinned[d] || 'latest'}`)
  const stamp = path.join(deps, 'installed.txt')
  if (!fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== want.join(' ')) {
    fs.mkdirSync(deps, { recursive: true })
    fs.writeFileSync(path.join(deps, 'package.json'), '{ "private": true }\n')
    sh('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', '--ignore-scripts', ...want], { cwd: deps, stdio: 'inherit' })
    fs.writeFileSync(stamp, want.join(' '))
  }
  const nm = path.join(dir, 'node_modules')
  fs.rmSync(nm, { recursive: true, force: true })
  fs.mkdirSync(nm)
  const link = (from) => {
    for (const entry of fs.readdirSync(from)) {
      if (entry.startsWith('.')) continue
      const target = path.join(nm, entry)
      if (entry.startsWith('@') && fs.existsSync(target)) {
        for (const sub of fs.readdirSync(path.join(from, entry))) {
          const t = path.join(target, sub)
          fs.rmSync(t, { recursive: true, force: true })
          fs.symlinkSync(path.join(from, entry, sub), t)
        }
      } else if (entry.startsWith('@')) {
        fs.mkdirSync(target)
        for (const sub of fs.readdirSync(path.join(from, entry))) fs.symlinkSync(path.join(from, entry, sub), path.join(target, sub))
      } else {
        fs.rmSync(target, { recursive: true, force: true })
        fs.symlinkSync(path.join(from, entry), target)
      }
    }
  }
  link(fs.realpathSync(MODULES))
  link(path.join(deps, 'node_modules'))
}

/**
 * Two files need a change to run on a factory-made connection:
 * - adapter-conformance builds a node-redis client itself: it gets the connection
 *   of the setup file (ours, or ioredis) instead;
 * - sandboxed_process makes ioredis clients itself, without a port (so on 6379):
 *   they become the factory's connections.
 */
function patchTests(dir) {
  const patch = (file, edit) => {
    const p = path.join(dir, 'tests', file)
    if (!fs.existsSync(p)) return
    const before = fs.readFileSync(p, 'utf8')
    const after = edit(before)
    if (after === before) throw new Error(`tests/${file}: the patch no longer applies; update scripts/test-bullmq.js`)
    fs.writeFileSync(p, after)
  }
  patch('adapter-conformance.test.ts', (s) =>
    s.replace(
      /async function createTestClient\(\): Promise<IRedisClient> \{[\s\S]*?\n\}/,
      'async function createTestClient(): Promise<IRedisClient> {\n  return (globalThis as any).__bullmqConformanceClient();\n}',
    ),
  )
  patch('sandboxed_process.test.ts', (s) =>
    s
      .replace(/new IORedis\((redisHost)?(, \{ maxRetriesPerRequest: null \})?\)/g, '(createTestConnection() as any)')
      .replace(/^(import \{ default as IORedis \} from 'ioredis';)$/m, "$1\nimport { createTestConnection } from './utils/connection-factory';"),
  )
}

const SETUP = `// Written by @atlas-erp/redis' scripts/test-bullmq.js: the connection factory of BullMQ's tests.
import { createRequire } from 'node:module';
import { default as IORedis } from 'ioredis';
import { createIORedisClient } from './src/classes/ioredis-client';
import { setConnectionFactory } from './tests/utils/connection-factory';

const host = process.env.REDIS_HOST as string;
const port = Number(process.env.REDIS_PORT);
const adapter = process.env.BULLMQ_ADAPTER;
let make: (opts?: any) => any;
let conformance: () => Promise<any>;
if (adapter === 'atlas') {
  const { BullMQRedisClient } = createRequire(import.meta.url)(process.env.ATLAS_BULLMQ_ENTRY as string);
  make = (opts) => new BullMQRedisClient({ host: opts?.host || host, port: opts?.port || port, connectionName: opts?.connectionName });
  conformance = async () => {
    const c = make();
    await c.connect();
    return c;
  };
} else if (adapter === 'ioredis') {
  make = (opts) => createIORedisClient(new IORedis({ host: opts?.host || host, port: opts?.port || port, maxRetriesPerRequest: null }) as any);
  conformance = async () => {
    const c = createIORedisClient(new IORedis({ host, port, maxRetriesPerRequest: null, lazyConnect: true }) as any);
    await c.connect();
    return c;
  };
} else {
  throw new Error('BULLMQ_ADAPTER must be atlas or ioredis');
}
setConnectionFactory(make);
(globalThis as any).__bullmqConformanceClient = conformance;
`

const CONFIG = `// Written by @atlas-erp/redis' scripts/test-bullmq.js (BullMQ's vitest settings, our setup file).
import { defineConfig } from 'vitest/config';
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    setupFiles: ['./vitest.atlas.setup.ts'],
    testTimeout: 10000,
    hookTimeout: 10000,
    sequence: { concurrent: false },
    fileParallelism: false,
  },
});
`

function prepare(dir) {
  fs.mkdirSync(dir, { recursive: true })
  const fetched = fetchTests(dir)
  linkBullMQ(dir)
  linkModules(dir)
  patchTests(dir)
  fs.writeFileSync(path.join(dir, 'vitest.atlas.setup.ts'), SETUP)
  fs.writeFileSync(path.join(dir, 'vitest.atlas.config.mts'), CONFIG)
  return fetched
}

// ---- running them ----------------------------------------------------------------------------

/** Runs one file for one adapter; resolves its counts and failed test names. */
function runFile(dir, file, adapter, server) {
  const out = path.join(dir, 'results', `${adapter}-${file}.json`)
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.rmSync(out, { force: true })
  const log = fs.openSync(path.join(dir, 'results', `${adapter}-${file}.log`), 'w')
  const env = {
    ...process.env,
    REDIS_HOST: server.host,
    REDIS_PORT: String(server.port),
    BULLMQ_ADAPTER: adapter,
    ATLAS_BULLMQ_ENTRY: path.join(ROOT, 'dist', 'bullmq', 'index.js'),
  }
  const vitest = path.join(dir, 'node_modules', 'vitest', 'vitest.mjs')
  const args = [vitest, 'run', '--config', 'vitest.atlas.config.mts', '--reporter=json', `--outputFile=${out}`, '--reporter=default', `tests/${file}.test.ts`]
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: dir, env, stdio: ['ignore', log, log] })
    const limit = Number(process.env.BULLMQ_FILE_TIMEOUT_MS || 1_200_000)
    const timer = setTimeout(() => child.kill('SIGKILL'), limit)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      fs.closeSync(log)
      const r = { file, adapter, passed: 0, failed: 0, skipped: 0, failures: [], seconds: Math.round((Date.now() - started) / 1000), exit: signal ?? code }
      try {
        const json = JSON.parse(fs.readFileSync(out, 'utf8'))
        for (const f of json.testResults) {
          for (const t of f.assertionResults) {
            if (t.status === 'passed') r.passed++
            else if (t.status === 'failed') {
              r.failed++
              r.failures.push(t.fullName)
            } else r.skipped++
          }
          // A file that failed to load has no assertions: count it as one failure.
          if (f.assertionResults.length === 0 && f.status === 'failed') {
            r.failed++
            r.failures.push(`(the file did not run: ${String(f.message).split('\n')[0]})`)
          }
        }
      } catch {
        r.failed++
        r.failures.push(signal ? `(killed after ${limit} ms)` : `(no results; see results/${adapter}-${file}.log)`)
      }
      resolve(r)
    })
  })
}

function table(results, adapters, files) {
  const by = new Map(results.map((r) => [`${r.adapter}/${r.file}`, r]))
  const cell = (r) => (r ? `${r.passed} / ${r.failed} / ${r.skipped}` : '—')
  const head = `| file | ${adapters.map((a) => `${ADAPTERS[a]} (pass / fail / skip)`).join(' | ')} |`
  const rule = `| --- | ${adapters.map(() => '---').join(' | ')} |`
  const rows = files.map((f) => `| ${f} | ${adapters.map((a) => cell(by.get(`${a}/${f}`))).join(' | ')} |`)
  const sum = (a) => results.filter((r) => r.adapter === a).reduce((s, r) => [s[0] + r.passed, s[1] + r.failed, s[2] + r.skipped], [0, 0, 0])
  rows.push(`| **total** | ${adapters.map((a) => `**${sum(a).join(' / ')}**`).join(' | ')} |`)
  return [head, rule, ...rows].join('\n')
}

function updateDocs(text) {
  const start = '<!-- bullmq-results:start -->'
  const end = '<!-- bullmq-results:end -->'
  const doc = fs.readFileSync(DOCS, 'utf8')
  const i = doc.indexOf(start)
  const j = doc.indexOf(end)
  if (i < 0 || j < i) throw new Error(`docs/bullmq.md has no ${start} … ${end} block`)
  fs.writeFileSync(DOCS, doc.slice(0, i + start.length) + '\n' + text + '\n' + doc.slice(j))
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const dir = path.resolve(process.env.BULLMQ_DIR || path.join(os.tmpdir(), 'atlas-redis-bullmq-tests'))
  if (dir === ROOT || dir.startsWith(ROOT + path.sep)) throw new Error('BULLMQ_DIR must be outside this repository')
  if (!fs.existsSync(path.join(ROOT, 'dist', 'bullmq', 'index.js'))) throw new Error('dist/bullmq is missing: npm run build:ts first')
  const fetched = prepare(dir)
  const what = `BullMQ's tests at ${fetched.ref}${fetched.commit ? ` (${fetched.commit.slice(0, 10)})` : ''}, run against the installed bullmq ${INSTALLED}`
  console.log(`${what}, from ${fetched.source}` + (fetched.exact ? '' : ` — no tag v${INSTALLED} there: the nearest earlier tests`))
  console.log(`prepared in ${dir}`)
  if (opts.prepareOnly) return
  const missing = opts.files.filter((f) => !fs.existsSync(path.join(dir, 'tests', `${f}.test.ts`)))
  if (missing.length > 0) throw new Error(`no such test files at that ref: ${missing.join(', ')}`)

  const { startRedis, stopAll } = require(path.join(ROOT, '__test__', 'harness'))
  const server = await startRedis()
  const results = []
  try {
    for (const file of opts.files) {
      for (const adapter of opts.adapters) {
        await server.cli('FLUSHALL')
        await server.cli('SCRIPT', 'FLUSH')
        const r = await runFile(dir, file, adapter, server)
        results.push(r)
        console.log(`${file.padEnd(22)} ${ADAPTERS[adapter].padEnd(18)} ${String(r.passed).padStart(4)} passed ${String(r.failed).padStart(3)} failed ${String(r.skipped).padStart(3)} skipped  ${r.seconds}s`)
        for (const f of r.failures) console.log(`    ✗ ${f}`)
      }
    }
  } finally {
    await stopAll()
  }
  fs.writeFileSync(path.join(dir, 'results', 'summary.json'), JSON.stringify({ what, results }, null, 2))
  const md = `${what}, on redis-server ${sh('redis-server', ['--version']).match(/v=(\S+)/)?.[1] ?? '?'} (${new Date().toISOString().slice(0, 10)}):\n\n${table(results, opts.adapters, opts.files)}`
  console.log('\n' + md)
  if (opts.updateDocs) updateDocs(md)
  const ours = results.filter((r) => r.adapter === 'atlas')
  process.exitCode = ours.some((r) => r.failed > 0) ? 1 : 0
}

main().catch((e) => {
  console.error(e.stack || String(e))
  process.exit(2)
})
