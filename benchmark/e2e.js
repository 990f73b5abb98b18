#!/usr/bin/env node
'use strict'
// End-to-end benchmark: the example API's request path (examples/nest-api) in a
// Nest app on Express, driven over HTTP at a fixed number of connections, on
// the seed's stack and on this package, with Redis on the loopback and ~2 ms
// away (behind benchmark/delay-proxy.js: every chunk ~1 ms later each way).
//
//   node benchmark/e2e.js                 every case, 3 s each (+1 s warm-up), a markdown table on stdout
//   node benchmark/e2e.js --quick         1 s per case
//   node benchmark/e2e.js --duration=5 --json
//   node benchmark/e2e.js --only=fewest   the stacks whose id contains this text (seed is always run)
//   nice -n -10 node benchmark/e2e.js     on a host other jobs share (its children inherit the priority)
//
// The request: GET /accounts passes the app's throttler guard (two named
// throttlers, short and long), a SessionGuard (Better Auth session cookie) and
// reads the chart of accounts (2.5 KB of JSON) through @nestjs/cache-manager →
// Keyv, a cache hit. Stacks (VARIANTS):
//   seed     ioredis (one connection: the seed's RedisService) under @nest-lab/throttler-storage-redis
//            and Better Auth's @better-auth/redis-storage, @keyv/redis (its own node-redis connection),
//            ThrottlerGuard, Better Auth getSession
//   swap     this package as a plain swap: RedisModule's client, RedisThrottlerStorage,
//            redisSecondaryStorage, KeyvRedisStore; ThrottlerGuard, Better Auth getSession
//   fewest-getsession  the fewest round trips, with Better Auth getSession: RedisThrottlerGuard,
//            clientCache on the session prefix (better-auth:) and the Keyv namespace
//   fewest   the same with sessionVerifier (the example API's SessionGuard)
//   no-redis the same app with no Redis: ThrottlerGuard on a storage that counts nothing,
//            sessions from a map, in-memory Keyv: what the framework alone costs (a
//            ceiling, not a stack to deploy)
// Each app runs in a child process of its own (benchmark/e2e-app.js), the load
// generator in another (benchmark/e2e-load.js: C keep-alive connections, one request
// in flight each), the delay proxy in a third. The stacks of one table are measured
// one after another; the apps stay up (idle) meanwhile.
const { fork } = require('child_process')
const net = require('net')
const os = require('os')
const path = require('path')
const { suiteOf, runStandalone } = require('./feature-common')
const { Histogram } = require('./workloads')

const VARIANTS = [
  {
    id: 'seed',
    label: "ioredis, @nest-lab/throttler-storage-redis, @keyv/redis, Better Auth getSession on @better-auth/redis-storage (the seed's stack)",
    variant: { redis: 'ioredis' },
  },
  {
    id: 'swap',
    label: '@atlas-erp/redis as a plain swap: RedisThrottlerStorage, KeyvRedisStore, Better Auth getSession on redisSecondaryStorage',
    variant: { redis: 'atlas', throttler: 'storage', session: 'getSession' },
  },
  {
    id: 'fewest-getsession',
    label: '@atlas-erp/redis, fewest round trips, with Better Auth getSession: RedisThrottlerGuard, clientCache on better-auth: and the Keyv namespace',
    variant: { redis: 'atlas', throttler: 'guard', session: 'getSession', clientCache: true },
  },
  {
    id: 'fewest',
    label: "@atlas-erp/redis, fewest round trips: RedisThrottlerGuard, clientCache on better-auth: and the Keyv namespace, sessionVerifier (the example API's SessionGuard)",
    variant: { redis: 'atlas', throttler: 'guard', session: 'verifier', clientCache: true },
  },
  {
    id: 'no-redis',
    label: 'no Redis, the ceiling: the throttler guard on a storage that counts nothing, sessions from a map in the app, in-memory Keyv',
    variant: { redis: 'none' },
  },
]
const NETWORKS = [
  { id: 'loopback', label: 'Redis on the loopback' },
  { id: 'delayed', label: 'Redis behind the delay proxy (every chunk 1 ms later each way)' },
]
const CONNECTIONS = [16, 64]
const DELAY_MS = 1
const SESSIONS = 8
/** Requests over which MONITOR counts the Redis commands of one request. */
const COUNTED_REQUESTS = 100
/**
 * Each case is measured in slices of about this long (3 at least); the stacks of
 * a table take turns, slice by slice in rotating order, so that a slow moment
 * of the host falls on all of them alike.
 */
const SLICE_S = 2
const slicesOf = (duration) => Math.max(3, Math.round(duration / SLICE_S))
/** Warm-up of each slice (connections opened, the app's code hot from the first warm-up). */
const SLICE_WARMUP_MS = 250

// ---- child processes ------------------------------------------------------------------------

/** Forks `file` and resolves its first message that `accept`s (rejects on { error } or exit). */
function child(file, args, first, accept) {
  const p = fork(path.join(__dirname, file), args, { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
  const ready = new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (m && m.error) reject(new Error(`${file}: ${m.error}`))
      else if (accept(m)) {
        p.off('message', onMessage)
        resolve(m)
      }
    }
    p.on('message', onMessage)
    p.once('exit', (code) => reject(new Error(`${file} exited (${code})`)))
  })
  if (first !== undefined) p.send(first)
  return { p, ready }
}

/** The delay proxy in front of `host:port`: resolves { port, stop() }. */
async function startProxy(host, port) {
  const p = fork(path.join(__dirname, 'delay-proxy.js'), [`--target=${host}:${port}`, `--delay-ms=${DELAY_MS}`], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
  const line = await new Promise((resolve, reject) => {
    let out = ''
    p.stdout.on('data', (d) => {
      out += d
      if (out.includes('\n')) resolve(out.split('\n')[0])
    })
    p.once('exit', (code) => reject(new Error(`delay-proxy exited (${code})`)))
  })
  return { port: JSON.parse(line).port, stop: () => new Promise((r) => { p.once('exit', r); p.kill('SIGTERM') }) }
}

/** One app of `variant` on Redis at `redisUrl`: resolves { port, cookies, cpuUs(), close() }. */
async function startApp(variant, redisUrl) {
  const { p, ready } = child('e2e-app.js', [], { start: { variant, redisUrl, sessions: SESSIONS } }, (m) => m.ready)
  p.stdout.resume()
  const m = await ready
  return {
    port: m.port,
    cookies: m.cookies,
    /** The app process's CPU time so far, in µs. */
    cpuUs: () =>
      new Promise((resolve) => {
        const on = (r) => {
          if (r && r.cpuUs !== undefined) {
            p.off('message', on)
            resolve(r.cpuUs)
          }
        }
        p.on('message', on)
        p.send({ cpu: true })
      }),
    close: () =>
      new Promise((resolve) => {
        const t = setTimeout(() => p.kill('SIGKILL'), 10_000)
        p.once('exit', () => {
          clearTimeout(t)
          resolve()
        })
        p.send({ close: true })
      }),
  }
}

/** The load generator against `app`: resolves { requests, seconds, reqPerSec, p50Us, p99Us, hist }. */
async function load(app, connections, warmupMs, durationMs) {
  const { p, ready } = child(
    'e2e-load.js',
    [],
    { url: `http://127.0.0.1:${app.port}/accounts`, connections, warmupMs, durationMs, cookies: app.cookies },
    (m) => m.reqPerSec !== undefined,
  )
  p.stdout.resume()
  const r = await ready
  await new Promise((resolve) => (p.exitCode !== null ? resolve() : p.once('exit', resolve)))
  return r
}

// ---- Redis-side measures ----------------------------------------------------------------------

/** Round trip of one PING over a raw connection, median of `n`, in ms. */
async function pingMs(host, port, n = 200) {
  const socket = net.connect(port, host)
  socket.setNoDelay(true)
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  const times = []
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint()
    socket.write('PING\r\n')
    await new Promise((resolve) => socket.once('data', resolve))
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  socket.destroy()
  times.sort((a, b) => a - b)
  return times[Math.floor(n / 2)]
}

/**
 * Counts the commands clients send while `work` runs, by MONITOR (commands that
 * scripts run inside Redis are left out: one EVALSHA is one).
 */
async function countCommands(host, port, work) {
  const socket = net.connect(port, host)
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  let buf = ''
  let count = 0
  let started = false
  socket.setEncoding('utf8')
  socket.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 2)
      if (line === '+OK') started = true
      else if (started && /^\+\d+\.\d+ \[\d+ (?!lua\])/.test(line)) count++
    }
  })
  socket.write('MONITOR\r\n')
  while (!started) await new Promise((r) => setTimeout(r, 5))
  await work()
  await new Promise((r) => setTimeout(r, 200)) // the last lines
  socket.destroy()
  return count
}

// ---- run ------------------------------------------------------------------------------------------

/**
 * Runs every case against the redis-server at `url` (its keys are written, not
 * flushed) and resolves one row per case: { variant, label, network, connections,
 * reqPerSec, p50Us, p99Us, commandsPerRequest, rttMs }.
 */
async function runAll({ url, duration = 3, warmup = 0.5, only, log = () => {} }) {
  const { hostname: host, port: p } = new URL(url)
  const port = Number(p)
  const variants = VARIANTS.filter((v) => only === undefined || v.id === 'seed' || v.id.includes(only))
  if (variants.length === 0) throw new Error(`--only=${only}: no stack of that name`)
  const proxy = await startProxy(host, port)
  const rows = []
  const loadBefore = os.loadavg()[0]
  const apps = []
  try {
    const rtt = { loopback: await pingMs(host, port), delayed: await pingMs('127.0.0.1', proxy.port) }
    log(`e2e: PING round trip, median: loopback ${rtt.loopback.toFixed(3)} ms, through the proxy ${rtt.delayed.toFixed(3)} ms`)
    const urls = { loopback: url, delayed: `redis://127.0.0.1:${proxy.port}` }
    const perRequest = new Map()
    for (const v of variants) {
      for (const n of NETWORKS) {
        let app
        try {
          app = await startApp(v.variant, urls[n.id])
        } catch (e) {
          log(`e2e ${v.id} (${n.id}): failed to start: ${e.message}`)
          apps.push({ v, n, error: String(e.message).split('\n')[0] })
          continue
        }
        apps.push({ v, n, app })
        if (n.id === 'loopback') {
          const commands = await countCommands(host, port, async () => {
            for (let i = 0; i < COUNTED_REQUESTS; i++) {
              const res = await fetch(`http://127.0.0.1:${app.port}/accounts`, { headers: { cookie: app.cookies[i % app.cookies.length] } })
              await res.arrayBuffer()
            }
          })
          perRequest.set(v.id, commands / COUNTED_REQUESTS)
          log(`e2e ${v.id}: ${(commands / COUNTED_REQUESTS).toFixed(2)} Redis commands per request`)
        }
      }
    }
    const warmupMs = Math.max(1000, warmup * 1000)
    for (const n of NETWORKS) {
      for (const connections of CONNECTIONS) {
        const live = []
        for (const a of apps.filter((x) => x.n === n)) {
          const base = { variant: a.v.id, label: a.v.label, network: n.id, connections, rttMs: rtt[n.id], commandsPerRequest: perRequest.get(a.v.id) }
          if (a.error) {
            rows.push({ ...base, error: a.error })
            continue
          }
          live.push({ ...a, base, hist: new Histogram(), requests: 0, seconds: 0, cpuUs: 0 })
        }
        for (const c of live) {
          try {
            await load(c.app, connections, warmupMs, 0) // warm-up only
          } catch (e) {
            c.error = String(e.message).split('\n')[0]
          }
        }
        const slices = slicesOf(duration)
        for (let slice = 0; slice < slices; slice++) {
          for (let j = 0; j < live.length; j++) {
            const c = live[(slice + j) % live.length]
            if (c.error) continue
            try {
              const cpu0 = await c.app.cpuUs()
              const r = await load(c.app, connections, SLICE_WARMUP_MS, (duration * 1000) / slices)
              c.cpuUs += (await c.app.cpuUs()) - cpu0 // includes the slice's warm-up: counted below
              c.requests += r.requests
              c.seconds += r.seconds
              c.warmRequests = (c.warmRequests ?? 0) + r.warmRequests
              for (const [i, count] of r.hist.buckets) c.hist.counts[i] += count
              c.hist.total += r.requests
              c.hist.max = Math.max(c.hist.max, r.hist.max)
            } catch (e) {
              c.error = String(e.message).split('\n')[0]
            }
          }
        }
        for (const c of live) {
          if (c.error) {
            rows.push({ ...c.base, error: c.error })
            log(`e2e ${n.id} C=${connections} ${c.v.id}: failed: ${c.error}`)
            continue
          }
          const row = {
            ...c.base,
            requests: c.requests,
            reqPerSec: c.requests / c.seconds,
            p50Us: c.hist.quantile(0.5) / 1000,
            p99Us: c.hist.quantile(0.99) / 1000,
            appCpuMsPerRequest: c.cpuUs / 1000 / (c.requests + c.warmRequests),
          }
          rows.push(row)
          log(`e2e ${n.id.padEnd(8)} C=${String(connections).padEnd(3)} ${c.v.id.padEnd(18)} ${Math.round(row.reqPerSec).toLocaleString('en-US').padStart(7)} req/s  p50 ${(row.p50Us / 1000).toFixed(2)} ms  p99 ${(row.p99Us / 1000).toFixed(2)} ms  app CPU ${row.appCpuMsPerRequest.toFixed(3)} ms/request`)
        }
      }
    }
  } finally {
    await Promise.all(apps.filter((a) => a.app).map((a) => a.app.close()))
    await proxy.stop()
  }
  // how busy the host was (this run's own processes included): the rows' ratios hold better than their absolute numbers
  for (const r of rows) r.host = { cores: os.cpus().length, loadBefore, loadAfter: os.loadavg()[0], slices: slicesOf(duration), duration }
  return rows
}

function table(rows) {
  const out = []
  const ms = (us) => (us / 1000).toFixed(2)
  const labels = [...new Map(rows.map((r) => [r.variant, r.label])).entries()]
  const host = rows[0]?.host
  if (host) {
    out.push('')
    out.push(
      `${host.cores} cores shared by the app, the load generator, the delay proxy and redis-server (one process each); ` +
        `1-minute load average ${host.loadBefore.toFixed(1)} at the start, ${host.loadAfter.toFixed(1)} at the end. ` +
        `Each case: ${host.duration} s in ${host.slices} slices, the stacks of a table taking turns. App CPU: the app process's own CPU time per request.`,
    )
  }
  out.push('')
  out.push('Stacks:')
  for (const [id, label] of labels) out.push(`- **${id}**: ${label}`)
  for (const n of NETWORKS) {
    const nr = rows.filter((r) => r.network === n.id)
    if (nr.length === 0) continue
    const rtt = nr.find((r) => r.rttMs !== undefined)?.rttMs
    out.push(`\n### ${n.label}${rtt !== undefined ? ` (PING round trip ${rtt.toFixed(2)} ms, median)` : ''}\n`)
    out.push('| stack | connections | req/s | × seed | p50 ms | p50 ÷ seed | p99 ms | Redis commands / request | app CPU ms / request |')
    out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
    for (const connections of CONNECTIONS) {
      const cr = nr.filter((r) => r.connections === connections)
      const seed = cr.find((r) => r.variant === 'seed' && !r.error)
      for (const r of cr) {
        const cmds = r.commandsPerRequest === undefined ? '—' : r.commandsPerRequest.toFixed(2)
        if (r.error) {
          out.push(`| ${r.variant} | ${connections} | failed: ${r.error} | | | | | ${cmds} | |`)
          continue
        }
        const x = seed ? `${(r.reqPerSec / seed.reqPerSec).toFixed(2)}×` : '—'
        const p = seed ? `${(r.p50Us / seed.p50Us).toFixed(2)}` : '—'
        out.push(`| ${r.variant} | ${connections} | ${Math.round(r.reqPerSec).toLocaleString('en-US')} | ${x} | ${ms(r.p50Us)} | ${p} | ${ms(r.p99Us)} | ${cmds} | ${r.appCpuMsPerRequest.toFixed(2)} |`)
      }
    }
  }
  // The issue's goal: behind the ~2 ms round trip at 16 connections, ≥ 3× the seed's req/s and p50 ≤ 1/3 of its p50.
  const pick = (variant) => rows.find((r) => r.network === 'delayed' && r.connections === 16 && r.variant === variant && !r.error)
  const seed = pick('seed')
  const fewest = pick('fewest')
  if (seed && fewest) {
    const x = fewest.reqPerSec / seed.reqPerSec
    const p = fewest.p50Us / seed.p50Us
    out.push('\n| goal (delayed, 16 connections) | this run | |')
    out.push('| --- | --- | --- |')
    out.push(`| fewest: ≥ 3× the seed's req/s | ${x.toFixed(2)}× | ${x >= 3 ? 'met' : '**not met**'} |`)
    out.push(`| fewest: p50 ≤ 1/3 of the seed's | ${p.toFixed(2)} | ${p <= 1 / 3 ? 'met' : '**not met**'} |`)
  }
  return out.join('\n')
}

const suite = suiteOf('End to end: the example API request path over HTTP (Nest on Express)', runAll, table)

module.exports = { runAll, table, suite, VARIANTS }

runStandalone(module, __filename, runAll, table)
