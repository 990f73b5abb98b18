// A hot cached key through this client (clientCache on its prefix) against a
// plain GET of the same key through ioredis, at 1 and 100 callers.
// Alone: node benchmark/client-cache.js [--duration=SECONDS]; run.js includes it.
const path = require('path')
const harness = require('../__test__/harness')
const { HOT_KEY, Histogram, runCase } = require('./workloads')
const report = require('./report')

const ROOT = path.join(__dirname, '..')

async function clients(url) {
  const { RedisClient } = require(path.join(ROOT, 'dist'))
  const IORedis = require('ioredis')
  const cached = await RedisClient.connect({ url, clientCache: { prefixes: ['coa:'] } })
  const io = new IORedis(url)
  const ioAuto = new IORedis(url, { enableAutoPipelining: true })
  await cached.set(HOT_KEY, 'x'.repeat(100))
  return [
    { id: 'atlas-cached', label: '@atlas-erp/redis, clientCache', conn: cached, close: () => cached.close() },
    { id: 'ioredis', label: 'ioredis (default)', conn: io, close: () => io.quit() },
    { id: 'ioredis-auto', label: 'ioredis (auto-pipelining)', conn: ioAuto, close: () => ioAuto.quit() },
  ]
}

/** Runs the cases against `url`; resolves the markdown section. */
async function suite({ url, durationMs = 3000, warmupMs = 500, log = console.error }) {
  const entries = await clients(url)
  const hist = new Histogram()
  const out = ['', '## Client-side caching: a hot key', '', 'GET of one 100-byte key under a cached prefix; × = ops/s ÷ ioredis (default) in the same row group. Target: at least 10×.', '']
  try {
    for (const concurrency of [1, 100]) {
      const rows = []
      for (const e of entries) {
        const r = await runCase(e.conn, { kind: 'hot', concurrency }, { warmupMs, durationMs, hist })
        rows.push({ e, r })
        log(`  hot key C=${concurrency} ${e.label.padEnd(32)} ${report.fmtOps(r.opsPerSec)} ops/s`)
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
  const arg = process.argv.find((a) => a.startsWith('--duration='))
  const durationMs = arg ? Number(arg.split('=')[1]) * 1000 : 3000
  ;(async () => {
    const srv = await harness.startRedis()
    try {
      console.log(await suite({ url: srv.url, durationMs }))
    } finally {
      await harness.stopAll()
    }
  })().catch((e) => {
    console.error(e)
    process.exitCode = 1
  })
}
