'use strict'
// Redis Cluster: GET and SET of 100-byte values at 100 concurrent callers on a
// local 3-master cluster (its own redis-servers, made by the harness with
// redis-cli --cluster create), this package's cluster mode against ioredis'
// Cluster client, with and without enableAutoPipelining.
// Alone: node benchmark/cluster.js [--duration=SECONDS]; run.js includes it.
const path = require('path')
const harness = require('../__test__/harness')
const { KEYSPACES, Histogram, runCase } = require('./workloads')
const report = require('./report')

const ROOT = path.join(__dirname, '..')
const CONCURRENCY = 100

async function clients(nodes) {
  const { RedisClient } = require(path.join(ROOT, 'dist'))
  const IORedis = require('ioredis')
  const startup = nodes.map((n) => ({ host: n.split(':')[0], port: Number(n.split(':')[1]) }))
  const ioCluster = async (opts) => {
    const c = new IORedis.Cluster(startup, opts)
    await new Promise((resolve, reject) => {
      c.once('ready', resolve)
      c.once('error', reject)
    })
    return c
  }
  const atlas = await RedisClient.connect({ cluster: { nodes } })
  const io = await ioCluster({})
  const ioAuto = await ioCluster({ enableAutoPipelining: true })
  return [
    { id: 'atlas', label: '@atlas-erp/redis (cluster)', conn: atlas, close: () => atlas.close() },
    { id: 'ioredis', label: 'ioredis Cluster (default)', conn: io, close: () => io.quit() },
    { id: 'ioredis-auto', label: 'ioredis Cluster (auto-pipelining)', conn: ioAuto, close: () => ioAuto.quit() },
  ]
}

/** Starts a 3-master cluster, runs the cases, stops it; resolves the markdown section. */
async function suite({ durationMs = 3000, warmupMs = 500, log = console.error } = {}) {
  const cluster = await harness.startCluster({ masters: 3, replicas: 0 })
  const out = [
    '',
    '## Redis Cluster: GET/SET at 100 callers',
    '',
    `A local cluster of 3 masters (no replicas); ${KEYSPACES.small.count.toLocaleString('en-US')} keys of ${KEYSPACES.small.valueSize} bytes over all slots. `
      + '× = ops/s ÷ ioredis Cluster (default) in the same table; × auto = ÷ ioredis Cluster with enableAutoPipelining.',
    '',
  ]
  let entries = []
  try {
    entries = await clients(cluster.nodes)
    // every key the GETs read exists
    const { keys, value } = KEYSPACES.small
    for (let i = 0; i < keys.length; i += 500) await entries[0].conn.mset(Object.fromEntries(keys.slice(i, i + 500).map((k) => [k, value])))
    const hist = new Histogram()
    for (const kind of ['get', 'set']) {
      const rows = []
      for (const e of entries) {
        const r = await runCase(e.conn, { kind, concurrency: CONCURRENCY }, { warmupMs, durationMs, hist })
        rows.push({ e, r })
        log(`  cluster ${kind.toUpperCase()} C=${CONCURRENCY} ${e.label.padEnd(36)} ${report.fmtOps(r.opsPerSec)} ops/s`)
      }
      const base = rows.find((x) => x.e.id === 'ioredis').r.opsPerSec
      const auto = rows.find((x) => x.e.id === 'ioredis-auto').r.opsPerSec
      out.push(`### ${kind.toUpperCase()}, ${CONCURRENCY} concurrent callers`, '', '| client | ops/s | p50 | p99 | × ioredis | × auto |', '| --- | ---: | ---: | ---: | ---: | ---: |')
      for (const { e, r } of rows) {
        out.push(`| ${e.label} | ${report.fmtOps(r.opsPerSec)} | ${report.fmtLatency(r.p50Ns)} | ${report.fmtLatency(r.p99Ns)} | ${report.fmtRatio(r.opsPerSec / base)} | ${report.fmtRatio(r.opsPerSec / auto)} |`)
      }
      out.push('')
    }
  } finally {
    for (const e of entries) await e.close()
    await cluster.stop()
  }
  return out.join('\n')
}

module.exports = { suite }

if (require.main === module) {
  const arg = process.argv.find((a) => a.startsWith('--duration='))
  const durationMs = arg ? Number(arg.split('=')[1]) * 1000 : 3000
  suite({ durationMs })
    .then((md) => console.log(md))
    .catch((e) => {
      console.error(e)
      process.exitCode = 1
    })
}
