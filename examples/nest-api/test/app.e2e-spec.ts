// Two instances of the API (two Nest apps in this process, each on its own
// port) on ONE throwaway redis-server with a password, configured the way
// apps/api is: REDIS_HOST / REDIS_PORT / REDIS_PASSWORD. Whatever one instance
// writes — a throttle hit, a session, a cache invalidation, a queued job — the
// other one sees.
import 'reflect-metadata'
import { createHmac } from 'node:crypto'
import type { NestExpressApplication } from '@nestjs/platform-express'
import { RedisService } from '@atlas-erp/redis/nest'
import request from 'supertest'

import { startRedis, stopAll, type RedisServer } from '../../../__test__/harness'
import { createApp } from '../src/app'
import { appOptionsFromEnv } from '../src/config'
import { LedgerService, type Account, type PermissionMatrix } from '../src/ledger/ledger.service'
import { LocalCache } from '../src/periods/local-cache'
import { PeriodsService, type Periods } from '../src/periods/periods.service'

const REDIS_PASSWORD = 'e2e-redis-password'
const AUTH_SECRET = 'e2e-better-auth-secret-of-at-least-32-characters'
/** The public URL both instances sit behind (Better Auth's baseURL; browsers send it as Origin). */
const ORIGIN = 'http://localhost:3000'

let redis: RedisServer
let a: NestExpressApplication
let b: NestExpressApplication
/** supertest agents for instance a and b. */
let A: ReturnType<typeof request>
let B: ReturnType<typeof request>

async function start(instanceId: string): Promise<NestExpressApplication> {
  const app = await createApp(appOptionsFromEnv({ instanceId, authSecret: AUTH_SECRET, authBaseUrl: ORIGIN }), false)
  await app.listen(0, '127.0.0.1')
  return app
}

function urlOf(app: NestExpressApplication): string {
  const address = app.getHttpServer().address()
  if (address === null || typeof address === 'string') throw new Error('not listening on a TCP port')
  return `http://127.0.0.1:${address.port}`
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Retries `check` until it stops throwing (or rethrows its last error after `timeoutMs`). */
async function eventually<T>(check: () => Promise<T>, timeoutMs = 10_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await check()
    } catch (e) {
      if (Date.now() > deadline) throw e
      await sleep(everyMs)
    }
  }
}

beforeAll(async () => {
  redis = await startRedis({ password: REDIS_PASSWORD })
  delete process.env.REDIS_URL
  Object.assign(process.env, {
    NODE_ENV: 'test',
    REDIS_HOST: redis.host,
    REDIS_PORT: String(redis.port),
    REDIS_PASSWORD,
  })
  ;[a, b] = await Promise.all([start('a'), start('b')])
  A = request(urlOf(a))
  B = request(urlOf(b))
}, 60_000)

afterAll(async () => {
  // Each app closes its HTTP server, the BullMQ worker, queue and their
  // BullMQRedisClient, then its RedisClient (RedisModule, after the replies in flight).
  await Promise.all([a?.close(), b?.close()])
  await stopAll()
})

/** Signs a new user up on `api`; the session cookie (`name=value`) and the user id. */
async function signUp(api: ReturnType<typeof request>, email: string): Promise<{ cookie: string; userId: string }> {
  const res = await api
    .post('/api/auth/sign-up/email')
    .set('Origin', ORIGIN)
    .send({ email, password: 'correct horse battery staple', name: 'Ada Lovelace' })
    .expect(200)
  return { cookie: sessionCookie(res), userId: res.body.user.id }
}

function sessionCookie(res: request.Response): string {
  const setCookie = ([] as string[]).concat(res.headers['set-cookie'] ?? [])
  const c = setCookie.find((h) => h.startsWith('better-auth.session_token='))
  if (!c) throw new Error(`no session cookie in ${JSON.stringify(setCookie)}`)
  return c.split(';')[0]
}

let emailSeq = 0
const newEmail = () => `user${++emailSeq}.${Date.now()}@example.com`

test('two instances answer on one Redis', async () => {
  const [ra, rb] = await Promise.all([A.get('/health'), B.get('/health')])
  expect(ra.headers['x-instance']).toBe('a')
  expect(rb.headers['x-instance']).toBe('b')
  expect(urlOf(a)).not.toBe(urlOf(b))
})

describe('rate limiting (RedisThrottlerStorage, throttlers "short" and "long")', () => {
  test('one limit shared by both instances: 429 with Retry-After once it is spent, whichever instance is hit', async () => {
    // GET /reports/trial-balance allows 3 per 10 s (short) and 10 per minute (long), per client.
    const allowed = [A, B, A]
    for (const [i, api] of allowed.entries()) {
      const res = await api.get('/reports/trial-balance').expect(200)
      expect(res.headers['x-ratelimit-remaining-short']).toBe(String(2 - i)) // counted across instances
      expect(res.headers['x-ratelimit-remaining-long']).toBe(String(9 - i))
      expect(res.headers['retry-after']).toBeUndefined()
    }
    for (const api of [B, A]) {
      const res = await api.get('/reports/trial-balance').expect(429)
      const retryAfter = Number(res.headers['retry-after'])
      expect(retryAfter).toBeGreaterThanOrEqual(1)
      expect(retryAfter).toBeLessThanOrEqual(10)
      expect(res.headers['retry-after-short']).toBe(res.headers['retry-after'])
    }
    // The limit is per route: another route of the same instances still answers.
    await A.get('/accounts').expect(200)
  })
})

describe('sessions (Better Auth with redisSecondaryStorage; SessionGuard on sessionVerifier)', () => {
  test('sign up / sign in → protected route 200 on both instances → sign out → 401', async () => {
    const email = newEmail()
    await A.get('/me').expect(401)
    const first = await signUp(A, email)
    const me = await A.get('/me').set('Cookie', first.cookie).expect(200)
    expect(me.body).toMatchObject({ email, userId: first.userId, name: 'Ada Lovelace' })
    // The session is in Redis: the other instance verifies the same cookie.
    await B.get('/me').set('Cookie', first.cookie).expect(200)

    // Users live in instance a's (in-memory) database: sign in there.
    const signIn = await A.post('/api/auth/sign-in/email')
      .set('Origin', ORIGIN)
      .send({ email, password: 'correct horse battery staple' })
      .expect(200)
    const second = sessionCookie(signIn)
    expect(second).not.toBe(first.cookie)
    expect((await B.get('/me').set('Cookie', second).expect(200)).body.userId).toBe(first.userId)

    // The same token signed with another secret is refused.
    const token = decodeURIComponent(second.slice(second.indexOf('=') + 1)).split('.')[0]
    const forged = createHmac('sha256', 'not-the-secret-of-this-api-0123456789').update(token).digest('base64')
    await B.get('/me').set('Cookie', `better-auth.session_token=${encodeURIComponent(`${token}.${forged}`)}`).expect(401)

    await A.post('/api/auth/sign-out').set('Origin', ORIGIN).set('Cookie', second).expect(200)
    await A.get('/me').set('Cookie', second).expect(401)
    await B.get('/me').set('Cookie', second).expect(401)
    // Signing out ended that session only.
    await B.get('/me').set('Cookie', first.cookie).expect(200)
  })
})

describe('cache (CacheModule → Keyv → KeyvRedisStore) over data kept in Redis', () => {
  let cookie: string
  beforeAll(async () => {
    cookie = (await signUp(A, newEmail())).cookie
  })
  const loads = () => ({ a: a.get(LedgerService).loads, b: b.get(LedgerService).loads })

  test('chart of accounts: a hit after the first read, on both instances; fresh data after an update through the other instance', async () => {
    await B.put('/accounts/1000').send({ name: 'Cash', type: 'asset' }).expect(401) // writes need a session
    // An update (through b) empties the cache: the next read is a miss, whoever serves it.
    await B.put('/accounts/1000').set('Cookie', cookie).send({ name: 'Cash at bank', type: 'asset' }).expect(200)
    const before = { a: loads().a.accounts, b: loads().b.accounts }

    const first = await A.get('/accounts').expect(200)
    expect(first.headers['x-cache']).toBe('miss')
    expect((first.body as Account[]).find((x) => x.code === '1000')?.name).toBe('Cash at bank')
    expect(loads().a.accounts).toBe(before.a + 1)

    const second = await A.get('/accounts').expect(200)
    expect(second.headers['x-cache']).toBe('hit')
    expect(second.body).toEqual(first.body)
    const onB = await B.get('/accounts').expect(200)
    expect(onB.headers['x-cache']).toBe('hit') // the cache is shared: b did not load either
    expect(onB.body).toEqual(first.body)
    expect(loads().a.accounts).toBe(before.a + 1)
    expect(loads().b.accounts).toBe(before.b)
    // The cached copy is in Redis, with the TTL.
    expect(Number(await redis.cli('PTTL', 'nest-api-cache:chart-of-accounts'))).toBeGreaterThan(0)

    // Update through b; a serves the new data at once.
    await B.put('/accounts/4000').set('Cookie', cookie).send({ name: 'Sales — domestic', type: 'revenue' }).expect(200)
    await B.put('/accounts/4100').set('Cookie', cookie).send({ name: 'Sales — export', type: 'revenue' }).expect(200)
    const fresh = await A.get('/accounts').expect(200)
    expect(fresh.headers['x-cache']).toBe('miss')
    const byCode = new Map((fresh.body as Account[]).map((x) => [x.code, x.name]))
    expect(byCode.get('4000')).toBe('Sales — domestic')
    expect(byCode.get('4100')).toBe('Sales — export')
    expect(loads().a.accounts).toBe(before.a + 2)
  })

  test('permission matrix: cached, and invalidated by an update through the other instance', async () => {
    await A.put('/permissions/auditor').set('Cookie', cookie).send({ permissions: ['accounts:read'] }).expect(200)
    const first = await B.get('/permissions').expect(200)
    expect(first.headers['x-cache']).toBe('miss')
    expect((first.body as PermissionMatrix).auditor).toEqual(['accounts:read'])
    const loadsB = loads().b.permissions
    expect((await B.get('/permissions').expect(200)).headers['x-cache']).toBe('hit')
    expect((await A.get('/permissions').expect(200)).headers['x-cache']).toBe('hit')
    expect(loads().b.permissions).toBe(loadsB)

    await A.put('/permissions/auditor')
      .set('Cookie', cookie)
      .send({ permissions: ['permissions:read', 'accounts:read', 'reports:read'] })
      .expect(200)
    const fresh = await B.get('/permissions').expect(200)
    expect(fresh.headers['x-cache']).toBe('miss')
    expect((fresh.body as PermissionMatrix).auditor).toEqual(['accounts:read', 'permissions:read', 'reports:read'])
    expect((fresh.body as PermissionMatrix).admin).toContain('permissions:write')
    await A.put('/permissions/auditor').set('Cookie', cookie).send({ permissions: ['not a permission'] }).expect(400)
  })
})

describe('in-process cache kept right across instances by pub/sub (LocalCache: accounting periods)', () => {
  let cookie: string
  beforeAll(async () => {
    cookie = (await signUp(B, newEmail())).cookie
  })
  const loads = () => ({ a: a.get(PeriodsService).loads, b: b.get(PeriodsService).loads })
  /** GET /periods on `api` until `period` shows `status` (an invalidation lands within milliseconds). */
  const until = (api: typeof A, period: string, status: string) =>
    eventually(async () => {
      const res = await api.get('/periods').expect(200)
      expect((res.body as Periods)[period]).toBe(status)
      return res
    }, 5_000, 20)

  test("each instance serves its own copy from memory; a change through one instance drops both copies", async () => {
    expect((await A.get('/periods').expect(200)).headers['x-cache']).toBe('miss')
    const hit = await A.get('/periods').expect(200)
    expect(hit.headers['x-cache']).toBe('hit')
    expect((hit.body as Periods)['2026-11']).toBe('open')
    // b has a memory of its own: its first read loads
    expect((await B.get('/periods').expect(200)).headers['x-cache']).toBe('miss')
    expect((await B.get('/periods').expect(200)).headers['x-cache']).toBe('hit')
    const before = loads()

    await A.put('/periods/2026-11').send({ status: 'closed' }).expect(401) // writes need a session
    const saved = await B.put('/periods/2026-11').set('Cookie', cookie).send({ status: 'closed' }).expect(200)
    expect(saved.body).toEqual({ period: '2026-11', status: 'closed', notified: 2 }) // both instances listen
    const fresh = await until(A, '2026-11', 'closed')
    expect(fresh.headers['x-cache']).toBe('miss')
    expect((await B.get('/periods').expect(200)).headers['x-cache']).toBe('miss')
    expect(loads()).toEqual({ a: before.a + 1, b: before.b + 1 })
    expect(a.get(LocalCache).stats.invalidations).toBeGreaterThanOrEqual(1)
    await B.put('/periods/2026-13').set('Cookie', cookie).send({ status: 'closed' }).expect(400)
  })

  test('a lost subscriber connection drops every copy (invalidations may have been missed meanwhile); changes reach both again after', async () => {
    for (const api of [A, B]) await api.get('/periods').expect(200)
    expect((await A.get('/periods').expect(200)).headers['x-cache']).toBe('hit')
    const resubscribed = [a, b].map((app) => new Promise<void>((r) => app.get(RedisService).client.once('resubscribed', () => r())))
    // only the subscribers' connections: the apps' other connections (and BullMQ's) are untouched
    await redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await Promise.all(resubscribed)
    expect((await A.get('/periods').expect(200)).headers['x-cache']).toBe('miss')
    expect((await B.get('/periods').expect(200)).headers['x-cache']).toBe('miss')
    expect(a.get(LocalCache).stats.cleared).toBeGreaterThanOrEqual(2) // 'reconnecting', then 'resubscribed'

    const saved = await A.put('/periods/2026-12').set('Cookie', cookie).send({ status: 'closed' }).expect(200)
    expect(saved.body.notified).toBe(2)
    await until(B, '2026-12', 'closed')
  })
})

describe('e-mail queue (BullMQ on BullMQRedisClient)', () => {
  test('a job queued through one instance is processed by a worker, its result readable on the other', async () => {
    const { cookie, userId } = await signUp(B, newEmail())
    const queued = await A.post('/emails')
      .set('Cookie', cookie)
      .send({ to: 'controller@example.com', subject: 'Month-end close', body: 'Ledgers lock on Friday.' })
      .expect(201)
    const id = queued.body.id as string
    expect(typeof id).toBe('string')
    const done = await eventually(async () => {
      const res = await B.get(`/emails/${id}`).set('Cookie', cookie).expect(200)
      expect(res.body.state).toBe('completed')
      return res.body
    })
    expect(done.result).toMatchObject({ to: 'controller@example.com', subject: 'Month-end close', messageId: `${id}@example.invalid` })
    expect(['a', 'b']).toContain(done.result.processedBy)

    // Signing up queued a welcome e-mail (a Better Auth database hook on instance b).
    const welcome = await eventually(async () => {
      const res = await A.get(`/emails/welcome-${userId}`).set('Cookie', cookie).expect(200)
      expect(res.body.state).toBe('completed')
      return res.body
    })
    expect(welcome.result.subject).toBe('Welcome to Atlas ERP')
    await A.get('/emails/no-such-job').set('Cookie', cookie).expect(404)
  })
})

describe('/health (terminus + RedisHealthIndicator)', () => {
  // Last: it stops Redis.
  test('up (200) on both instances; down (503) while Redis is stopped (SIGSTOP); up again once it runs', async () => {
    for (const api of [A, B]) {
      const res = await api.get('/health').expect(200)
      expect(res.body.status).toBe('ok')
      expect(res.body.info.redis.status).toBe('up')
      expect(typeof res.body.info.redis.latencyMs).toBe('number')
    }

    // SIGSTOP: the server holds its connections and answers nothing (a hung or
    // overloaded Redis); the indicator gives up after its 500 ms timeout.
    // (Not a kill + restart: right after a restart, closing a BullMQ 6 worker can
    // hang — see the README — and this suite must end on its own.)
    redis.pause()
    try {
      const [ra, rb] = await Promise.all([A.get('/health'), B.get('/health')])
      for (const res of [ra, rb]) {
        expect(res.status).toBe(503)
        expect(res.body.status).toBe('error')
        expect(res.body.error.redis.status).toBe('down')
        expect(res.body.error.redis.message).toMatch(/ERR_TIMEOUT/)
      }
    } finally {
      redis.resume()
    }
    for (const api of [A, B]) {
      const res = await eventually(() => api.get('/health').expect(200), 15_000, 200)
      expect(res.body.info.redis.status).toBe('up')
    }
    // Everything works again: a new session, and BullMQ's queue and workers —
    // the welcome e-mail of a new user gets sent.
    const { cookie, userId } = await signUp(A, newEmail())
    const welcome = await eventually(async () => {
      const res = await B.get(`/emails/welcome-${userId}`).set('Cookie', cookie).expect(200)
      expect(res.body.state).toBe('completed')
      return res.body
    }, 15_000, 200)
    expect(welcome.result.subject).toBe('Welcome to Atlas ERP')
  })
})
