#!/usr/bin/env node
'use strict'
// Caching benchmark: @atlas-erp/redis' client.cache.wrap() against cache-manager 7's
// wrap() over @keyv/redis 5 (node-redis, its own connection), and over this
// package's KeyvRedisStore, on one throwaway redis-server started by the test
// harness (never the server on 6379). Needs `npm run build` (it loads dist/).
//
//   node benchmark/cache.js                 every case, 3 s each, a markdown table on stdout
//   node benchmark/cache.js --quick         1 s per case
//   node benchmark/cache.js --duration=5 --json
//   node benchmark/cache.js --only=stampede the cases whose group or name contains this text
//   node benchmark/cache.js --baseline-engine  also the own engine (npm run bench:baseline)
//
// From another script (benchmark/run.js):
//   const cache = require('./cache')
//   const rows = await cache.runAll({ url, duration: 3, warmup: 0.5, flush: () => srv.cli('FLUSHALL'), cpuUs, log })
//   markdown += cache.table(rows)
//
// Workloads:
//   warm       C callers (closed loop, one cache object) wrap() ONE key that is cached:
//              every call is a hit. ops/s, latency, CPU per call, round trips per call.
//   stampede   rounds of: a new cold key, C callers at once, split over TWO instances
//              (two connections, two cache objects: two API processes as Redis sees
//              them); the loader takes LOADER_MS (a database query). Per round: the
//              time until every caller has its value, and how many times the loader ran.
//              C=1 is a plain miss (load, store) on one instance.
const { hrnow, redisCpuUs, runPhase, suiteOf, runStandalone } = require('./feature-common')
const { load, resolveEngines } = require('./engines')

const TTL_MS = 300_000
const LOADER_MS = 20

/** A chart of accounts of 40 entries: about 2.5 KB of JSON. */
const VALUE = {
  tenant: 'acme',
  accounts: Array.from({ length: 40 }, (_, i) => ({
    code: String(1000 + i * 10),
    name: `Account ${i} — ${['Cash', 'Receivables', 'Inventory', 'Payables', 'Revenue'][i % 5]}`,
    type: ['asset', 'liability', 'equity', 'income', 'expense'][i % 5],
    active: i % 7 !== 0,
  })),
}
const VALUE_BYTES = Buffer.byteLength(JSON.stringify(VALUE))


const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// ---- contenders ------------------------------------------------------------------------
// Each makes one "instance": { wrap(key, loader) → Promise, close(), stats?() }.
// This package's contenders come once per engine (engines.js).

const contenders = (engines) => ({
  ...Object.fromEntries(engines.map((engine) => [`${engine.name} cache.wrap`, async (url) => {
    const { RedisClient } = load(engine)
    const client = await RedisClient.connect(url)
    return {
      wrap: (key, loader) => client.cache.wrap(key, TTL_MS, loader),
      close: () => client.close(),
      stats: () => client.stats(),
    }
  }])),
  'cache-manager wrap, @keyv/redis': async (url) => {
    const { createCache } = require('cache-manager')
    const { Keyv } = require('keyv')
    const KeyvRedis = require('@keyv/redis').default
    const store = new KeyvRedis(url)
    const cache = createCache({ stores: [new Keyv({ store, namespace: 'cm' })] })
    await store.getClient() // connect before measuring
    return {
      wrap: (key, loader) => cache.wrap(key, loader, TTL_MS),
      close: () => cache.disconnect(),
    }
  },
  ...Object.fromEntries(engines.map((engine) => [`cache-manager wrap, ${engine.name} KeyvRedisStore`, async (url) => {
    const { createCache } = require('cache-manager')
    const { Keyv } = require('keyv')
    const { RedisClient } = load(engine)
    const { KeyvRedisStore } = load(engine, 'keyv')
    const client = await RedisClient.connect(url)
    const cache = createCache({ stores: [new Keyv({ store: new KeyvRedisStore(client), namespace: 'cm' })] })
    return {
      wrap: (key, loader) => cache.wrap(key, loader, TTL_MS),
      close: () => client.close(),
      stats: () => client.stats(),
    }
  }])),
})

// ---- phases --------------------------------------------------------------------------------

/** C callers for `ms` on the warm key; resolves { ops, opsPerSec, p50Us, p99Us }. */
function runWarm(wrap, concurrency, ms) {
  const loader = async () => VALUE
  return runPhase(async () => {
    const v = await wrap('bench:warm', loader)
    if (v.tenant !== 'acme') throw new Error('wrong value')
  }, concurrency, ms)
}

/**
 * Rounds of a cold-key stampede for `ms`: C callers at once on a new key, split
 * over the instances. Resolves { rounds, p50Ms, p99Ms, loadsPerRound }.
 */
async function runStampede(instances, concurrency, ms, tag) {
  const deadline = hrnow() + BigInt(Math.round(ms * 1e6))
  const times = []
  let loads = 0
  let rounds = 0
  const loader = async () => {
    loads++
    await sleep(LOADER_MS)
    return VALUE
  }
  while (hrnow() < deadline) {
    const key = `bench:cold:${tag}:${rounds}`
    const t0 = hrnow()
    const calls = []
    for (let i = 0; i < concurrency; i++) calls.push(instances[i % instances.length].wrap(key, loader))
    const values = await Promise.all(calls)
    times.push(Number(hrnow() - t0) / 1e6)
    if (values.some((v) => v.tenant !== 'acme')) throw new Error('wrong value')
    rounds++
  }
  times.sort((a, b) => a - b)
  const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))]
  return { rounds, p50Ms: q(0.5), p99Ms: q(0.99), loadsPerRound: loads / rounds }
}

// ---- run --------------------------------------------------------------------------------------

/**
 * Runs every case against the server at `url` (flushed between cases by `flush`,
 * so it must be a throwaway server) and resolves one row per case. `cpuUs()`
 * reads the server's CPU time (µs) for the per-call CPU columns.
 */
async function runAll({ url, duration = 3, warmup = 0.5, flush, cpuUs, only, engines = resolveEngines(), log = () => {} }) {
  const rows = []
  const cases = []
  const makers = contenders(engines)
  for (const group of ['warm', 'stampede']) {
    for (const callers of [1, 100]) {
      for (const name of Object.keys(makers)) cases.push({ group, name, callers })
    }
  }
  let tag = 0
  for (const k of cases) {
    if (only !== undefined && !k.group.includes(only) && !k.name.includes(only)) continue
    await flush()
    const instances = []
    try {
      const make = makers[k.name]
      if (k.group === 'warm') {
        const inst = await make(url)
        instances.push(inst)
        await inst.wrap('bench:warm', async () => VALUE) // cached before the clock starts
        await runWarm(inst.wrap, k.callers, warmup * 1000)
        const before = inst.stats?.()
        const cpu0 = process.cpuUsage()
        const redis0 = await cpuUs()
        const r = await runWarm(inst.wrap, k.callers, duration * 1000)
        const cpu1 = process.cpuUsage(cpu0)
        const redis1 = await cpuUs()
        const after = inst.stats?.()
        const row = {
          group: k.group,
          name: k.name,
          callers: k.callers,
          ...r,
          nodeCpuUs: (cpu1.user + cpu1.system) / r.ops,
          redisCpuUs: (redis1 - redis0) / r.ops,
        }
        if (before && after) row.commandsPerCall = (after.commands - before.commands) / r.ops
        rows.push(row)
        log(`warm     C=${String(k.callers).padEnd(3)} ${k.name.padEnd(50)} ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(9)} ops/s  p50 ${r.p50Us.toFixed(0)} µs  p99 ${r.p99Us.toFixed(0)} µs  cpu/call node ${row.nodeCpuUs.toFixed(1)} µs redis ${row.redisCpuUs.toFixed(2)} µs${row.commandsPerCall !== undefined ? `  commands/call ${row.commandsPerCall.toFixed(3)}` : ''}`)
      } else {
        instances.push(await make(url))
        if (k.callers > 1) instances.push(await make(url))
        tag++
        await runStampede(instances, k.callers, warmup * 1000, `w${tag}`)
        const before = instances.map((i) => i.stats?.())
        const r = await runStampede(instances, k.callers, duration * 1000, `m${tag}`)
        const after = instances.map((i) => i.stats?.())
        const row = { group: k.group, name: k.name, callers: k.callers, instances: instances.length, ...r }
        if (before.every(Boolean)) {
          row.commandsPerRound = after.reduce((s, a, i) => s + a.commands - before[i].commands, 0) / r.rounds
        }
        rows.push(row)
        log(`stampede C=${String(k.callers).padEnd(3)} ${k.name.padEnd(50)} ${String(r.rounds).padStart(5)} rounds  all served p50 ${r.p50Ms.toFixed(1)} ms  p99 ${r.p99Ms.toFixed(1)} ms  loader runs/round ${r.loadsPerRound.toFixed(2)}${row.commandsPerRound !== undefined ? `  commands/round ${row.commandsPerRound.toFixed(1)}` : ''}`)
      }
    } catch (e) {
      rows.push({ group: k.group, name: k.name, callers: k.callers, error: String(e && e.message) })
      log(`${k.group} ${k.name}: failed: ${e && e.message}`)
    } finally {
      await Promise.all(instances.map((i) => Promise.resolve(i.close()).catch(() => {})))
    }
  }
  return rows
}


function table(rows) {
  const out = []
  const warm = rows.filter((r) => r.group === 'warm')
  const stampede = rows.filter((r) => r.group === 'stampede')
  const base = (r, list) => list.find((b) => b.callers === r.callers && b.name === 'cache-manager wrap, @keyv/redis' && !b.error)
  if (warm.length) {
    out.push(`\n### wrap() on a warm key (${VALUE_BYTES} B of JSON, one instance)\n`)
    out.push('| contender | callers | ops/s | p50 µs | p99 µs | node CPU µs/call | redis CPU µs/call | commands/call | vs cache-manager + @keyv/redis |')
    out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for (const r of warm) {
      if (r.error) { out.push(`| ${r.name} | ${r.callers} | failed: ${r.error} | | | | | | |`); continue }
      const b = base(r, warm)
      out.push(`| ${r.name} | ${r.callers} | ${Math.round(r.opsPerSec).toLocaleString('en-US')} | ${r.p50Us.toFixed(0)} | ${r.p99Us.toFixed(0)} | ${r.nodeCpuUs.toFixed(1)} | ${r.redisCpuUs.toFixed(2)} | ${r.commandsPerCall !== undefined ? r.commandsPerCall.toFixed(3) : '—'} | ${b ? `${(r.opsPerSec / b.opsPerSec).toFixed(2)}×` : ''} |`)
    }
  }
  if (stampede.length) {
    out.push(`\n### wrap() on a cold key: a stampede (loader ${LOADER_MS} ms; callers split over two instances when C > 1)\n`)
    out.push('| contender | callers | instances | rounds | all served, p50 ms | p99 ms | loader runs per stampede | commands per stampede |')
    out.push('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for (const r of stampede) {
      if (r.error) { out.push(`| ${r.name} | ${r.callers} | | failed: ${r.error} | | | | |`); continue }
      out.push(`| ${r.name} | ${r.callers} | ${r.instances} | ${r.rounds} | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${r.loadsPerRound.toFixed(2)} | ${r.commandsPerRound !== undefined ? r.commandsPerRound.toFixed(1) : '—'} |`)
    }
  }
  return out.join('\n')
}

const suite = suiteOf('cache.wrap against cache-manager', runAll, table)

module.exports = { runAll, table, suite }

runStandalone(module, __filename, runAll, table)
