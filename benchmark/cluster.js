'use strict'
// Redis Cluster: GET and SET of 100-byte values at 100 concurrent callers on a
// local 3-master cluster (its own redis-servers, made by the harness with
// redis-cli --cluster create), this package's cluster mode (each engine of
// engines.js) against ioredis' Cluster client, with and without enableAutoPipelining.
// Alone: node benchmark/cluster.js [--duration=SECONDS] [--baseline-engine[=DIR]]; run.js includes it.
const harness = require('../__test__/harness')
const { KEYSPACES, SLICES, runCase, runInTurns } = require('./workloads')
const report = require('./report')
const { engineArgs, load, resolveEngines } = require('./engines')

const CONCURRENCY = 100

/** The contenders, each { id, label, connect() → a client with get/set, close(client) }. */
function contenders(nodes, engines) {
  const startup = nodes.map((n) => ({ host: n.split(':')[0], port: Number(n.split(':')[1]) }))
  const ioCluster = (opts) => async () => {
    const { Cluster } = require('ioredis')
    const c = new Cluster(startup, opts)
    await new Promise((resolve, reject) => {
      c.once('ready', resolve)
      c.once('error', reject)
    })
    return c
  }
  return [
    ...engines.map((engine) => ({
      id: engine.id,
      label: engine.labelWith('cluster'),
      connect: () => load(engine).RedisClient.connect({ cluster: { nodes } }),
      close: (c) => c.close(),
    })),
    { id: 'ioredis', label: 'ioredis Cluster (default)', connect: ioCluster({}), close: (c) => c.quit() },
    { id: 'ioredis-auto', label: 'ioredis Cluster (auto-pipelining)', connect: ioCluster({ enableAutoPipelining: true }), close: (c) => c.quit() },
  ]
}

/** Every key the GETs read, written through ioredis so that no contender's setup is needed. */
async function populate(nodes) {
  const { Cluster } = require('ioredis')
  const c = new Cluster(nodes.map((n) => ({ host: n.split(':')[0], port: Number(n.split(':')[1]) })), { enableAutoPipelining: true })
  try {
    const { keys, value } = KEYSPACES.small
    for (let i = 0; i < keys.length; i += 1000) await Promise.all(keys.slice(i, i + 1000).map((k) => c.set(k, value)))
  } finally {
    await c.quit()
  }
}

/** Starts a 3-master cluster, runs the cases, stops it; resolves the markdown section. */
async function suite({ durationMs = 3000, warmupMs = 500, log = console.error, engines = resolveEngines() } = {}) {
  const cluster = await harness.startCluster({ masters: 3, replicas: 0 })
  const out = [
    '',
    `## Redis Cluster: GET/SET at ${CONCURRENCY} callers`,
    '',
    `A local cluster of 3 masters (no replicas); ${KEYSPACES.small.count.toLocaleString('en-US')} keys of ${KEYSPACES.small.valueSize} bytes over all slots; ${durationMs / 1000} s per contender in ${SLICES} slices, the contenders taking turns. `
      + '× ioredis = ops/s ÷ ioredis Cluster (default) in the same table; × auto = ÷ ioredis Cluster with enableAutoPipelining (the goal: ≥ 2×).',
    '',
  ]
  const live = []
  try {
    await populate(cluster.nodes)
    for (const c of contenders(cluster.nodes, engines)) {
      try {
        live.push({ ...c, conn: await c.connect() })
      } catch (e) {
        live.push({ ...c, error: `connect: ${e && e.message}` })
      }
    }
    // The contenders take turns, slice by slice, as in run.js' tables.
    const slices = SLICES
    for (const kind of ['get', 'set']) {
      const measured = await runInTurns(live.filter((e) => !e.error), slices, (e, hist) =>
        runCase(e.conn, { kind, concurrency: CONCURRENCY }, { warmupMs: warmupMs / slices, durationMs: durationMs / slices, hist }))
      const rows = live.map((e) => {
        if (e.error) return { e, error: e.error }
        const m = measured.get(e)
        if (m.error) {
          log(`  cluster ${kind.toUpperCase()} C=${CONCURRENCY} ${e.label}: failed: ${m.error && m.error.message}`)
          return { e, error: String(m.error && m.error.message) }
        }
        log(`  cluster ${kind.toUpperCase()} C=${CONCURRENCY} ${e.label.padEnd(56)} ${report.fmtOps(m.result.opsPerSec)} ops/s`)
        return { e, r: m.result }
      })
      const opsOf = (id) => rows.find((x) => x.e.id === id && x.r)?.r.opsPerSec
      const base = opsOf('ioredis')
      const auto = opsOf('ioredis-auto')
      out.push(`### ${kind.toUpperCase()}, ${CONCURRENCY} concurrent callers`, '', '| client | ops/s | p50 | p99 | × ioredis | × auto |', '| --- | ---: | ---: | ---: | ---: | ---: |')
      for (const { e, r, error } of rows) {
        if (error) out.push(`| ${e.label} | failed: ${error.replace(/\|/g, '\\|')} | — | — | — | — |`)
        else out.push(`| ${e.label} | ${report.fmtOps(r.opsPerSec)} | ${report.fmtLatency(r.p50Ns)} | ${report.fmtLatency(r.p99Ns)} | ${report.fmtRatio(r.opsPerSec / base)} | ${report.fmtRatio(r.opsPerSec / auto)} |`)
      }
      out.push('')
    }
  } finally {
    for (const e of live) if (e.conn) await Promise.resolve(e.close(e.conn)).catch(() => {})
    await cluster.stop()
  }
  return out.join('\n')
}

module.exports = { suite }

if (require.main === module) {
  const { choice, rest } = engineArgs(process.argv.slice(2))
  const arg = rest.find((a) => a.startsWith('--duration='))
  const durationMs = arg ? Number(arg.split('=')[1]) * 1000 : 3000
  Promise.resolve()
    .then(() => suite({ durationMs, engines: resolveEngines(choice) }))
    .then((md) => console.log(md))
    .catch((e) => {
      console.error(e)
      process.exitCode = 1
    })
}
