// KeyvRedisStore (`@atlas-erp/redis/keyv`) against a real redis-server: Keyv's own
// compliance suite (@keyv/test-suite), the store's key layout, namespaced clear,
// one-round-trip multi-key calls, and @nestjs/cache-manager's CacheInterceptor
// serving a route from Redis.
import 'reflect-metadata'
import { Controller, Get, type INestApplication, UseInterceptors } from '@nestjs/common'
import { CacheInterceptor, CacheModule, CacheTTL } from '@nestjs/cache-manager'
import { APP_INTERCEPTOR } from '@nestjs/core'
import { Test } from '@nestjs/testing'
import keyvTestSuite, { keyvIteratorTests } from '@keyv/test-suite'
import Keyv, { type KeyvStoreAdapter } from 'keyv'
import request from 'supertest'

import type { RedisClient } from '../lib'
import { KeyvRedisStore } from '../lib/caching/keyv'
import { RedisModule, getRedisToken } from '../lib/nest'
import { startRedis, stopAll, type RedisServer } from './harness'
import { closeAll, connect, eventually, rejection } from './helpers'

let srv: RedisServer
let plain: RedisClient
let prefixed: RedisClient

beforeAll(async () => {
  srv = await startRedis()
  plain = await connect(srv.url)
  // Its own database, so that the suite's fixed namespaces (keyv, keyv1, keyv2) never meet.
  prefixed = await connect({ url: `${srv.url}/1`, keyPrefix: 'atlas:' })
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

/**
 * @keyv/test-suite is written for vitest: `test.it(name, async (t) => { t.expect(…) })`,
 * plus `test.beforeEach` / `test.afterEach`. Jest would take a test function's
 * parameter for a `done` callback, so each test is wrapped in a zero-argument
 * function that hands it `{ expect }` (jest's `expect`, `expect.assertions` included).
 */
const vitestLike = {
  it: (name: string, fn: (t: { expect: typeof expect }) => unknown) => it(name, () => fn({ expect }) as Promise<void>),
  beforeEach,
  afterEach,
} as unknown as Parameters<typeof keyvTestSuite>[0]

/** Commands a call sends and socket writes (batches) it takes. */
async function cost<T>(c: RedisClient, fn: () => Promise<T>): Promise<{ value: T; commands: number; batches: number }> {
  const before = c.stats()
  const value = await fn()
  const after = c.stats()
  return { value, commands: after.commands - before.commands, batches: after.batches - before.batches }
}

/** `INFO commandstats` calls of one command on the test server. */
async function calls(command: string): Promise<number> {
  const info = await srv.cli('INFO', 'commandstats')
  const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info)
  return m ? Number(m[1]) : 0
}

for (const [label, client] of [
  ['a plain client', () => plain],
  ['a client with keyPrefix', () => prefixed],
] as const) {
  describe(`@keyv/test-suite over ${label}`, () => {
    // keyvTestSuite = keyvApiTests + keyvValueTests + keyvNamespaceTest.
    keyvTestSuite(vitestLike, Keyv, () => new KeyvRedisStore(client()))
    keyvIteratorTests(vitestLike, Keyv, () => new KeyvRedisStore(client()))
  })
}

describe('KeyvRedisStore', () => {
  test("is a KeyvStoreAdapter to the type checker too (ts-jest compiles this file with Keyv's types)", async () => {
    const adapter: KeyvStoreAdapter = new KeyvRedisStore(plain)
    const keyv = new Keyv({ store: adapter, namespace: 'typed' })
    expect(await keyv.setMany([{ key: 'a', value: 1 }, { key: 'b', value: 2 }])).toEqual([true, true])
    expect(await keyv.get<number>('a')).toBe(1)
  })

  test('keys are stored as Keyv namespaced them (never prefixed twice), with the TTL in ms', async () => {
    const keyv = new Keyv({ store: new KeyvRedisStore(plain), namespace: 'layout' })
    expect(await keyv.set('foo', { n: 1 }, 30_000)).toBe(true)
    expect(await srv.cli('KEYS', 'layout*')).toBe('layout:foo')
    const raw = JSON.parse(await srv.cli('GET', 'layout:foo'))
    expect(raw.value).toEqual({ n: 1 })
    expect(raw.expires).toBeGreaterThan(Date.now())
    const pttl = Number(await srv.cli('PTTL', 'layout:foo'))
    expect(pttl).toBeGreaterThan(25_000)
    expect(pttl).toBeLessThanOrEqual(30_000)
    await keyv.set('forever', 'x')
    expect(await srv.cli('PTTL', 'layout:forever')).toBe('-1')
    // The client's keyPrefix goes in front, once.
    const other = new Keyv({ store: new KeyvRedisStore(prefixed), namespace: 'layout' })
    await other.set('foo', 'bar')
    expect(await srv.cli('-n', 1, 'KEYS', '*layout*')).toBe('atlas:layout:foo')
    expect(await other.get('foo')).toBe('bar')
  })

  test('a fractional TTL is rounded up; a negative or non-number TTL and a non-string value are refused', async () => {
    const store = new KeyvRedisStore(plain)
    await store.set('ttl:frac', 'v', 1500.2)
    const pttl = await plain.pttl('ttl:frac')
    expect(pttl).toBeGreaterThan(1000)
    expect(pttl).toBeLessThanOrEqual(1501)
    await expect(store.set('ttl:neg', 'v', -1)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(store.set('ttl:nan', 'v', NaN)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(store.set('ttl:obj', { a: 1 } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(store.setMany([{ key: 'ok', value: 'v' }, { key: 'bad', value: 'v', ttl: -5 }])).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    })
    expect(await plain.exists('ttl:neg', 'ttl:nan', 'ttl:obj', 'ok', 'bad')).toBe(0) // nothing of a refused call was sent
    expect(() => new KeyvRedisStore(plain, { clearBatchSize: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => new KeyvRedisStore(plain, { batch: 1 } as never)).toThrow(/unknown option "batch"/)
    expect(() => new KeyvRedisStore({} as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  test('getMany, setMany, deleteMany and hasMany take one round trip each', async () => {
    const store = new KeyvRedisStore(plain)
    const set = await cost(plain, () =>
      store.setMany([
        { key: 'rt:a', value: 'A', ttl: 10_000 },
        { key: 'rt:b', value: 'B' },
        { key: 'rt:c', value: 'C', ttl: 20_000 },
      ]),
    )
    expect(set).toEqual({ value: [true, true, true], commands: 3, batches: 1 })
    expect(await plain.pttl('rt:a')).toBeGreaterThan(9000)
    expect(await plain.pttl('rt:b')).toBe(-1)

    const get = await cost(plain, () => store.getMany(['rt:a', 'rt:missing', 'rt:c']))
    expect(get).toEqual({ value: ['A', undefined, 'C'], commands: 1, batches: 1 })

    const has = await cost(plain, () => store.hasMany(['rt:a', 'rt:missing', 'rt:b']))
    expect(has).toEqual({ value: [true, false, true], commands: 3, batches: 1 })

    const del = await cost(plain, () => store.deleteMany(['rt:a', 'rt:b', 'rt:missing']))
    expect(del).toEqual({ value: true, commands: 1, batches: 1 })
    expect(await store.deleteMany(['rt:a', 'rt:b'])).toBe(false)
    expect(await store.getMany(['rt:a', 'rt:b', 'rt:c'])).toEqual([undefined, undefined, 'C'])
    // Empty calls send nothing.
    expect(await cost(plain, () => store.getMany([]))).toEqual({ value: [], commands: 0, batches: 0 })
  })

  test('through Keyv, get([keys]) and delete([keys]) use the store’s one-round-trip calls', async () => {
    const keyv = new Keyv({ store: new KeyvRedisStore(plain), namespace: 'many' })
    await keyv.set('a', 1)
    await keyv.set('b', 2)
    const got = await cost(plain, () => keyv.get(['a', 'b', 'c']))
    expect(got.value).toEqual([1, 2, undefined])
    expect(got.batches).toBe(1)
    expect(await srv.cli('MGET', 'many:a', 'many:b')).toMatch(/"value":1[\s\S]*"value":2/)
    const deleted = await cost(plain, () => keyv.delete(['a', 'b']))
    expect(deleted).toMatchObject({ value: true, commands: 1, batches: 1 })
  })

  test('clear() deletes its namespace only, by SCAN and UNLINK in batches, never FLUSHDB', async () => {
    const store = new KeyvRedisStore(plain, { clearBatchSize: 1000 })
    const keyv = new Keyv({ store, namespace: 'big' })
    await plain.mset(Array.from({ length: 2500 }, (_, i) => [`big:${i}`, 'x'] as [string, string]))
    // Neighbours that must survive: another namespace, a longer one, an unnamespaced key.
    await plain.mset({ 'bigger:1': 'keep', 'big-x:1': 'keep', big: 'keep', 'session:1': 'keep' })
    const unlinks = await calls('unlink')
    await keyv.clear()
    expect(await calls('unlink')).toBe(unlinks + 3) // 1000 + 1000 + 500
    expect(await calls('flushdb')).toBe(0)
    expect(await calls('flushall')).toBe(0)
    expect(await srv.cli('EVAL', "return #redis.call('KEYS', 'big:*')", 0)).toBe('0')
    expect(await plain.mget('bigger:1', 'big-x:1', 'big', 'session:1')).toEqual(['keep', 'keep', 'keep', 'keep'])
  })

  test('clear() treats glob characters in the namespace literally', async () => {
    await plain.mset({ 'a*b:1': 'mine', 'a?b:1': 'mine too', 'axb:1': 'other', 'a[x]b:1': 'other' })
    await new Keyv({ store: new KeyvRedisStore(plain), namespace: 'a*b' }).clear()
    await new Keyv({ store: new KeyvRedisStore(plain), namespace: 'a?b' }).clear()
    expect(await plain.mget('a*b:1', 'a?b:1', 'axb:1', 'a[x]b:1')).toEqual([null, null, 'other', 'other'])
  })

  test('clear() without a namespace refuses, and deletes nothing', async () => {
    await plain.set('precious', 'yes')
    const store = new KeyvRedisStore(plain)
    const keyv = new Keyv({ store, namespace: undefined, throwOnErrors: true })
    expect(store.namespace).toBeUndefined()
    await expect(keyv.clear()).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/namespace/) })
    expect(await plain.get('precious')).toBe('yes')
  })

  test('iterator() pages through more keys than a batch, of its namespace only, skipping what expired', async () => {
    const store = new KeyvRedisStore(prefixed, { clearBatchSize: 10 })
    const keyv = new Keyv({ store, namespace: 'it' })
    const neighbour = new Keyv({ store: new KeyvRedisStore(prefixed), namespace: 'it2' })
    for (let i = 0; i < 25; i++) await keyv.set(`k${i}`, i)
    await keyv.set('short', 'gone', 50)
    await neighbour.set('k0', 'not mine')
    await new Promise((r) => setTimeout(r, 120))
    const seen = new Map<string, unknown>()
    for await (const [k, v] of keyv.iterator!(undefined)) seen.set(k, v) // Keyv passes its namespace itself
    expect(seen.size).toBe(25)
    for (let i = 0; i < 25; i++) expect(seen.get(`k${i}`)).toBe(i)
    // Raw: keys come back as Keyv wrote them (namespace included, keyPrefix removed).
    const raw: string[] = []
    for await (const [k] of store.iterator('it')) raw.push(k)
    expect(raw.sort()).toEqual(Array.from({ length: 25 }, (_, i) => `it:k${i}`).sort())
  })

  test('disconnect() leaves a shared client open; with closeClient it closes it', async () => {
    await new KeyvRedisStore(plain).disconnect()
    expect(await plain.ping()).toBeGreaterThan(0)
    const own = await connect(srv.url)
    await new Keyv({ store: new KeyvRedisStore(own, { closeClient: true }) }).disconnect()
    expect(await rejection(own.get('x'))).toMatchObject({ code: 'ERR_CLOSED' })
  })
})

// ---- @nestjs/cache-manager ----------------------------------------------------------------

describe('@nestjs/cache-manager with CacheInterceptor', () => {
  const handled = { accounts: 0, permissions: 0 }

  @Controller()
  @UseInterceptors(CacheInterceptor)
  class LedgerController {
    @Get('accounts')
    accounts() {
      handled.accounts++
      return { accounts: ['1000 Cash', '1200 Receivables'], served: handled.accounts }
    }

    @Get('permissions')
    @CacheTTL(5_000)
    permissions() {
      handled.permissions++
      return { admin: ['*'], served: handled.permissions }
    }
  }

  const apps: INestApplication[] = []
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()))
  })

  /** One API instance: its own Nest app, the given Redis client. */
  async function instance(redis: RedisClient) {
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.registerAsync({
          useFactory: () => ({
            ttl: 60_000,
            stores: [new Keyv({ store: new KeyvRedisStore(redis), namespace: 'http' })],
          }),
        }),
      ],
      controllers: [LedgerController],
    }).compile()
    const app = moduleRef.createNestApplication({ logger: false })
    await app.init()
    apps.push(app)
    return app.getHttpServer()
  }

  test('the second request is served from Redis: the handler runs once, the key holds the TTL', async () => {
    const http = await instance(plain)
    const first = await request(http).get('/accounts').expect(200)
    expect(first.headers['x-cache']).toBe('MISS')
    expect(first.body).toEqual({ accounts: ['1000 Cash', '1200 Receivables'], served: 1 })
    // The interceptor writes after responding: wait for the key.
    const stored = await eventually(async () => {
      const v = await srv.cli('GET', 'http:/accounts')
      if (!v) throw new Error('not stored yet')
      return JSON.parse(v)
    }, 2000, 10)
    expect(stored.value).toEqual(first.body)
    const pttl = Number(await srv.cli('PTTL', 'http:/accounts'))
    expect(pttl).toBeGreaterThan(55_000)
    expect(pttl).toBeLessThanOrEqual(60_000)

    const second = await request(http).get('/accounts').expect(200)
    expect(second.headers['x-cache']).toBe('HIT')
    expect(second.body).toEqual(first.body)
    expect(handled.accounts).toBe(1)

    // Served from Redis, not from process memory: another instance with its own
    // connection answers from the same key without running its handler.
    const other = await connect(srv.url)
    const third = await request(await instance(other)).get('/accounts').expect(200)
    expect(third.headers['x-cache']).toBe('HIT')
    expect(third.body).toEqual(first.body)
    expect(handled.accounts).toBe(1)
  })

  test('@CacheTTL sets the key’s TTL; deleting the key makes the next request run the handler', async () => {
    const http = await instance(plain)
    await request(http).get('/permissions').expect(200)
    await eventually(async () => {
      if ((await srv.cli('EXISTS', 'http:/permissions')) !== '1') throw new Error('not stored yet')
    }, 2000, 10)
    const pttl = Number(await srv.cli('PTTL', 'http:/permissions'))
    expect(pttl).toBeGreaterThan(0)
    expect(pttl).toBeLessThanOrEqual(5_000)
    expect((await request(http).get('/permissions').expect(200)).headers['x-cache']).toBe('HIT')
    expect(handled.permissions).toBe(1)
    await srv.cli('DEL', 'http:/permissions')
    const again = await request(http).get('/permissions').expect(200)
    expect(again.headers['x-cache']).toBe('MISS')
    expect(again.body.served).toBe(2)
  })

  test('the docs/caching.md setup: RedisModule’s client injected into CacheModule.registerAsync, CacheInterceptor app-wide', async () => {
    @Controller()
    class PlainController {
      static runs = 0
      @Get('tenants')
      tenants() {
        return { tenants: ['acme'], run: ++PlainController.runs }
      }
    }
    const moduleRef = await Test.createTestingModule({
      imports: [
        RedisModule.forRoot({ url: srv.url, isGlobal: true }),
        CacheModule.registerAsync({
          isGlobal: true,
          inject: [getRedisToken()],
          useFactory: (redis: RedisClient) => ({
            ttl: 60_000,
            stores: [new Keyv({ store: new KeyvRedisStore(redis), namespace: 'api-cache' })],
          }),
        }),
      ],
      controllers: [PlainController],
      providers: [{ provide: APP_INTERCEPTOR, useClass: CacheInterceptor }],
    }).compile()
    const app = moduleRef.createNestApplication({ logger: false })
    await app.init()
    apps.push(app)
    const http = app.getHttpServer()
    expect((await request(http).get('/tenants').expect(200)).body).toEqual({ tenants: ['acme'], run: 1 })
    await eventually(async () => {
      if ((await srv.cli('EXISTS', 'api-cache:/tenants')) !== '1') throw new Error('not stored yet')
    }, 2000, 10)
    const hit = await request(http).get('/tenants').expect(200)
    expect(hit.headers['x-cache']).toBe('HIT')
    expect(hit.body).toEqual({ tenants: ['acme'], run: 1 })
    expect(PlainController.runs).toBe(1)
    // Shutdown: the cache module's disconnect() leaves the client to RedisModule, which closes it.
    const redis = moduleRef.get<RedisClient>(getRedisToken())
    await Promise.all(apps.splice(0).map((a) => a.close()))
    expect(await rejection(redis.get('x'))).toMatchObject({ code: 'ERR_CLOSED' })
  })

  test('closing the app leaves the shared client open (RedisModule owns it)', async () => {
    await instance(plain)
    await Promise.all(apps.splice(0).map((a) => a.close()))
    expect(await plain.ping()).toBeGreaterThan(0)
  })
})
