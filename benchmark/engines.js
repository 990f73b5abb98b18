'use strict'
// The builds of @atlas-erp/redis a run measures: this checkout's (dist/ and the
// .node at the root) and, when present, an older one packed by baseline-engine.js
// into a directory of its own. Each is loaded by absolute path, so both live in
// one process: two dist/ trees, two native binaries, no shared module state.
const fs = require('fs')
const path = require('path')
const { DEFAULT_COMMIT, ENGINES_DIR, readMarker } = require('./baseline-engine')

const ROOT = path.resolve(__dirname, '..')
const OWN_ENGINE_ID = 'atlas-own-engine'

const packageJson = (dir) => JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))

/**
 * An engine: `id` (run.js' client id), `name` (the prefix of its rows in the
 * feature suites), `label` (its rows in the GET/SET tables), `labelWith(mode)`
 * (the label of a mode such as 'cluster'), `dir`, `version`.
 */
const CURRENT = { id: 'atlas', name: 'atlas', label: '@atlas-erp/redis', labelWith: (mode) => `@atlas-erp/redis (${mode})`, dir: ROOT, current: true }

function baselineEngine(dir) {
  const marker = readMarker(dir)
  const tag = marker ? marker.short : path.basename(dir)
  return {
    id: OWN_ENGINE_ID,
    name: `atlas@${tag}`,
    label: `@atlas-erp/redis (own engine, ${tag})`,
    labelWith: (mode) => `@atlas-erp/redis (${mode}, own engine, ${tag})`,
    dir,
    commit: marker ? marker.commit : undefined,
    version: packageJson(dir).version,
  }
}

const DEFAULT_DIR = path.join(ENGINES_DIR, DEFAULT_COMMIT)

/**
 * The engines to measure. `choice`: undefined = this checkout's, plus the
 * default baseline when it has been built; false = this checkout's only;
 * true = plus the default baseline (which must exist); a string = plus the
 * package in that directory.
 */
function resolveEngines(choice) {
  if (choice === false) return [CURRENT]
  if (choice === undefined) return fs.existsSync(path.join(DEFAULT_DIR, 'package.json')) ? [CURRENT, baselineEngine(DEFAULT_DIR)] : [CURRENT]
  const dir = choice === true ? DEFAULT_DIR : path.resolve(choice)
  if (!fs.existsSync(path.join(dir, 'package.json'))) {
    const hint = choice === true ? ' (build it with `npm run bench:baseline`)' : ''
    const shown = path.relative(process.cwd(), dir)
    throw new Error(`--baseline-engine: no package in ${shown && !shown.startsWith('..') ? shown : dir}${hint}`)
  }
  return [CURRENT, baselineEngine(dir)]
}

/**
 * Parses `--baseline-engine[=DIR]` and `--no-baseline-engine` out of `argv`:
 * `{ choice, rest }`, `choice` as resolveEngines takes it.
 */
function engineArgs(argv) {
  let choice
  const rest = []
  for (const arg of argv) {
    if (arg === '--baseline-engine') choice = true
    else if (arg.startsWith('--baseline-engine=')) choice = arg.slice('--baseline-engine='.length) || true
    else if (arg === '--no-baseline-engine') choice = false
    else rest.push(arg)
  }
  return { choice, rest }
}

const ENGINE_HELP = `  --baseline-engine[=DIR]
                      also measure the package built by \`npm run bench:baseline\` (default
                      benchmark/.engines/${DEFAULT_COMMIT}: the own engine, before redis-rs), or the one
                      in DIR; included by default whenever benchmark/.engines/${DEFAULT_COMMIT} exists
  --no-baseline-engine
                      measure this checkout's build only`

/**
 * Loads one of an engine's entry points ('.', 'throttler', 'keyv',
 * 'better-auth') through the `exports` map of its package.json.
 */
function load(engine, entry = '.') {
  const pkg = packageJson(engine.dir)
  const key = entry === '.' ? '.' : `./${entry}`
  let target = pkg.exports && pkg.exports[key]
  if (target && typeof target === 'object') target = target.require ?? target.default
  if (!target && entry === '.') target = pkg.main
  if (typeof target !== 'string') throw new Error(`${engine.label}: its package.json exports no "${key}"`)
  return require(path.join(engine.dir, target))
}

/** The line results.md gives the baseline engine: what it is and where it came from. */
function describe(engine) {
  if (engine.current) return ''
  const where = path.relative(ROOT, engine.dir)
  return engine.commit
    ? `"${engine.label}" is this package as of commit ${engine.commit.slice(0, 12)}, built by \`npm run bench:baseline\` into ${where} and loaded in the same process; its rows are measured in the same run, in every suite, with the same settings. In the feature suites its rows are named ${engine.name}.`
    : `"${engine.label}" is the package in ${where} (no ENGINE.json: its commit is unknown), loaded in the same process. In the feature suites its rows are named ${engine.name}.`
}

module.exports = { CURRENT, DEFAULT_COMMIT, DEFAULT_DIR, OWN_ENGINE_ID, ENGINE_HELP, resolveEngines, engineArgs, load, describe }
