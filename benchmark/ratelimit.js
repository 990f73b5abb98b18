#!/usr/bin/env node
'use strict'
// Rate-limit benchmark: @atlas-erp/redis' RedisThrottlerStorage and rateLimit()
// against @nest-lab/throttler-storage-redis and rate-limiter-flexible's
// RateLimiterRedis (both on ioredis), on one throwaway redis-server started by
// the test harness (never the server on 6379).
//
//   node benchmark/ratelimit.js                 every case, 3 s each, a markdown table on stdout
//   node benchmark/ratelimit.js --quick         1 s per case
//   node benchmark/ratelimit.js --duration=5 --json
//   node benchmark/ratelimit.js --only=throttler-allowed   the cases whose group or name contains this text
//   node benchmark/ratelimit.js --baseline-engine          also the own engine (npm run bench:baseline)
//
// From another script (benchmark/run.js):
//   const rl = require('./ratelimit')
//   const rows = await rl.runAll({ url, duration: 3, warmup: 0.5, flush: () => srv.cli('FLUSHALL'), log })
//   markdown += rl.table(rows)
//
// Workloads (closed loop: C callers, each awaiting one call at a time, one client object;
// the contenders of a workload take turns, six slices each, on one server):
//   throttler-allowed   ThrottlerStorage.increment(key, 60 s, limit 1000, block 60 s) over
//                       10,000 trackers: traffic under its limit, every call counted (atlas
//                       sends the calls of one tick as one script call, up to 48 per turn
//                       of the event loop: its round trips/call column is below 1)
//   throttler-hot       the same on ONE tracker with limit 100: after the first 100 calls
//                       the key is blocked (an abusive client)
//   ratelimit-allowed   rateLimit() (GCRA 1000/min) / RateLimiterRedis.consume() over 10,000 keys
//   ratelimit-hot       one key, 100/min: denied after 100 calls (atlas answers from its
//                       denied-key cache; rate-limiter-flexible has an in-memory block
//                       option, inMemoryBlockOnConsumed, used here for a fair comparison)
//   ratelimit-256       256 concurrent requests, each with a rate limit of its own key
//                       (rateLimit, and the throttler storage's increment): p99 and the peak
//                       JS heap while it runs, which the pacers' bounded queues keep flat
//                       (issue 18, point 12; the behaviour is in __test__/reliability/pacer.spec.ts)
const { runPhase, redisCpuUs, suiteOf, runStandalone } = require('./feature-common')
const { Histogram, runPhase: runClosedLoop } = require('./workloads')
const { load, resolveEngines } = require('./engines')

const KEYS = 10_000
/** Turns each contender of a group takes (interleaved) within the measured duration. */
const SLICES = 6




// ---- contenders ----------------------------------------------------------------------

async function ioredis(url, autoPipelining = false) {
  const { Redis } = require('ioredis')
  const c = new Redis(url, { lazyConnect: true, enableAutoPipelining: autoPipelining, retryStrategy: () => null })
  c.on('error', () => {})
  await c.connect()
  return c
}

const keyOf = (c, n) => `bench:${(c * 7919 + n) % KEYS}`

/** The throttler storages by name: one per engine of this package (engines.js), then the peers. */
const throttlers = (engines) => ({
  ...Object.fromEntries(engines.map((engine) => [`${engine.name} RedisThrottlerStorage`, async (url) => {
    const { RedisClient } = load(engine)
    const { RedisThrottlerStorage } = load(engine, 'throttler')
    const client = await RedisClient.connect(url)
    const s = new RedisThrottlerStorage(client)
    return { storage: s, close: () => client.close(), stats: () => client.stats() }
  }])),
  '@nest-lab/throttler-storage-redis (ioredis)': async (url) => {
    const { ThrottlerStorageRedisService } = require('@nest-lab/throttler-storage-redis')
    const c = await ioredis(url)
    return { storage: new ThrottlerStorageRedisService(c), close: () => c.quit() }
  },
  '@nest-lab/throttler-storage-redis (ioredis auto-pipelining)': async (url) => {
    const { ThrottlerStorageRedisService } = require('@nest-lab/throttler-storage-redis')
    const c = await ioredis(url, true)
    return { storage: new ThrottlerStorageRedisService(c), close: () => c.quit() }
  },
  "rate-limiter-flexible RateLimiterRedis (ioredis)": async (url) => {
    const { RateLimiterRedis } = require('rate-limiter-flexible')
    const c = await ioredis(url)
    const limiters = new Map()
    // The guard's arguments mapped onto rate-limiter-flexible: points = limit,
    // duration = ttl, blockDuration = blockDuration (seconds there).
    const storage = {
      async increment(key, ttl, limit, blockDuration, name) {
        const id = `${ttl}/${limit}/${blockDuration}/${name}`
        let rl = limiters.get(id)
        if (!rl) {
          rl = new RateLimiterRedis({ storeClient: c, keyPrefix: `rlf:${name}`, points: limit, duration: Math.ceil(ttl / 1000), blockDuration: Math.ceil(blockDuration / 1000) })
          limiters.set(id, rl)
        }
        try {
          const r = await rl.consume(key)
          return { totalHits: r.consumedPoints, timeToExpire: Math.ceil(r.msBeforeNext / 1000), isBlocked: false, timeToBlockExpire: 0 }
        } catch (r) {
          if (r instanceof Error) throw r
          return { totalHits: r.consumedPoints, timeToExpire: Math.ceil(r.msBeforeNext / 1000), isBlocked: true, timeToBlockExpire: Math.ceil(r.msBeforeNext / 1000) }
        }
      },
    }
    return { storage, close: () => c.quit() }
  },
})

/** rateLimit() with GCRA and the sliding window on each engine, then rate-limiter-flexible. */
const limiters = (engines) => ({
  ...Object.fromEntries(engines.flatMap((engine) => [['GCRA', undefined], ['sliding window', 'sliding-window']].map(([title, algorithm]) => [
    `${engine.name} rateLimit (${title})`,
    async (url, hot) => {
      const { RedisClient } = load(engine)
      const client = await RedisClient.connect(url)
      const rule = { limit: hot ? 100 : 1000, windowMs: 60_000, ...(algorithm && { algorithm }) }
      return { check: (key) => client.rateLimit(key, rule), close: () => client.close(), stats: () => client.stats() }
    },
  ]))),
  'rate-limiter-flexible RateLimiterRedis (ioredis)': async (url, hot) => {
    const { RateLimiterRedis } = require('rate-limiter-flexible')
    const c = await ioredis(url)
    const rl = new RateLimiterRedis({
      storeClient: c,
      points: hot ? 100 : 1000,
      duration: 60,
      // its in-process memory of consumed keys, the counterpart of atlas' denied-key cache
      inMemoryBlockOnConsumed: hot ? 100 : 1000,
    })
    return { check: (key) => rl.consume(key).catch((r) => { if (r instanceof Error) throw r; return r }), close: () => c.quit() }
  },
})

// ---- run ------------------------------------------------------------------------------

/**
 * Runs every case against the server at `url` (it is flushed between workloads
 * by `flush`, so it must be a throwaway server) and resolves one row per case.
 * `cpuUs()` reads the server's CPU time (µs) for the per-call CPU columns.
 */
async function runAll({ url, duration = 3, warmup = 0.5, flush, cpuUs, only, engines = resolveEngines(), log = () => {} }) {
  const rows = []
  const cases = []
  for (const hot of [false, true]) {
    for (const [name, make] of Object.entries(throttlers(engines))) {
      cases.push({
        group: hot ? 'throttler-hot' : 'throttler-allowed',
        name,
        callers: 100,
        make: (u) => make(u),
        op: hot
          ? (s) => () => s.storage.increment('bench:hot', 60_000, 100, 60_000, 'default')
          : (s) => (c, n) => s.storage.increment(keyOf(c, n), 60_000, 1000, 60_000, 'default'),
      })
    }
  }
  for (const hot of [false, true]) {
    for (const callers of hot ? [100] : [1, 100]) {
      for (const [name, make] of Object.entries(limiters(engines))) {
        cases.push({
          group: hot ? 'ratelimit-hot' : 'ratelimit-allowed',
          name,
          callers,
          make: (u) => make(u, hot),
          op: hot ? (s) => () => s.check('bench:hot') : (s) => (c, n) => s.check(keyOf(c, n)),
        })
      }
    }
  }
  // 256 concurrent requests, one rate limit each: the pacers' queues under a wide fan-in
  const wide = { ...throttlers(engines), ...limiters(engines) }
  for (const [name, make] of Object.entries(wide)) {
    const isThrottler = name.includes('Throttler') || name.includes('throttler')
    cases.push({
      group: 'ratelimit-256',
      name,
      callers: 256,
      make: (u) => make(u, false),
      op: isThrottler
        ? (s) => (c, n) => s.storage.increment(keyOf(c, n), 60_000, 1000, 60_000, 'default')
        : (s) => (c, n) => s.check(keyOf(c, n)),
    })
  }
  // The contenders of one group and caller count run interleaved: SLICES turns
  // each, in rotating order, so a slow phase of the host falls on all of them
  // alike and their ratios hold still where back-to-back runs drifted by 10-30 %.
  const sets = new Map()
  for (const k of cases) {
    if (only !== undefined && !k.group.includes(only) && !k.name.includes(only)) continue
    const id = `${k.group}/${k.callers}`
    if (!sets.has(id)) sets.set(id, [])
    sets.get(id).push(k)
  }
  for (const set of sets.values()) {
    await flush()
    const live = []
    for (const k of set) {
      let conn
      try {
        conn = await k.make(url)
        const op = k.op(conn)
        await runPhase(op, k.callers, warmup * 1000)
        live.push({ k, conn, op, hist: new Histogram(), ops: 0, ns: 0, nodeUs: 0, redisUs: 0, commands: 0, heapPeak: 0 })
      } catch (e) {
        await conn?.close().catch(() => {})
        rows.push({ group: k.group, name: k.name, callers: k.callers, error: String(e && e.message) })
        log(`${k.group} ${k.name}: failed: ${e && e.message}`)
      }
    }
    try {
      for (let turn = 0; turn < SLICES; turn++) {
        for (let j = 0; j < live.length; j++) {
          const c = live[(turn + j) % live.length]
          if (c.error) continue
          try {
            const before = c.conn.stats?.()
            const cpu0 = process.cpuUsage()
            const redis0 = await cpuUs()
            // the JS heap's peak while it runs (sampled: a queue that grows shows)
            const sampler = setInterval(() => { c.heapPeak = Math.max(c.heapPeak, process.memoryUsage().heapUsed) }, 20)
            let r
            try {
              r = await runClosedLoop(c.op, c.k.callers, (duration * 1000) / SLICES, c.hist)
            } finally {
              clearInterval(sampler)
            }
            const cpu1 = process.cpuUsage(cpu0)
            c.redisUs += (await cpuUs()) - redis0
            c.nodeUs += cpu1.user + cpu1.system
            c.ops += r.ops
            c.ns += Number(r.elapsedNs)
            if (before) c.commands += c.conn.stats().commands - before.commands
          } catch (e) {
            c.error = String(e && e.message)
          }
        }
      }
    } finally {
      for (const c of live) await c.conn.close().catch(() => {})
    }
    for (const c of live) {
      const { group, name, callers } = c.k
      if (c.error) {
        rows.push({ group, name, callers, error: c.error })
        log(`${group} ${name}: failed: ${c.error}`)
        continue
      }
      const row = {
        group,
        name,
        callers,
        ops: c.ops,
        opsPerSec: c.ops / (c.ns / 1e9),
        p50Us: c.hist.quantile(0.5) / 1000,
        p99Us: c.hist.quantile(0.99) / 1000,
        // CPU per call: this process (JS and native threads) and the redis-server
        nodeCpuUs: c.nodeUs / c.ops,
        redisCpuUs: c.redisUs / c.ops,
        heapPeakMB: c.heapPeak / 2 ** 20,
      }
      if (c.conn.stats) row.roundTripsPerCall = c.commands / c.ops
      rows.push(row)
      log(`${group.padEnd(18)} C=${String(callers).padEnd(3)} ${name.padEnd(62)} ${Math.round(row.opsPerSec).toLocaleString('en-US').padStart(9)} ops/s  p50 ${row.p50Us.toFixed(0)} µs  p99 ${row.p99Us.toFixed(0)} µs  cpu/call node ${row.nodeCpuUs.toFixed(1)} µs redis ${row.redisCpuUs.toFixed(1)} µs  heap peak ${row.heapPeakMB.toFixed(0)} MB${row.roundTripsPerCall !== undefined ? `  round trips/call ${row.roundTripsPerCall.toFixed(3)}` : ''}`)
    }
  }
  return rows
}



function table(rows) {
  const out = []
  const groups = [...new Set(rows.map((r) => r.group))]
  for (const g of groups) {
    const gr = rows.filter((r) => r.group === g)
    const base = gr.find((r) => r.name.startsWith('@nest-lab') && !r.name.includes('auto') && (r.callers === 100 || g === 'ratelimit-256'))
    // the peak heap is the point of ratelimit-256 (bounded queues); elsewhere it is noise
    const heap = g === 'ratelimit-256'
    out.push(`\n### ${g}\n`)
    out.push(`| client | callers | ops/s | p50 µs | p99 µs | node CPU µs/call | redis CPU µs/call |${heap ? ' peak heap MB |' : ''}${base ? ' vs @nest-lab |' : ''}`)
    out.push(`| --- | --- | --- | --- | --- | --- | --- |${heap ? ' --- |' : ''}${base ? ' --- |' : ''}`)
    for (const r of gr) {
      if (r.error) { out.push(`| ${r.name} | ${r.callers} | failed: ${r.error} | | | | |${heap ? ' |' : ''}${base ? ' |' : ''}`); continue }
      const ratio = base && base.opsPerSec ? ` ${(r.opsPerSec / base.opsPerSec).toFixed(2)}× |` : ''
      out.push(`| ${r.name} | ${r.callers} | ${Math.round(r.opsPerSec).toLocaleString('en-US')} | ${r.p50Us.toFixed(0)} | ${r.p99Us.toFixed(0)} | ${r.nodeCpuUs.toFixed(1)} | ${r.redisCpuUs.toFixed(1)} |${heap ? ` ${r.heapPeakMB.toFixed(0)} |` : ''}${ratio}`)
    }
  }
  return out.join('\n')
}

const suite = suiteOf('Rate limiting', runAll, table)

module.exports = { runAll, table, suite }

runStandalone(module, __filename, runAll, table)
