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
// The Better Auth cases sign in 20 sessions (all stored by @better-auth/redis-storage,
// which both adapters and the verifier read alike); callers take turns over them.
const path = require('path')
const { runPhase, redisCpuUs, suiteOf, runStandalone } = require('./feature-common')

const ROOT = path.resolve(__dirname, '..')
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

/** Everything the cases share: clients, auth instances, signed-in cookies, own-store tokens. */
async function setup(url) {
  const { RedisClient } = require(path.join(ROOT, 'dist'))
  const { redisSecondaryStorage, sessionVerifier } = require(path.join(ROOT, 'dist', 'sessions', 'better-auth'))
  const { redisStorage } = await import('@better-auth/redis-storage')
  const io = await ioredis(url)
  const atlas = await RedisClient.connect(url)
  const authIo = await makeAuth(redisStorage({ client: io }))
  const authAtlas = await makeAuth(redisSecondaryStorage(atlas))

  const cookies = []
  const email = 'bench@example.com'
  await authIo.api.signUpEmail({ body: { email, password: 'correct horse battery', name: 'Bench' } })
  for (let i = 0; i < BA_SESSIONS; i++) {
    const r = await authIo.api.signInEmail({ body: { email, password: 'correct horse battery' }, returnHeaders: true })
    const c = r.headers.getSetCookie().find((h) => h.startsWith('better-auth.session_token='))
    cookies.push(c.split(';')[0])
  }
  const headers = cookies.map((cookie) => new Headers({ cookie }))
  const verifier = sessionVerifier(atlas, { secret: SECRET })

  // Same answers from all three before anything is measured.
  for (let i = 0; i < cookies.length; i++) {
    const a = JSON.stringify(await authIo.api.getSession({ headers: headers[i] }))
    const b = JSON.stringify(await authAtlas.api.getSession({ headers: headers[i] }))
    const v = JSON.stringify(await verifier.verify(cookies[i]))
    if (a === 'null' || a !== b || a !== v) throw new Error(`the contenders disagree on session ${i}:\n${a}\n${b}\n${v}`)
  }

  const tokens = []
  for (let i = 0; i < OWN_SESSIONS; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: 100 }, (_, j) => atlas.sessions.create(`user-${(i + j) % 100}`, { role: 'accountant', tenant: 7 }, 86_400)),
    )
    for (const s of batch) tokens.push(s.token)
  }
  if ((await atlas.sessions.check(tokens[0])) === null) throw new Error('sessions.check found no session')

  return {
    atlas,
    cases: {
      'Better Auth getSession (@better-auth/redis-storage on ioredis)': (c, n) => authIo.api.getSession({ headers: headers[(c + n) % headers.length] }),
      'Better Auth getSession (atlas redisSecondaryStorage)': (c, n) => authAtlas.api.getSession({ headers: headers[(c + n) % headers.length] }),
      'atlas sessionVerifier.verify': (c, n) => verifier.verify(cookies[(c + n) % cookies.length]),
      'atlas sessions.check': (c, n) => atlas.sessions.check(tokens[(c * 7919 + n) % tokens.length]),
      'atlas sessions.check { slideSeconds }': (c, n) => atlas.sessions.check(tokens[(c * 7919 + n) % tokens.length], { slideSeconds: 3600 }),
    },
    atlasCase: (name) => name.startsWith('atlas') || name.includes('(atlas'),
    close: async () => {
      await atlas.sessions.settled()
      await atlas.close()
      await io.quit().catch(() => io.disconnect())
    },
  }
}

// ---- run --------------------------------------------------------------------------------

/**
 * Runs every case against the server at `url` and resolves one row per case.
 * `cpuUs()` reads the server's CPU time (µs) for the per-call CPU columns.
 */
async function runAll({ url, duration = 3, warmup = 0.5, cpuUs, only, log = () => {} }) {
  const env = await setup(url)
  const rows = []
  try {
    for (const callers of [1, 100]) {
      for (const [name, op] of Object.entries(env.cases)) {
        if (only !== undefined && !name.includes(only)) continue
        try {
          await runPhase(op, callers, warmup * 1000)
          const before = env.atlasCase(name) ? env.atlas.stats() : undefined
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
            const after = env.atlas.stats()
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
