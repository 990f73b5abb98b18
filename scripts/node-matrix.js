#!/usr/bin/env node
// Runs jest on Node 22, 24 and 26, besides the machine's own Node (on which
// `npm test` runs every suite), each loading the one .node binary that
// `npm run build` made: N-API promises that a binary built once loads on every
// Node line; this proves it for the lines users run.
//
//   npm run test:node-matrix                          # the subset below on 22, 24, 26
//   npm run test:node-matrix -- --full                # every suite on each
//   npm run test:node-matrix -- --versions=24,26      # some majors only
//   npm run test:node-matrix -- --refresh             # fetch each major's newest release again
//   npm run test:node-matrix -- --timings             # also each suite's duration (to revisit the subset)
//
// Through npm, so that the suites' own npm calls (package.spec) get this repo's npm config.
// Each Node comes from the registry's `node-<platform>-<arch>@<major>` package,
// fetched with `npm pack` (no install script runs) into .cache/node-matrix/ and
// reused from there. Its bin/ goes first on PATH, so jest's workers
// (process.execPath), the suites' child processes and `npm` all run on it.
// Exit status 1 when a suite fails on any version.
//
// Why a subset: every suite takes about 270 s per version on 2 cores (measured on
// Node 26, 2026-12-03), mostly Redis topologies, fault injection, rate limiting and
// fuzzing that run in Rust and do not change with Node. What does change with Node:
// - package: the packed tarball installed by npm on that Node, then loaded from
//   CommonJS and from ESM (Node's module loader, require/import of the addon);
// - client, validation: every value type across the bridge, 5 MB Buffers (handed over
//   as external buffers, copied where a runtime refuses those), errors made in native
//   code with their code;
// - close, reconnect: child processes that must exit once closed and events sent from
//   the I/O thread, i.e. threadsafe functions and whether they hold the event loop;
// - security: a child process whose failing calls print errors, stats and an unhandled
//   rejection through Node's own inspect, which changes across lines; no password may show;
// - tls: the harness checks a TLS server is up with Node's own TLS (its bundled OpenSSL
//   and its defaults) before the client (rustls) connects;
// - nest, better-auth: the ESM-only framework packages (NestJS 12, Better Auth 1.7; jest
//   compiles them to CommonJS, so what is Node's is the runtime they use) and Node's
//   crypto (the session cookie's HMAC, WebCrypto).
// No suite uses worker_threads today. The OpenTelemetry suite (diagnostics_channel,
// whose TracingChannel changed across Node lines) and pub/sub belong here when they land.
// Only the `redis` jest project runs: the `memory` project repeats some of these
// suites over the same bridge. The subset takes about 25 s per version.
'use strict'

const { execFileSync, spawn } = require('child_process')
const crypto = require('crypto')
const fs = require('fs')
const os = require('os')
const path = require('path')

const MAJORS = [22, 24, 26]
const SUBSET = ['package', 'client', 'validation', 'close', 'reconnect', 'security', 'tls', 'nest', 'better-auth']

const root = path.resolve(__dirname, '..')
const cacheDir = path.join(root, '.cache', 'node-matrix')

function parseArgs(argv) {
  const opts = { full: false, refresh: false, timings: false, majors: MAJORS }
  for (const arg of argv) {
    if (arg === '--full') opts.full = true
    else if (arg === '--timings') opts.timings = true
    else if (arg === '--refresh') opts.refresh = true
    else if (arg.startsWith('--versions=')) {
      opts.majors = arg.slice('--versions='.length).split(',').map(Number)
      if (opts.majors.some((m) => !Number.isInteger(m) || m < 1)) fail(`bad ${arg}: give majors, e.g. --versions=22,26`)
    } else fail(`unknown argument ${arg}`)
  }
  return opts
}

function fail(message) {
  console.error(`node-matrix: ${message}`)
  process.exit(1)
}

/** The registry package that holds this platform's Node binary at bin/node. */
function nodePackageName() {
  if (process.platform !== 'linux' && process.platform !== 'darwin') {
    fail(`no Node binary package for ${process.platform} (linux and darwin packages keep it at bin/node)`)
  }
  return `node-${process.platform}-${process.arch}`
}

const versionOf = (dir) => dir.slice(1).split('.').map(Number)
const newerFirst = (a, b) => {
  const [x, y] = [versionOf(a), versionOf(b)]
  return y[0] - x[0] || y[1] - x[1] || y[2] - x[2]
}

/** The bin/ dir of a cached Node of this major, fetched first when none is cached (or when refreshing). */
function nodeBinDir(major, refresh) {
  fs.mkdirSync(cacheDir, { recursive: true })
  const cached = fs
    .readdirSync(cacheDir)
    .filter((d) => new RegExp(`^v${major}\\.\\d+\\.\\d+$`).test(d))
    .sort(newerFirst)
  if (cached.length > 0 && !refresh) return path.join(cacheDir, cached[0], 'bin')

  const spec = `${nodePackageName()}@${major}`
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'node-matrix-'))
  try {
    console.log(`node-matrix: fetching ${spec}`)
    const packed = JSON.parse(
      execFileSync('npm', ['pack', spec, '--pack-destination', tmp, '--json', '--silent'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    )[0]
    const target = path.join(cacheDir, `v${packed.version}`)
    if (fs.existsSync(path.join(target, 'bin', 'node'))) return path.join(target, 'bin')
    // Unpacked beside the cache, then renamed into it: a half-written copy is never taken for a cached one.
    const staging = fs.mkdtempSync(path.join(cacheDir, '.staging-'))
    try {
      fs.chmodSync(staging, 0o755)
      execFileSync('tar', ['-xzf', path.join(tmp, packed.filename), '-C', staging, '--strip-components=1', 'package/bin/node'])
      linkNpm(path.join(staging, 'bin'))
      const reported = execFileSync(path.join(staging, 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim()
      if (reported !== `v${packed.version}`) throw new Error(`${spec} holds ${reported}, not v${packed.version}`)
      fs.renameSync(staging, target)
    } catch (err) {
      fs.rmSync(staging, { recursive: true, force: true })
      throw err
    }
    return path.join(target, 'bin')
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

/** The package holds node alone: npm and npx beside it, as in a Node install, are this machine's npm. */
function linkNpm(binDir) {
  const npmBin = path.dirname(fs.realpathSync(execFileSync('which', ['npm'], { encoding: 'utf8' }).trim()))
  for (const tool of ['npm', 'npx']) fs.symlinkSync(path.join(npmBin, `${tool}-cli.js`), path.join(binDir, tool))
}

/** Spec files of the subset, by base name, wherever under __test__ they live; a missing one is an error. */
function subsetPaths() {
  const specs = []
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.spec.ts')) specs.push(p)
    }
  }
  walk(path.join(root, '__test__'))
  return SUBSET.map((name) => {
    const found = specs.filter((p) => path.basename(p) === `${name}.spec.ts`)
    if (found.length === 0) fail(`subset suite ${name}.spec.ts not found under __test__ (update SUBSET)`)
    return found
  }).flat()
}

/** The binary `npm run build` left in the repo root, and its sha256. */
function builtBinary() {
  const files = fs.readdirSync(root).filter((f) => f.endsWith('.node'))
  if (files.length !== 1) fail(`expected one built .node in the repo root, found ${files.length}: run npm run build`)
  if (!fs.existsSync(path.join(root, 'dist', 'index.js'))) fail('dist/ is missing: run npm run build')
  const file = path.join(root, files[0])
  const sha256 = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
  return { file, sha256 }
}

/** What a Node reports once it has loaded index.js: its version, its N-API version, the .node files it loaded. */
function loadBinary(nodeBin) {
  const probe = `
    require(${JSON.stringify(path.join(root, 'index.js'))})
    const loaded = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
    console.log(JSON.stringify({ version: process.version, napi: process.versions.napi, loaded }))`
  return JSON.parse(execFileSync(nodeBin, ['-e', probe], { encoding: 'utf8' }))
}

function runJest(binDir, args) {
  const nodeBin = path.join(binDir, 'node')
  const out = path.join(os.tmpdir(), `node-matrix-${process.pid}-${path.basename(path.dirname(binDir))}.json`)
  const env = { ...process.env, PATH: `${binDir}${path.delimiter}${process.env.PATH}`, NODE: nodeBin, npm_node_execpath: nodeBin }
  const jest = path.join(root, 'node_modules', 'jest', 'bin', 'jest.js')
  const start = Date.now()
  return new Promise((resolve) => {
    const child = spawn(nodeBin, [jest, '--ci', '--json', `--outputFile=${out}`, ...args], { cwd: root, env, stdio: 'inherit' })
    child.on('close', (code, signal) => {
      const seconds = (Date.now() - start) / 1000
      let report = null
      try {
        report = JSON.parse(fs.readFileSync(out, 'utf8'))
        fs.rmSync(out)
      } catch {
        // no report: jest crashed before writing it; the exit status says so
      }
      resolve({ code, signal, seconds, report })
    })
  })
}

function printTimings(report) {
  const suites = report.testResults
    .map((s) => ({ name: path.relative(root, s.name), seconds: (s.endTime - s.startTime) / 1000 }))
    .sort((a, b) => b.seconds - a.seconds)
  for (const s of suites) console.log(`${s.seconds.toFixed(1).padStart(7)} s  ${s.name}`)
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const own = Number(process.versions.node.split('.')[0])
  const binary = builtBinary()
  const jestArgs = opts.full ? [] : ['--selectProjects', 'redis', '--runTestsByPath', ...subsetPaths()]
  const scope = opts.full ? 'every suite' : `subset: ${SUBSET.join(', ')}`
  console.log(`node-matrix: ${path.basename(binary.file)} sha256 ${binary.sha256.slice(0, 16)}…, ${scope}`)

  const rows = []
  for (const major of opts.majors) {
    if (major === own) {
      console.log(`node-matrix: Node ${major} is this machine's Node, on which npm test runs every suite: skipped`)
      continue
    }
    const binDir = nodeBinDir(major, opts.refresh)
    const probe = loadBinary(path.join(binDir, 'node'))
    if (probe.loaded.length !== 1 || probe.loaded[0] !== binary.file) {
      fail(`${probe.version} loaded ${probe.loaded.join(', ') || 'no .node file'}, not ${binary.file}`)
    }
    console.log(`\nnode-matrix: ${probe.version} (N-API ${probe.napi}) loads ${path.basename(binary.file)}; jest ${scope}`)
    const r = await runJest(binDir, jestArgs)
    const t = r.report
    if (t && opts.timings) printTimings(t)
    const ok = r.code === 0 && t !== null && t.success && t.numTotalTests > 0
    rows.push({
      node: probe.version,
      napi: probe.napi,
      suites: t ? `${t.numPassedTestSuites}/${t.numTotalTestSuites}` : '-',
      tests: t ? `${t.numPassedTests}/${t.numTotalTests}` + (t.numPendingTests ? ` (${t.numPendingTests} skipped)` : '') : '-',
      duration: `${r.seconds.toFixed(1)} s`,
      result: ok ? 'pass' : `FAIL (${r.signal ? `signal ${r.signal}` : `exit ${r.code}`})`,
    })
  }

  console.log(`\nnode-matrix: ${scope}; one binary, ${path.basename(binary.file)} sha256 ${binary.sha256.slice(0, 16)}…`)
  const cols = ['node', 'napi', 'suites', 'tests', 'duration', 'result']
  const width = (c) => Math.max(c.length, ...rows.map((r) => r[c].length))
  for (const r of [Object.fromEntries(cols.map((c) => [c, c])), ...rows]) {
    console.log(cols.map((c) => r[c].padEnd(width(c))).join('  '))
  }
  if (rows.some((r) => r.result !== 'pass')) process.exit(1)
}

main().catch((err) => fail(err.stack || String(err)))
