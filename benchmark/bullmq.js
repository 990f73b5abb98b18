#!/usr/bin/env node
'use strict'
// BullMQ benchmark: the same BullMQ (the installed bullmq) on each Redis client, on
// one throwaway redis-server started by the test harness (never the server on 6379).
//
//   node benchmark/bullmq.js                   every case; a markdown table on stdout
//   node benchmark/bullmq.js --quick           fewer jobs
//   node benchmark/bullmq.js --duration=5      job counts scale with it (default 3)
//   node benchmark/bullmq.js --only=e2e        cases whose name contains "e2e"
//   node benchmark/bullmq.js --json
//
// From benchmark/run.js: 'bullmq' is in its EXTRA_SUITES (full runs).
//
// Clients (each BullMQ's own way to use it):
//   ioredis       new IORedis(url, { maxRetriesPerRequest: null }), BullMQ's default: the baseline
//   node-redis    createClient({ url }) from 'redis', which BullMQ wraps in its node-redis adapter
//   GLIDE         GlideClient.createClient({ requestTimeout: 30 s }), wrapped by BullMQ's createValkeyGlideClient
//   atlas         new BullMQRedisClient(url) (@atlas-erp/redis/bullmq), once per engine that has it
//
// Cases (one Queue and one Worker per client, one connection object passed to both):
//   addBulk 10,000    queue.addBulk() of 10,000 small jobs: jobs/s
//   e2e c=N           add → process → complete: a producer keeps 100 queue.add() calls in flight
//                     while a Worker (concurrency N, a no-op processor) completes them; jobs/s from the
//                     first add to the last 'completed' event (N = 1 and 50)
// Every client runs every case on a flushed server, in rounds (2 with --quick, else 3), each round
// in another order of the clients; a client's row is its best round. All clients are connected and
// warmed up (500 jobs each) before the first measurement.
const { redisCpuUs, suiteOf, runStandalone } = require('./feature-common')
const { load, resolveEngines } = require('./engines')

const ADD_BULK = 10_000
const PRODUCER_IN_FLIGHT = 100
const WARMUP_JOBS = 500

// ---- the clients ------------------------------------------------------------------------

/** `{ name, connection(), close(conn) }` per client; `connection()` makes the object passed to Queue and Worker. */
function contenders(url, engines) {
  const { hostname: host, port } = new URL(url)
  const list = [
    {
      name: 'ioredis',
      connection: () => {
        const { Redis } = require('ioredis')
        return new Redis(url, { maxRetriesPerRequest: null })
      },
      close: (c) => c.quit(),
    },
    {
      name: 'node-redis',
      connection: () => require('redis').createClient({ url }),
      close: (c) => (c.isOpen ? c.quit() : undefined),
    },
    {
      name: 'GLIDE',
      connection: () => {
        const { GlideClient } = require('@valkey/valkey-glide')
        const { createValkeyGlideClient } = require('bullmq')
        // GLIDE's default request timeout (250 ms) fails an addBulk of 10,000 jobs (one pipeline).
        return createValkeyGlideClient(GlideClient.createClient({ addresses: [{ host, port: Number(port) }], requestTimeout: 30_000 }))
      },
      close: (c) => c.quit(),
    },
  ]
  for (const engine of engines) {
    let mod
    try {
      mod = load(engine, 'bullmq')
    } catch {
      continue // an engine without the bullmq entry (older builds)
    }
    list.push({ name: engine.name, connection: () => new mod.BullMQRedisClient(url), close: (c) => c.quit() })
  }
  return list
}

// ---- the cases -------------------------------------------------------------------------

let seq = 0

/** addBulk of `n` small jobs; resolves the seconds it took. */
async function addBulk(connection, n) {
  const { Queue } = require('bullmq')
  const queue = new Queue(`bench-bulk-${++seq}`, { connection })
  await queue.waitUntilReady()
  const jobs = Array.from({ length: n }, (_, i) => ({ name: 'j', data: { i } }))
  const t0 = process.hrtime.bigint()
  const added = await queue.addBulk(jobs)
  const s = Number(process.hrtime.bigint() - t0) / 1e9
  if (added.length !== n) throw new Error(`addBulk added ${added.length} of ${n}`)
  await queue.close()
  return s
}

/** Adds `n` jobs (PRODUCER_IN_FLIGHT add() calls at a time) while a worker of `concurrency` completes them; resolves the seconds. */
async function endToEnd(connection, n, concurrency) {
  const { Queue, Worker } = require('bullmq')
  const name = `bench-e2e-${++seq}`
  const queue = new Queue(name, { connection })
  const worker = new Worker(name, async () => {}, { connection, concurrency, autorun: false })
  await Promise.all([queue.waitUntilReady(), worker.waitUntilReady()])
  let completed = 0
  let failed
  const done = new Promise((resolve) => {
    worker.on('completed', () => {
      if (++completed === n) resolve()
    })
    worker.on('failed', (_job, e) => (failed ??= e))
    worker.on('error', (e) => (failed ??= e))
  })
  const t0 = process.hrtime.bigint()
  void worker.run()
  let next = 0
  const producer = async () => {
    while (next < n) {
      const i = next++
      await queue.add('j', { i })
    }
  }
  await Promise.all(Array.from({ length: Math.min(PRODUCER_IN_FLIGHT, n) }, producer))
  await done
  const s = Number(process.hrtime.bigint() - t0) / 1e9
  await worker.close()
  await queue.close()
  if (failed) throw failed
  return s
}

// ---- the run ---------------------------------------------------------------------------

async function runAll({ url, duration = 3, warmup = 0.5, cpuUs, only, engines = resolveEngines(), flush, log = () => {} }) {
  const scale = Math.max(1, duration)
  const rounds = duration <= 1 ? 2 : 3
  const cases = [
    { name: `addBulk ${ADD_BULK.toLocaleString('en-US')}`, kind: 'bulk', jobs: ADD_BULK },
    { name: 'e2e c=1', kind: 'e2e', jobs: Math.round(1000 * scale), concurrency: 1 },
    { name: 'e2e c=50', kind: 'e2e', jobs: Math.round(5000 * scale), concurrency: 50 },
  ].filter((c) => !only || c.name.includes(only))
  const rows = []
  const failed = (who, e) => {
    who.error = String(e?.message ?? e).split('\n')[0]
    log(`${who.name}: ${e?.stack ?? e}`)
  }
  // Every client connected and warmed up before anything is measured: BullMQ's own code is
  // then as warm for the first client measured as for the last.
  const all = contenders(url, engines)
  for (const who of all) {
    try {
      who.conn = who.connection()
      if (typeof who.conn.on === 'function') who.conn.on('error', () => {})
      await flush()
      await endToEnd(who.conn, warmup > 0 ? WARMUP_JOBS : 50, 10)
    } catch (e) {
      failed(who, e)
    }
  }
  try {
    for (const c of cases) {
      const best = new Map()
      // Rounds in turn, each in another order: a slow moment of the machine does not hit one client only.
      for (let round = 0; round < rounds; round++) {
        for (let k = 0; k < all.length; k++) {
          const who = all[(k + round) % all.length]
          if (who.error) continue
          try {
            await flush()
            const cpu0 = process.cpuUsage()
            const r0 = cpuUs ? await cpuUs() : 0
            const seconds = c.kind === 'bulk' ? await addBulk(who.conn, c.jobs) : await endToEnd(who.conn, c.jobs, c.concurrency)
            const cpu = process.cpuUsage(cpu0)
            const redisUs = cpuUs ? (await cpuUs()) - r0 : NaN
            const row = { case: c.name, client: who.name, jobs: c.jobs, seconds, jobsPerSec: c.jobs / seconds, nodeCpuUsPerJob: (cpu.user + cpu.system) / c.jobs, redisCpuUsPerJob: redisUs / c.jobs }
            log(`${c.name.padEnd(14)} ${who.name.padEnd(12)} round ${round + 1}: ${Math.round(row.jobsPerSec).toLocaleString('en-US').padStart(8)} jobs/s`)
            if (!best.has(who.name) || best.get(who.name).jobsPerSec < row.jobsPerSec) best.set(who.name, row)
          } catch (e) {
            failed(who, e)
          }
        }
      }
      for (const who of all) rows.push(best.get(who.name) ?? { case: c.name, client: who.name, error: who.error ?? 'not measured' })
    }
  } finally {
    for (const who of all) if (who.conn) await Promise.resolve(who.close(who.conn)).catch(() => {})
  }
  return rows
}

function table(rows) {
  const clients = [...new Set(rows.map((r) => r.client))]
  const out = [
    '',
    'jobs/s (× BullMQ on ioredis); node and redis-server CPU µs per job in the detail rows.',
    '',
    `| case | ${clients.join(' | ')} |`,
    `| --- | ${clients.map(() => '---:').join(' | ')} |`,
  ]
  for (const name of [...new Set(rows.map((r) => r.case))]) {
    const base = rows.find((r) => r.case === name && r.client === 'ioredis' && !r.error)
    const cells = clients.map((client) => {
      const r = rows.find((x) => x.case === name && x.client === client)
      if (!r) return '—'
      if (r.error) return `failed: ${r.error}`
      const ratio = base ? ` (${(r.jobsPerSec / base.jobsPerSec).toFixed(2)}×)` : ''
      return `${Math.round(r.jobsPerSec).toLocaleString('en-US')}${ratio}`
    })
    out.push(`| ${name} | ${cells.join(' | ')} |`)
  }
  out.push('', '| case | client | node CPU µs/job | redis CPU µs/job |', '| --- | --- | ---: | ---: |')
  for (const r of rows) if (!r.error) out.push(`| ${r.case} | ${r.client} | ${r.nodeCpuUsPerJob.toFixed(0)} | ${Number.isFinite(r.redisCpuUsPerJob) ? r.redisCpuUsPerJob.toFixed(0) : '—'} |`)
  return out.join('\n')
}

const suite = suiteOf('BullMQ: addBulk and add → process → complete, on each client', runAll, table)

module.exports = { runAll, table, suite }

runStandalone(module, __filename, runAll, table)
