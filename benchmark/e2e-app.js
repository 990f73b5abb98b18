'use strict'
// One Nest app (Express) for benchmark/e2e.js, run in a child process of its
// own: the example API's request path, GET /accounts, on one of the stacks the
// suite compares (VARIANTS in e2e.js):
//
//   1. the app's throttler guard with two named throttlers (short, long), counted in Redis;
//   2. a Better Auth session check (SessionGuard): Better Auth's getSession, or
//      this package's sessionVerifier;
//   3. the chart of accounts read through @nestjs/cache-manager (Keyv), a cache hit.
//
// Started with `fork(e2e-app.js)`, sent { variant, redisUrl, sessions }; it answers
// { ready: true, port, cookies } once it listens on 127.0.0.1 (cookies: signed-in
// sessions of its own Better Auth instance), { cpuUs } to { cpu: true }, and exits
// after { close: true }.
require('reflect-metadata')
const { Controller, Get, Inject, Injectable, Module, UnauthorizedException, UseGuards } = require('@nestjs/common')
const { APP_GUARD, NestFactory } = require('@nestjs/core')
const { ThrottlerGuard, ThrottlerModule } = require('@nestjs/throttler')
const { CacheModule, CACHE_MANAGER } = require('@nestjs/cache-manager')
const { Keyv } = require('keyv')
const { load, CURRENT } = require('./engines')

const SECRET = 'benchmark-secret-0123456789abcdefghijklmnopqrstuvwxyz'
/** Limits no run reaches: every request is counted, none refused. */
const THROTTLERS = [
  { name: 'short', ttl: 1_000, limit: 1_000_000 },
  { name: 'long', ttl: 60_000, limit: 100_000_000 },
]
const CACHE_NAMESPACE = 'bench-cache'
const CACHE_KEY = 'chart-of-accounts'
const CACHE_TTL_MS = 300_000
/** A chart of accounts of 40 entries (about 2.5 KB of JSON), as benchmark/cache.js has it. */
const ACCOUNTS = Array.from({ length: 40 }, (_, i) => ({
  code: String(1000 + i * 10),
  name: `Account ${i} — ${['Cash', 'Receivables', 'Inventory', 'Payables', 'Revenue'][i % 5]}`,
  type: ['asset', 'liability', 'equity', 'income', 'expense'][i % 5],
  active: i % 7 !== 0,
}))

const AUTH = Symbol('AUTH')
const SESSION_CHECK = Symbol('SESSION_CHECK')

/** The request's session: `check(cookieHeader)` → session or null, made by the variant. */
class SessionGuard {
  constructor(check) {
    this.check = check
  }

  async canActivate(context) {
    const req = context.switchToHttp().getRequest()
    const session = await this.check.verify(req.headers.cookie)
    if (!session) throw new UnauthorizedException('sign in first')
    req.session = session
    return true
  }
}
Injectable()(SessionGuard)
Inject(SESSION_CHECK)(SessionGuard, undefined, 0)

class LedgerController {
  constructor(cache) {
    this.cache = cache
  }

  async accounts() {
    let data = await this.cache.get(CACHE_KEY)
    if (data === undefined || data === null) {
      data = ACCOUNTS
      await this.cache.set(CACHE_KEY, data, CACHE_TTL_MS)
    }
    return data
  }
}
Controller()(LedgerController)
Inject(CACHE_MANAGER)(LedgerController, undefined, 0)
{
  const desc = Object.getOwnPropertyDescriptor(LedgerController.prototype, 'accounts')
  Get('accounts')(LedgerController.prototype, 'accounts', desc)
  UseGuards(SessionGuard)(LedgerController.prototype, 'accounts', desc)
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
  })
}

/** Better Auth's own check: getSession reads the session through its secondaryStorage. */
const getSessionCheck = (auth) => ({ verify: (cookie) => auth.api.getSession({ headers: new Headers({ cookie: cookie ?? '' }) }) })

/**
 * The providers and module imports of a variant: { imports, guard, close }.
 * `v`: { redis: 'none' | 'ioredis' | 'atlas', throttler: 'nest-lab' | 'storage' | 'guard',
 * cache: 'keyv-redis' | 'atlas', session: 'getSession' | 'verifier', clientCache: boolean }.
 */
async function stack(v, redisUrl) {
  if (v.redis === 'none') {
    // No Redis at all: what the framework alone costs, a ceiling for the others
    // (not a stack to deploy): the throttler guard on a storage that counts
    // nothing (@nestjs/throttler's in-memory storage sets a timer per hit, which
    // at these rates costs more than a Redis round trip), sessions found in a map
    // of the cookies this process signed in, Keyv's in-memory store.
    const auth = await makeAuth(undefined)
    const signedIn = new Map()
    const storage = {
      increment: async (_key, ttl) => ({ totalHits: 1, timeToExpire: Math.ceil(ttl / 1000), isBlocked: false, timeToBlockExpire: 0 }),
    }
    return {
      auth,
      storage,
      guard: ThrottlerGuard,
      keyvStore: new Map(),
      check: { verify: async (cookie) => signedIn.get(cookie) ?? null },
      signedIn,
      close: async () => {},
    }
  }
  if (v.redis === 'ioredis') {
    // The seed: one ioredis connection (its RedisService) for the throttler
    // storage and Better Auth; @keyv/redis makes its own (node-redis).
    const { Redis } = require('ioredis')
    const io = new Redis(redisUrl, { lazyConnect: true })
    await io.connect()
    const { ThrottlerStorageRedisService } = require('@nest-lab/throttler-storage-redis')
    const { redisStorage } = await import('@better-auth/redis-storage')
    const KeyvRedis = (await import('@keyv/redis')).default
    const auth = await makeAuth(redisStorage({ client: io }))
    const keyvStore = new KeyvRedis(redisUrl)
    await keyvStore.getClient() // connected before the first request
    return {
      auth,
      storage: new ThrottlerStorageRedisService(io),
      guard: ThrottlerGuard,
      keyvStore,
      check: getSessionCheck(auth),
      close: async () => {
        await keyvStore.disconnect()
        await io.quit()
      },
    }
  }
  const engine = CURRENT
  const { RedisClient } = load(engine)
  const { RedisThrottlerStorage, RedisThrottlerGuard } = load(engine, 'throttler')
  const { KeyvRedisStore } = load(engine, 'keyv')
  const { redisSecondaryStorage, sessionVerifier } = load(engine, 'better-auth')
  // fewest round trips: the session records and the cache's namespace are read
  // from process memory, kept current by the server (client tracking)
  const options = v.clientCache ? { url: redisUrl, clientCache: { prefixes: ['better-auth:', `${CACHE_NAMESPACE}:`] } } : redisUrl
  const client = await RedisClient.connect(options)
  const auth = await makeAuth(redisSecondaryStorage(client))
  return {
    auth,
    client,
    storage: new RedisThrottlerStorage(client),
    guard: v.throttler === 'guard' ? RedisThrottlerGuard : ThrottlerGuard,
    keyvStore: new KeyvRedisStore(client),
    check: v.session === 'verifier' ? sessionVerifier(client, { secret: SECRET }) : getSessionCheck(auth),
    close: () => client.close(),
  }
}

async function start({ variant, redisUrl, sessions = 8 }) {
  const s = await stack(variant, redisUrl)
  class AppModule {}
  Module({
    imports: [
      ThrottlerModule.forRoot({ throttlers: THROTTLERS, storage: s.storage }),
      CacheModule.register({ isGlobal: true, stores: [new Keyv({ store: s.keyvStore, namespace: CACHE_NAMESPACE })], ttl: CACHE_TTL_MS }),
    ],
    controllers: [LedgerController],
    providers: [
      { provide: APP_GUARD, useClass: s.guard },
      { provide: AUTH, useValue: s.auth },
      { provide: SESSION_CHECK, useValue: s.check },
      SessionGuard,
    ],
  })(AppModule)
  const app = await NestFactory.create(AppModule, { logger: false })
  await app.listen(0, '127.0.0.1')
  const port = app.getHttpServer().address().port

  // Signed-in sessions of this app's Better Auth (its users live in this process).
  const cookies = []
  const email = `bench-${process.pid}@example.com`
  await s.auth.api.signUpEmail({ body: { email, password: 'correct horse battery', name: 'Bench' } })
  for (let i = 0; i < sessions; i++) {
    const r = await s.auth.api.signInEmail({ body: { email, password: 'correct horse battery' }, returnHeaders: true })
    const c = r.headers.getSetCookie().find((h) => h.startsWith('better-auth.session_token='))
    cookies.push(c.split(';')[0])
    s.signedIn?.set(c.split(';')[0], await s.auth.api.getSession({ headers: new Headers({ cookie: c.split(';')[0] }) }))
  }
  // Every session checks, and the chart of accounts is cached, before anything is measured.
  for (const cookie of cookies) {
    const res = await fetch(`http://127.0.0.1:${port}/accounts`, { headers: { cookie } })
    if (res.status !== 200) throw new Error(`GET /accounts answered ${res.status}: ${await res.text()}`)
    const body = await res.json()
    if (body.length !== ACCOUNTS.length) throw new Error('GET /accounts: wrong body')
  }
  return {
    port,
    cookies,
    close: async () => {
      await app.close()
      await s.client?.sessions?.settled?.()
      await s.close()
    },
  }
}

module.exports = { start, THROTTLERS, CACHE_NAMESPACE, ACCOUNTS }

if (require.main === module && process.send) {
  let running
  process.on('message', async (m) => {
    try {
      if (m.start) {
        running = await start(m.start)
        process.send({ ready: true, port: running.port, cookies: running.cookies })
      } else if (m.cpu) {
        // this process's CPU time so far (µs): the app's cost per request, between two readings
        const u = process.cpuUsage()
        process.send({ cpuUs: u.user + u.system })
      } else if (m.close) {
        if (running) await running.close()
        process.send({ closed: true })
        process.disconnect()
      }
    } catch (e) {
      process.send({ error: String((e && e.stack) || e) })
      process.exitCode = 1
      process.disconnect()
    }
  })
  process.on('disconnect', () => setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref())
}
