// What the feature benchmarks (ratelimit.js, sessions.js, cache.js) share: their
// command line, a closed-loop runner, Redis CPU sampling, and the hook run.js calls.
const fs = require('fs')
const harness = require('../__test__/harness')
const { Histogram, runPhase: runClosedLoop } = require('./workloads')
const { ENGINE_HELP, engineArgs, resolveEngines } = require('./engines')

const hrnow = process.hrtime.bigint

/**
 * `--quick`, `--only=TEXT`, `--json`, `--duration=SECONDS`, `--baseline-engine[=DIR]`,
 * `--no-baseline-engine`, `--help` (prints the file's header comment).
 */
function parseArgs(argv, file) {
  const { choice, rest } = engineArgs(argv)
  const o = { duration: 3, warmup: 0.5, json: false, only: undefined }
  for (const a of rest) {
    if (a === '--quick') {
      o.duration = 1
      o.warmup = 0.25
    } else if (a.startsWith('--only=')) o.only = a.slice(7)
    else if (a === '--json') o.json = true
    else if (a.startsWith('--duration=')) o.duration = Number(a.slice(11))
    else if (a === '--help' || a === '-h') {
      const header = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('//'))
      console.log(`${header.join('\n')}\n\noptions: --quick, --duration=SECONDS, --only=TEXT, --json\n${ENGINE_HELP}`)
      process.exit(0)
    } else {
      console.error(`unknown argument ${a}`)
      process.exit(2)
    }
  }
  if (!(o.duration > 0)) {
    console.error('--duration needs a positive number')
    process.exit(2)
  }
  try {
    o.engines = resolveEngines(choice)
  } catch (e) {
    console.error(e.message)
    process.exit(2)
  }
  return o
}

/** C callers for `ms` (workloads.js' closed loop); resolves { ops, opsPerSec, p50Us, p99Us }. */
async function runPhase(op, concurrency, ms) {
  const hist = new Histogram()
  const { ops, elapsedNs } = await runClosedLoop(op, concurrency, ms, hist)
  return { ops, opsPerSec: ops / (elapsedNs / 1e9), p50Us: hist.quantile(0.5) / 1000, p99Us: hist.quantile(0.99) / 1000 }
}

/** CPU time redis-server has used so far, in µs. */
async function redisCpuUs(srv) {
  const info = await srv.cli('INFO', 'cpu')
  const get = (name) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN)
  return (get('used_cpu_user') + get('used_cpu_sys')) * 1e6
}

/** The `suite()` benchmark/run.js calls: the feature's markdown section of a full run. */
function suiteOf(title, runAll, table) {
  return async ({ url, server, durationMs, warmupMs, log, engines = resolveEngines() }) => {
    const rows = await runAll({
      url,
      engines,
      duration: durationMs / 1000,
      warmup: warmupMs / 1000,
      flush: () => server.cli('FLUSHALL'), // run.js' own throwaway server
      cpuUs: () => redisCpuUs(server),
      log,
    })
    return `\n## ${title}\n\n` + table(rows)
  }
}

/** Runs a feature benchmark on its own throwaway server when its file is run directly. */
function runStandalone(mod, file, runAll, table) {
  if (require.main !== mod) return
  ;(async () => {
    const opts = parseArgs(process.argv.slice(2), file)
    const srv = await harness.startRedis({ args: ['--save', '', '--appendonly', 'no'] })
    let rows
    try {
      rows = await runAll({
        url: srv.url,
        duration: opts.duration,
        warmup: opts.warmup,
        only: opts.only,
        engines: opts.engines,
        flush: () => srv.cli('FLUSHALL'),
        cpuUs: () => redisCpuUs(srv),
        log: (...a) => console.error(...a),
      })
    } finally {
      await harness.stopAll()
    }
    console.log(opts.json ? JSON.stringify(rows, null, 2) : table(rows))
  })().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}

module.exports = { hrnow, parseArgs, runPhase, redisCpuUs, suiteOf, runStandalone }
