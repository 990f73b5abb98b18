#!/usr/bin/env node
'use strict'
// Session-check benchmark: what a Nest guard pays per request to know who is
// calling, on one throwaway redis-server started by the test harness (never the
// server on 6379).
//
//   node benchmark/sessions.js                  every case, 3 s each, a markdown table on stdout
//   node benchmark/sessions.js --quick          1 s per case
//   node benchmark/sessions.js --duration=5 --json
//   node benchmark/sessions.js --only=verify    cases whose name contains "verify"
//   node benchmark/sessions.js --baseline-engine  also the own engine (npm run bench:baseline)
//
// From benchmark/run.js: add 'sessions' to its EXTRA_SUITES (it then calls
// suite({ url, server, durationMs, warmupMs, log }) and appends the section), or
//   const sessions = require('./sessions')
//   const rows = await sessions.runAll({ url, duration: 3, warmup: 0.5, cpuUs: () => sessions.redisCpuUs(srv), log })
//   markdown += sessions.table(rows)
// It writes keys under better-auth: and sess: on the server it is given: use a throwaway one.
//
// Contenders (closed loop: C callers, each awaiting one call at a time; C = 1 and 100):
//   getSession (ioredis)  Better Auth 1.7's auth.api.getSession({ headers }) with
//                         @better-auth/redis-storage on ioredis: the baseline
//   getSession (atlas)    the same, with this package's redisSecondaryStorage
//   verify (atlas)        sessionVerifier(client, { secret }).verify(cookieHeader)
//   sessions.check        client.sessions.check(token), and with { slideSeconds }
// The atlas contenders come once per engine (engines.js), each with its own client.
// The Better Auth cases sign in 20 sessions (all stored by @better-auth/redis-storage,
// which both adapters and the verifier read alike); callers take turns over them.
const { runPhase, redisCpuUs, suiteOf, runStandalone } = require('./feature-common')
const { load, resolveEngines } = require('./engines')

const SECRET = 'benchmark-secret-0123456789abcdefghijklmnopqrstuvwxyz'
const BA_SESSIONS = 20
const OWN_SESSIONS = 1000





// ---- setup ------------------------------------------------------------------------------

async function ioredis(url) {
  const { Redis } = require('ioredis')
  const c = new Redis(url, { lazyConnect: true, retryStrategy: () => null })
  c.on('error', () => {})
  await c.connect()
  return c
}

async function makeAuth(secondaryStorage) {
  const { betterAuth } = await import('better-auth')
  const { memoryAdapter } = await import('better-auth/adapters/memory')
  return betterAuth({
    baseURL: 'http://localhost:3000',
    secret: SECRET,
    database: memoryAdapter({ user: [], session: [], account: [], verification: [] }),
    secondaryStorage,
    emailAndPassword: { enabled: true },
    logger: { disabled: true },
    // Defaults otherwise: no cookie cache (getSession reads storage each time) and
    // refresh only for sessions older than a day (these are seconds old).
  })
}

/**
 * One engine's contenders (engines.js): its client, a Better Auth instance on its
 * redisSecondaryStorage, its verifier, and sessions of its own store. Checks that
 * it answers as Better Auth on ioredis does (`expected`) before anything is measured.
 */
async function engineCases(engine, url, cookies, headers, expected) {
  const { RedisClient } = load(engine)
  const { redisSecondaryStorage, sessionVerifier } = load(engine, 'better-auth')
  const client = await RedisClient.connect(url)
  try {
    const auth = await makeAuth(redisSecondaryStorage(client))
    const verifier = sessionVerifier(client, { secret: SECRET })
    for (let i = 0; i < cookies.length; i++) {
      const b = JSON.stringify(await auth.api.getSession({ headers: headers[i] }))
      const v = JSON.stringify(await verifier.verify(cookies[i]))
      if (b !== expected[i] || v !== expected[i]) throw new Error(`${engine.name} disagrees with Better Auth on ioredis on session ${i}:\n${expected[i]}\n${b}\n${v}`)
    }
    const tokens = []
    for (let i = 0; i < OWN_SESSIONS; i += 100) {
      const batch = await Promise.all(
        Array.from({ length: 100 }, (_, j) => client.sessions.create(`user-${(i + j) % 100}`, { role: 'accountant', tenant: 7 }, 86_400)),
      )
      for (const s of batch) tokens.push(s.token)
    }
    if ((await client.sessions.check(tokens[0])) === null) throw new Error(`${engine.name} sessions.check found no session`)
    const stats = () => client.stats()
    const token = (c, n) => tokens[(c * 7919 + n) % tokens.length]
    return {
      cases: {
        [`Better Auth getSession (${engine.name} redisSecondaryStorage)`]: { op: (c, n) => auth.api.getSession({ headers: headers[(c + n) % headers.length] }), stats },
        [`${engine.name} sessionVerifier.verify`]: { op: (c, n) => verifier.verify(cookies[(c + n) % cookies.length]), stats },
        [`${engine.name} sessions.check`]: { op: (c, n) => client.sessions.check(token(c, n)), stats },
        [`${engine.name} sessions.check { slideSeconds }`]: { op: (c, n) => client.sessions.check(token(c, n), { slideSeconds: 3600 }), stats },
      },
      close: async () => {
        await client.sessions.settled?.()
        await client.close()
      },
    }
  } catch (e) {
    await client.close().catch(() => {})
    throw e
  }
}

/**
 * Everything the cases share: Better Auth on ioredis (the baseline), signed-in
 * cookies, and each engine's cases. `cases` maps a name to { op, stats? } or,
 * for an engine whose setup failed, { error }.
 */
async function setup(url, engines) {
  const { redisStorage } = await import('@better-auth/redis-storage')
  const io = await ioredis(url)
  const authIo = await makeAuth(redisStorage({ client: io }))

  const cookies = []
  const email = 'bench@example.com'
  await authIo.api.signUpEmail({ body: { email, password: 'correct horse battery', name: 'Bench' } })
  for (let i = 0; i < BA_SESSIONS; i++) {
    const r = await authIo.api.signInEmail({ body: { email, password: 'correct horse battery' }, returnHeaders: true })
    const c = r.headers.getSetCookie().find((h) => h.startsWith('better-auth.session_token='))
    cookies.push(c.split(';')[0])
  }
  const headers = cookies.map((cookie) => new Headers({ cookie }))
  const expected = []
  for (const h of headers) expected.push(JSON.stringify(await authIo.api.getSession({ headers: h })))
  if (expected.includes('null')) throw new Error('Better Auth on ioredis found no session for a cookie it issued')

  const cases = {
    'Better Auth getSession (@better-auth/redis-storage on ioredis)': { op: (c, n) => authIo.api.getSession({ headers: headers[(c + n) % headers.length] }) },
  }
  const closers = [async () => io.quit().catch(() => io.disconnect())]
  for (const engine of engines) {
    try {
      const e = await engineCases(engine, url, cookies, headers, expected)
      Object.assign(cases, e.cases)
      closers.unshift(e.close)
    } catch (err) {
      cases[`${engine.name} (setup)`] = { error: String(err && err.message) }
    }
  }
  return {
    cases,
    close: async () => {
      for (const close of closers) await close()
    },
  }
}

// ---- run --------------------------------------------------------------------------------

/**
 * Runs every case against the server at `url` and resolves one row per case.
 * `cpuUs()` reads the server's CPU time (µs) for the per-call CPU columns.
 */
async function runAll({ url, duration = 3, warmup = 0.5, cpuUs, only, engines = resolveEngines(), log = () => {} }) {
  const env = await setup(url, engines)
  const rows = []
  try {
    for (const callers of [1, 100]) {
      for (const [name, { op, stats, error }] of Object.entries(env.cases)) {
        if (only !== undefined && !name.includes(only)) continue
        try {
          if (error) throw new Error(error)
          await runPhase(op, callers, warmup * 1000)
          const before = stats?.()
          const cpu0 = process.cpuUsage()
          const redis0 = await cpuUs()
          const r = await runPhase(op, callers, duration * 1000)
          const cpu1 = process.cpuUsage(cpu0)
          const redis1 = await cpuUs()
          const row = {
            name,
            callers,
            ...r,
            nodeCpuUs: (cpu1.user + cpu1.system) / r.ops,
            redisCpuUs: (redis1 - redis0) / r.ops,
          }
          if (before) {
            const after = stats()
            row.commandsPerCall = (after.commands - before.commands) / r.ops
          }
          rows.push(row)
          log(`C=${String(callers).padEnd(3)} ${name.padEnd(66)} ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(9)} ops/s  p50 ${r.p50Us.toFixed(0)} µs  p99 ${r.p99Us.toFixed(0)} µs  cpu/call node ${row.nodeCpuUs.toFixed(1)} µs redis ${row.redisCpuUs.toFixed(1)} µs${row.commandsPerCall !== undefined ? `  commands/call ${row.commandsPerCall.toFixed(2)}` : ''}`)
        } catch (e) {
          rows.push({ name, callers, error: String(e && e.message) })
          log(`C=${callers} ${name}: failed: ${e && e.message}`)
        }
      }
    }
  } finally {
    await env.close()
  }
  return rows
}

function table(rows) {
  const out = []
  for (const callers of [...new Set(rows.map((r) => r.callers))]) {
    const gr = rows.filter((r) => r.callers === callers)
    const base = gr.find((r) => r.name.includes('ioredis') && !r.error)
    out.push(`\n### ${callers} caller${callers === 1 ? '' : 's'}\n`)
    out.push('| contender | ops/s | p50 µs | p99 µs | node CPU µs/call | redis CPU µs/call | commands/call | vs getSession (ioredis) |')
    out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
    for (const r of gr) {
      if (r.error) { out.push(`| ${r.name} | failed: ${r.error} | | | | | | |`); continue }
      const ratio = base && base.opsPerSec ? `${(r.opsPerSec / base.opsPerSec).toFixed(2)}×` : '—'
      const cmds = r.commandsPerCall === undefined ? '—' : r.commandsPerCall.toFixed(2)
      out.push(`| ${r.name} | ${Math.round(r.opsPerSec).toLocaleString('en-US')} | ${r.p50Us.toFixed(0)} | ${r.p99Us.toFixed(0)} | ${r.nodeCpuUs.toFixed(1)} | ${r.redisCpuUs.toFixed(1)} | ${cmds} | ${ratio} |`)
    }
  }
  return out.join('\n')
}

const suite = suiteOf('Session checks: sessionVerifier.verify and sessions.check against Better Auth getSession', runAll, table)

module.exports = { runAll, table, suite }

runStandalone(module, __filename, runAll, table)
