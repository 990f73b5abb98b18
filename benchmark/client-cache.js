// A hot cached key through this client (clientCache on its prefix) against a
// plain GET of the same key through ioredis, at 1 and 100 callers.
// Alone: node benchmark/client-cache.js [--duration=SECONDS] [--baseline-engine[=DIR]]; run.js includes it.
const harness = require('../__test__/harness')
const { HOT_KEY, Histogram, runCase } = require('./workloads')
const report = require('./report')
const { engineArgs, load, resolveEngines } = require('./engines')

async function clients(url, engines) {
  const IORedis = require('ioredis')
  const entries = []
  for (const engine of engines) {
    const { RedisClient } = load(engine)
    const cached = await RedisClient.connect({ url, clientCache: { prefixes: ['coa:'] } })
    entries.push({ id: `${engine.id}-cached`, label: `${engine.label}, clientCache`, conn: cached, close: () => cached.close() })
  }
  const io = new IORedis(url)
  const ioAuto = new IORedis(url, { enableAutoPipelining: true })
  await io.set(HOT_KEY, 'x'.repeat(100))
  entries.push(
    { id: 'ioredis', label: 'ioredis (default)', conn: io, close: () => io.quit() },
    { id: 'ioredis-auto', label: 'ioredis (auto-pipelining)', conn: ioAuto, close: () => ioAuto.quit() },
  )
  return entries
}

/** Runs the cases against `url`; resolves the markdown section. */
async function suite({ url, durationMs = 3000, warmupMs = 500, log = console.error, engines = resolveEngines() }) {
  const entries = await clients(url, engines)
  const hist = new Histogram()
  const out = ['', '## Client-side caching: a hot key', '', 'GET of one 100-byte key under a cached prefix; × = ops/s ÷ ioredis (default) in the same row group. Target: at least 10×.', '']
  try {
    for (const concurrency of [1, 100]) {
      const rows = []
      for (const e of entries) {
        const r = await runCase(e.conn, { kind: 'hot', concurrency }, { warmupMs, durationMs, hist })
        rows.push({ e, r })
        log(`  hot key C=${concurrency} ${e.label.padEnd(52)} ${report.fmtOps(r.opsPerSec)} ops/s`)
      }
      const base = rows.find((x) => x.e.id === 'ioredis').r.opsPerSec
      out.push(`### ${concurrency} concurrent caller${concurrency === 1 ? '' : 's'}`, '', '| client | ops/s | p50 | p99 | × ioredis (default) |', '| --- | ---: | ---: | ---: | ---: |')
      for (const { e, r } of rows) {
        out.push(`| ${e.label} | ${report.fmtOps(r.opsPerSec)} | ${report.fmtLatency(r.p50Ns)} | ${report.fmtLatency(r.p99Ns)} | ${report.fmtRatio(r.opsPerSec / base)} |`)
      }
      out.push('')
    }
  } finally {
    for (const e of entries) await e.close()
  }
  return out.join('\n')
}

module.exports = { suite }

if (require.main === module) {
  const { choice, rest } = engineArgs(process.argv.slice(2))
  const arg = rest.find((a) => a.startsWith('--duration='))
  const durationMs = arg ? Number(arg.split('=')[1]) * 1000 : 3000
  ;(async () => {
    const engines = resolveEngines(choice)
    const srv = await harness.startRedis()
    try {
      console.log(await suite({ url: srv.url, durationMs, engines }))
    } finally {
      await harness.stopAll()
    }
  })().catch((e) => {
    console.error(e)
    process.exitCode = 1
  })
}
