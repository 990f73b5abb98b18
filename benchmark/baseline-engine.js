#!/usr/bin/env node
'use strict'
// Builds the package as of an older commit into a self-contained directory,
// benchmark/.engines/<short-sha>/ (gitignored), so that `npm run bench` can load
// it next to this checkout's build and measure both engines in one run.
//
//   node benchmark/baseline-engine.js              the own engine's last commit (DEFAULT_COMMIT below)
//   node benchmark/baseline-engine.js --commit=REV any commit, branch or tag
//   node benchmark/baseline-engine.js --force      build again even when the directory is there
//   npm run bench:baseline [-- --commit=REV]
//
// Steps: a temporary `git worktree` of that commit in the system's temp
// directory; node_modules symlinked to this checkout's when both package-lock.json
// files are the same (else `npm ci` there); `npm run build` (release); `npm pack`;
// the tarball extracted into benchmark/.engines/<short-sha>/ with an ENGINE.json
// naming the commit; the worktree removed. Cargo builds into
// benchmark/.engines/.cargo-target (or $CARGO_TARGET_DIR), kept between runs
// so that another commit compiles only what changed.
const { execFileSync, spawnSync } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')

/** The last commit of the hand-written engine (RESP parser, connection driver, TS cluster router). */
const DEFAULT_COMMIT = '8d0e956'

const ROOT = path.resolve(__dirname, '..')
const ENGINES_DIR = path.join(__dirname, '.engines')
const MARKER = 'ENGINE.json'

const HELP = `usage: node benchmark/baseline-engine.js [--commit=REV] [--force]

  --commit=REV  commit to build (default ${DEFAULT_COMMIT}, the own engine's last commit)
  --force       build again even when benchmark/.engines/<short-sha>/ is already there
  --help

Builds the package at REV into benchmark/.engines/<short-sha>/ (its own dist/ and
.node); \`node benchmark/run.js --baseline-engine\` then measures it next to this
checkout's build in every suite.`

const log = (...a) => console.error(...a)

/** The short directory name of a commit: its first 7 hex digits. */
const shortSha = (sha) => sha.slice(0, 7)

function git(...args) {
  return execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
}

/** Runs a command with its output on our stderr; throws with its exit status when it fails. */
function run(cmd, args, opts) {
  log(`$ ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { stdio: ['ignore', 2, 2], ...opts })
  if (r.error) throw r.error
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`)
}

/** What ENGINE.json says about the build in `dir`, or null when it is not a finished build. */
function readMarker(dir) {
  try {
    const marker = JSON.parse(fs.readFileSync(path.join(dir, MARKER), 'utf8'))
    if (!fs.existsSync(path.join(dir, 'package.json'))) return null
    return marker
  } catch {
    return null
  }
}

function resolveCommit(rev) {
  try {
    return git('rev-parse', '--verify', '--quiet', `${rev}^{commit}`)
  } catch {
    throw new Error(`${rev} is not a commit of ${ROOT}`)
  }
}

/** Builds `rev` into benchmark/.engines/<short-sha>/ unless it is there; resolves that directory. */
function buildEngine({ rev = DEFAULT_COMMIT, force = false } = {}) {
  const commit = resolveCommit(rev)
  const short = shortSha(commit)
  const dest = path.join(ENGINES_DIR, short)
  const existing = readMarker(dest)
  if (existing && existing.commit === commit && !force) {
    log(`benchmark/.engines/${short}: already built (${existing.builtAt}); --force builds it again`)
    return dest
  }

  fs.mkdirSync(ENGINES_DIR, { recursive: true })
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `atlas-engine-${short}-`))
  const tree = path.join(tmp, 'src')
  const staging = path.join(ENGINES_DIR, `.${short}.partial`)
  const cleanup = () => {
    // The symlink goes first, so that nothing below can reach this checkout's node_modules through it.
    try { if (fs.lstatSync(path.join(tree, 'node_modules')).isSymbolicLink()) fs.unlinkSync(path.join(tree, 'node_modules')) } catch { /* none */ }
    try { git('worktree', 'remove', '--force', tree) } catch { /* not added, or already gone */ }
    fs.rmSync(tmp, { recursive: true, force: true })
    try { git('worktree', 'prune') } catch { /* nothing to prune */ }
    fs.rmSync(staging, { recursive: true, force: true })
  }
  const onSignal = () => {
    cleanup()
    process.exit(130)
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    log(`building ${short}: ${git('log', '-1', '--format=%s', commit)}`)
    run('git', ['-C', ROOT, 'worktree', 'add', '--detach', '--quiet', tree, commit])

    const ownLock = path.join(ROOT, 'package-lock.json')
    const sameLock = fs.existsSync(path.join(ROOT, 'node_modules'))
      && fs.existsSync(ownLock)
      && fs.readFileSync(ownLock, 'utf8') === fs.readFileSync(path.join(tree, 'package-lock.json'), 'utf8')
    if (sameLock) {
      log(`node_modules: symlinked to ${path.join(ROOT, 'node_modules')} (same package-lock.json)`)
      fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(tree, 'node_modules'), 'dir')
    } else {
      log('node_modules: package-lock.json differs from this checkout\'s (or no node_modules here): npm ci')
      run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: tree })
    }

    const env = { ...process.env, CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR || path.join(ENGINES_DIR, '.cargo-target') }
    run('npm', ['run', 'build'], { cwd: tree, env })

    const packed = path.join(tmp, 'pack')
    fs.mkdirSync(packed)
    run('npm', ['pack', '--pack-destination', packed], { cwd: tree })
    const tarballs = fs.readdirSync(packed).filter((f) => f.endsWith('.tgz'))
    if (tarballs.length !== 1) throw new Error(`npm pack left ${tarballs.length} tarballs`)

    fs.rmSync(staging, { recursive: true, force: true })
    fs.mkdirSync(staging)
    run('tar', ['-xzf', path.join(packed, tarballs[0]), '-C', staging, '--strip-components=1'])
    if (!fs.readdirSync(staging).some((f) => f.endsWith('.node'))) throw new Error('the packed package holds no .node binary')
    fs.writeFileSync(path.join(staging, MARKER), JSON.stringify({
      commit,
      short,
      subject: git('log', '-1', '--format=%s', commit),
      committed: git('log', '-1', '--format=%cI', commit),
      builtAt: new Date().toISOString(),
      node: process.version,
      tarball: tarballs[0],
    }, null, 2) + '\n')
    // It must load on its own before it replaces a previous build.
    const check = spawnSync(process.execPath, ['-e', `const m = require(${JSON.stringify(path.join(staging, 'dist', 'index.js'))}); if (typeof m.RedisClient.connect !== 'function') process.exit(1)`], { stdio: ['ignore', 2, 2] })
    if (check.status !== 0) throw new Error('the packed package does not load (require of its dist/index.js failed)')

    fs.rmSync(dest, { recursive: true, force: true })
    fs.renameSync(staging, dest)
    log(`built benchmark/.engines/${short}`)
    return dest
  } finally {
    cleanup()
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
  }
}

module.exports = { DEFAULT_COMMIT, ENGINES_DIR, MARKER, readMarker }

if (require.main === module) {
  const opts = { rev: DEFAULT_COMMIT, force: false }
  for (const arg of process.argv.slice(2)) {
    if (arg.startsWith('--commit=') && arg.length > 9) opts.rev = arg.slice(9)
    else if (arg === '--force') opts.force = true
    else if (arg === '--help' || arg === '-h') {
      console.log(HELP)
      process.exit(0)
    } else {
      console.error(`unknown argument ${arg}\n\n${HELP}`)
      process.exit(2)
    }
  }
  try {
    console.log(buildEngine(opts))
  } catch (e) {
    console.error(`baseline-engine: ${e.message}`)
    process.exitCode = 1
  }
}
