// docs/fewest-round-trips.md, checked: with clientCache covering Better Auth's
// prefix and the cache's Keyv namespace, and RedisThrottlerGuard, a request of
// the example API's path (two named throttlers, a session check, a cached read)
// sends Redis one command; the session and cache reads are served from process
// memory — the server is not asked again (INFO commandstats) — and a change made
// through another instance still reaches them.
import 'reflect-metadata'
import { CACHE_MANAGER, CacheModule } from '@nestjs/cache-manager'
import { Controller, Get, Inject, Injectable, UseGuards, type CanActivate, type ExecutionContext, type INestApplication } from '@nestjs/common'
import { APP_GUARD } from '@nestjs/core'
import { Test } from '@nestjs/testing'
import { ThrottlerModule } from '@nestjs/throttler'
import { betterAuth } from 'better-auth'
import { memoryAdapter } from 'better-auth/adapters/memory'
import type { Cache } from 'cache-manager'
import { Keyv } from 'keyv'
import request from 'supertest'
import { RedisClient } from '../lib'
import { KeyvRedisStore } from '../lib/caching/keyv'
import { RedisModule, RedisService } from '../lib/nest'
import { RedisThrottlerGuard, RedisThrottlerStorage } from '../lib/ratelimit/throttler'
import { redisSecondaryStorage, sessionVerifier, type SessionVerifier } from '../lib/sessions/better-auth'
import { startRedis, stopAll, RedisServer } from './harness'
import { closeAll, connect, eventually } from './helpers'

const SECRET = 'a-test-secret-of-at-least-32-characters-0123456789'

let srv: RedisServer
/** Another API instance, without client-side caching: where sessions are made and data changes. */
let other: RedisClient

beforeAll(async () => {
  srv = await startRedis()
  other = await connect(srv.url)
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

/** Calls of `command` the server has run so far (INFO commandstats; scripts' own calls included). */
async function served(command: string): Promise<number> {
  const info = await srv.cli('INFO', 'commandstats')
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0)
}

function makeAuth(client: RedisClient) {
  return betterAuth({
    baseURL: 'http://localhost:3000',
    secret: SECRET,
    database: memoryAdapter({ user: [], session: [], account: [], verification: [] }),
    secondaryStorage: redisSecondaryStorage(client),
    emailAndPassword: { enabled: true },
    logger: { disabled: true },
  })
}

/** Signs a user up and in through `auth`: its session cookie (`name=value`). */
async function signIn(auth: ReturnType<typeof makeAuth>, email: string): Promise<string> {
  await auth.api.signUpEmail({ body: { email, password: 'correct horse battery', name: 'Ada' } })
  const r = await auth.api.signInEmail({ body: { email, password: 'correct horse battery' }, returnHeaders: true })
  return r.headers.getSetCookie().find((h) => h.startsWith('better-auth.session_token='))!.split(';')[0]
}

test("sessionVerifier on a clientCache covering Better Auth's prefix: a session's second check does not reach the server; a sign-out elsewhere does", async () => {
  const cached = await connect({ url: srv.url, clientCache: { prefixes: ['better-auth:'] } })
  const elsewhere = makeAuth(other)
  const cookie = await signIn(elsewhere, 'verify@example.com')
  const verifier = sessionVerifier(cached, { secret: SECRET })

  const first = await verifier.verify(cookie)
  expect(first?.user.email).toBe('verify@example.com')
  const [commands, gets] = [cached.stats().commands, await served('get')]
  for (let i = 0; i < 5; i++) expect(await verifier.verify(cookie)).toEqual(first)
  expect(cached.stats().commands).toBe(commands)
  expect(await served('get')).toBe(gets) // the server was not asked
  expect(cached.stats().clientCache!.hits).toBeGreaterThanOrEqual(5)

  // signed out through the other instance: Better Auth deletes the record, the server tells this one
  await elsewhere.api.signOut({ headers: new Headers({ cookie }) })
  await eventually(async () => expect(await verifier.verify(cookie)).toBeNull(), 2000, 10)
})

test("Better Auth's getSession through redisSecondaryStorage on that client: also from memory", async () => {
  const cached = await connect({ url: srv.url, clientCache: { prefixes: ['better-auth:'] } })
  const cookie = await signIn(makeAuth(other), 'adapter@example.com')
  const auth = makeAuth(cached)
  const headers = new Headers({ cookie })
  const first = await auth.api.getSession({ headers })
  expect(first?.user.email).toBe('adapter@example.com')
  // As below: a fill that an earlier write's invalidation overtook is not kept.
  await eventually(async () => {
    const before = cached.stats().commands
    await auth.api.getSession({ headers })
    expect(cached.stats().commands).toBe(before)
  }, 2000, 10)
  const [commands, gets] = [cached.stats().commands, await served('get')]
  for (let i = 0; i < 3; i++) expect((await auth.api.getSession({ headers }))?.session.id).toBe(first!.session.id)
  expect(cached.stats().commands).toBe(commands)
  expect(await served('get')).toBe(gets)
})

test("the Keyv store's namespace on clientCache: cache-manager reads from memory; a delete on another instance reaches it", async () => {
  const cached = await connect({ url: srv.url, clientCache: { prefixes: ['api-cache:'] } })
  const keyv = new Keyv({ store: new KeyvRedisStore(cached), namespace: 'api-cache' })
  const otherKeyv = new Keyv({ store: new KeyvRedisStore(other), namespace: 'api-cache' })
  await otherKeyv.set('chart-of-accounts', [{ code: '1000', name: 'Cash' }])
  expect(await keyv.get('chart-of-accounts')).toEqual([{ code: '1000', name: 'Cash' }])
  // The invalidation of otherKeyv's SET may reach this connection after the first GET
  // went out; that GET's value is then not kept (it might be older), the next one's is.
  await eventually(async () => {
    const before = cached.stats().commands
    expect(await keyv.get('chart-of-accounts')).toEqual([{ code: '1000', name: 'Cash' }])
    expect(cached.stats().commands).toBe(before)
  }, 2000, 10)
  const [commands, gets] = [cached.stats().commands, await served('get')]
  for (let i = 0; i < 3; i++) expect(await keyv.get('chart-of-accounts')).toEqual([{ code: '1000', name: 'Cash' }])
  expect(cached.stats().commands).toBe(commands)
  expect(await served('get')).toBe(gets)
  await otherKeyv.delete('chart-of-accounts')
  await eventually(async () => expect(await keyv.get('chart-of-accounts')).toBeUndefined(), 2000, 10)
})

// ---- the whole request path, set up as docs/fewest-round-trips.md shows it -------------------------

const SESSION_VERIFIER = Symbol('SESSION_VERIFIER')

@Injectable()
class SessionGuard implements CanActivate {
  constructor(@Inject(SESSION_VERIFIER) private readonly verifier: SessionVerifier) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest()
    return (await this.verifier.verify(req.headers.cookie)) !== null
  }
}

@Controller()
class LedgerController {
  constructor(@Inject(CACHE_MANAGER) private readonly cache: Cache) {}

  @Get('accounts')
  @UseGuards(SessionGuard)
  async accounts() {
    return (await this.cache.get('chart-of-accounts')) ?? []
  }
}

test('a request through two named throttlers, the session check and a cached read sends Redis one command', async () => {
  const moduleRef = await Test.createTestingModule({
    imports: [
      RedisModule.forRoot({ url: srv.url, isGlobal: true, clientCache: { prefixes: ['better-auth:', 'api-cache:'] } }),
      ThrottlerModule.forRootAsync({
        inject: [RedisService],
        useFactory: (redis: RedisService) => ({
          throttlers: [
            { name: 'short', ttl: 1_000, limit: 20 },
            { name: 'long', ttl: 60_000, limit: 300 },
          ],
          storage: new RedisThrottlerStorage(redis),
        }),
      }),
      CacheModule.registerAsync({
        isGlobal: true,
        inject: [RedisService],
        useFactory: (redis: RedisService) => ({ stores: [new Keyv({ store: new KeyvRedisStore(redis.client), namespace: 'api-cache' })] }),
      }),
    ],
    controllers: [LedgerController],
    providers: [
      { provide: APP_GUARD, useClass: RedisThrottlerGuard },
      { provide: SESSION_VERIFIER, inject: [RedisService], useFactory: (redis: RedisService) => sessionVerifier(redis, { secret: SECRET }) },
      SessionGuard,
    ],
  }).compile()
  const app: INestApplication = moduleRef.createNestApplication({ logger: false })
  await app.init()
  try {
    const client = app.get(RedisService).client
    const cookie = await signIn(makeAuth(other), 'path@example.com')
    await new Keyv({ store: new KeyvRedisStore(other), namespace: 'api-cache' }).set('chart-of-accounts', [{ code: '1000' }])
    const server = app.getHttpServer()
    await request(server).get('/accounts').expect(403) // no session
    await request(server).get('/accounts').set('Cookie', cookie).expect(200) // first reads: session, revocation mark, cache
    const [commands, gets, scripts] = [client.stats().commands, await served('get'), await served('evalsha')]
    for (let i = 0; i < 10; i++) {
      const res = await request(server).get('/accounts').set('Cookie', cookie).expect(200)
      expect(res.body).toEqual([{ code: '1000' }])
      expect(res.headers['x-ratelimit-remaining-short']).toBe(String(20 - 3 - i))
    }
    expect(client.stats().commands - commands).toBe(10) // one per request: both throttlers' script call
    expect((await served('evalsha')) - scripts).toBe(10)
    expect(await served('get')).toBe(gets)
  } finally {
    await app.close()
  }
})
