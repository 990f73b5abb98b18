// RedisModule, RedisService, @InjectRedis and RedisHealthIndicator inside real
// NestJS 12 testing modules, against servers the harness starts.
import { Controller, Get, Injectable, Module } from '@nestjs/common'
import { Test } from '@nestjs/testing'
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus'

import { RedisClient } from '../lib'
import { InjectRedis, RedisHealthIndicator, RedisModule, RedisService, getRedisToken } from '../lib/nest'
import { RedisServer, startRedis, stopAll } from './harness'
import { eventually } from './helpers'

let plain: RedisServer
let secured: RedisServer

beforeAll(async () => {
  ;[plain, secured] = await Promise.all([startRedis(), startRedis({ password: 'n3st-secret' })])
})
afterAll(stopAll)

async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved: Record<string, string | undefined> = {}
  for (const k of ['REDIS_URL', 'REDIS_HOST', 'REDIS_PORT', 'REDIS_PASSWORD', ...Object.keys(vars)]) {
    saved[k] = process.env[k]
    delete process.env[k]
  }
  Object.assign(process.env, vars)
  try {
    return await fn()
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

test('forRoot() with no options reads REDIS_HOST / REDIS_PORT / REDIS_PASSWORD; RedisService keeps the seed surface', async () => {
  const moduleRef = await withEnv(
    { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(secured.port), REDIS_PASSWORD: 'n3st-secret' },
    () => Test.createTestingModule({ imports: [RedisModule.forRoot()] }).compile(),
  )
  const redis = moduleRef.get(RedisService)
  expect(await redis.get('nest:seed')).toBeNull()
  await redis.set('nest:seed', 'value', 30)
  expect(await redis.get('nest:seed')).toBe('value')
  const pttl = await redis.client.pttl('nest:seed')
  expect(pttl).toBeGreaterThan(0)
  expect(pttl).toBeLessThanOrEqual(30_000)
  expect(await secured.cli('GET', 'nest:seed')).toBe('value')
  await moduleRef.close()
})

test("forRoot({ url: 'memory://…' }): an app's unit tests need no Redis; two modules on one name share the store", async () => {
  const name = `nest-unit-${process.pid}`
  const [a, b] = await Promise.all([
    Test.createTestingModule({ imports: [RedisModule.forRoot({ url: `memory://${name}` })] }).compile(),
    Test.createTestingModule({ imports: [RedisModule.forRoot({ url: `memory://${name}`, keyPrefix: 'api:' })] }).compile(),
  ])
  const [ra, rb] = [a.get(RedisService), b.get(RedisService)]
  await rb.set('seed', 'from b', 30)
  expect(await ra.get('api:seed')).toBe('from b')
  expect(await ra.client.ttl('api:seed')).toBe(30)
  expect((await rb.client.rateLimit('login', { limit: 1, windowMs: 60_000 })).allowed).toBe(true)
  expect((await rb.client.rateLimit('login', { limit: 1, windowMs: 60_000 })).allowed).toBe(false)
  await ra.client.command('FLUSHALL')
  await Promise.all([a.close(), b.close()])
})

test('forRootAsync with inject/useFactory, and named connections with @InjectRedis(name)', async () => {
  @Injectable()
  class Settings {
    url = `${plain.url}/3`
  }
  @Module({ providers: [Settings], exports: [Settings] })
  class SettingsModule {}

  @Injectable()
  class Consumer {
    constructor(
      @InjectRedis() readonly main: RedisClient,
      @InjectRedis('cache') readonly cache: RedisClient,
    ) {}
  }

  const moduleRef = await Test.createTestingModule({
    imports: [
      RedisModule.forRootAsync({
        imports: [SettingsModule],
        inject: [Settings],
        useFactory: (s: Settings) => s.url,
      }),
      RedisModule.forRoot({ name: 'cache', url: plain.url, db: 4, keyPrefix: 'cache:' }),
    ],
    providers: [Consumer],
  }).compile()
  const { main, cache } = moduleRef.get(Consumer)
  expect(main).not.toBe(cache)
  expect(moduleRef.get(getRedisToken())).toBe(main)
  await main.set('k', 'in-db-3')
  await cache.set('k', 'in-db-4')
  expect(await plain.cli('-n', '3', 'GET', 'k')).toBe('in-db-3')
  expect(await plain.cli('-n', '4', 'GET', 'cache:k')).toBe('in-db-4')
  await moduleRef.close()
})

test('isGlobal makes RedisService injectable in modules that do not import RedisModule', async () => {
  @Injectable()
  class Feature {
    constructor(readonly redis: RedisService) {}
  }
  @Module({ providers: [Feature] })
  class FeatureModule {}

  const moduleRef = await Test.createTestingModule({
    imports: [RedisModule.forRoot({ url: plain.url, isGlobal: true }), FeatureModule],
  }).compile()
  const feature = moduleRef.get(Feature)
  await feature.redis.set('global', 'yes')
  expect(await feature.redis.get('global')).toBe('yes')
  await moduleRef.close()
})

test('app shutdown closes the connection after the replies in flight', async () => {
  const moduleRef = await Test.createTestingModule({ imports: [RedisModule.forRoot({ url: plain.url })] }).compile()
  const client = moduleRef.get<RedisClient>(getRedisToken())
  await client.set('inflight', 'v')
  const reads = Array.from({ length: 100 }, () => client.get('inflight'))
  await moduleRef.close()
  expect(await Promise.all(reads)).toEqual(Array(100).fill('v'))
  await expect(client.get('inflight')).rejects.toMatchObject({ code: 'ERR_CLOSED' })
})

test('a failed connection fails module start-up with the connect error', async () => {
  const dead = await startRedis()
  await dead.kill()
  await expect(
    Test.createTestingModule({ imports: [RedisModule.forRoot({ port: dead.port, connectTimeoutMs: 500 })] }).compile(),
  ).rejects.toMatchObject({ code: 'ERR_CONNECTION' })
})

describe('RedisHealthIndicator with @nestjs/terminus', () => {
  @Controller('health')
  class HealthController {
    constructor(
      private readonly health: HealthCheckService,
      private readonly redis: RedisHealthIndicator,
    ) {}

    @Get()
    @HealthCheck()
    check() {
      return this.health.check([() => this.redis.isHealthy('redis', { timeoutMs: 300 })])
    }
  }

  test('up with a latency while Redis answers; down (503 from terminus) when it stops', async () => {
    const srv = await startRedis()
    const moduleRef = await Test.createTestingModule({
      imports: [TerminusModule.forRoot({ logger: false }), RedisModule.forRoot({ url: srv.url, connectTimeoutMs: 300 })],
      controllers: [HealthController],
    }).compile()
    const controller = moduleRef.get(HealthController)
    const up = await controller.check()
    expect(up.status).toBe('ok')
    expect(up.info?.redis).toMatchObject({ status: 'up', latencyMs: expect.any(Number), reconnects: 0 })
    // the p99 of every reply since connect: at least the PING that just answered
    expect(up.info?.redis?.p99Ms).toBeGreaterThan(0)

    srv.pause()
    const slow = await moduleRef.get(RedisHealthIndicator).isHealthy('redis', { timeoutMs: 200 })
    expect(slow.redis).toMatchObject({ status: 'down', message: expect.stringContaining('ERR_TIMEOUT') })
    srv.resume()

    await srv.kill()
    const err = await controller.check().then(
      () => undefined,
      (e: { getStatus(): number; getResponse(): { error: Record<string, { status: string }> } }) => e,
    )
    expect(err?.getStatus()).toBe(503)
    expect(err?.getResponse().error.redis.status).toBe('down')
    await moduleRef.close()
  })

  /** What the indicator must say of `client.status`: the same value where the client has one, nothing where it has none. */
  function expectedConnection(client: RedisClient): { connection?: string } {
    const status: unknown = (client as unknown as { status?: unknown }).status
    return typeof status === 'string' ? { connection: status } : {}
  }

  test('reports the connection state, reconnects and p99 latency from client.stats()', async () => {
    const srv = await startRedis()
    const moduleRef = await Test.createTestingModule({
      imports: [RedisModule.forRoot({ url: srv.url, connectTimeoutMs: 500, reconnect: { minDelayMs: 10, maxDelayMs: 50 } })],
    }).compile()
    const indicator = moduleRef.get(RedisHealthIndicator)
    const client = moduleRef.get<RedisClient>(getRedisToken())
    for (let i = 0; i < 200; i++) await client.set(`health:${i}`, 'v')

    const before = (await indicator.isHealthy('cache')).cache
    expect(before).toMatchObject({ status: 'up', reconnects: 0, ...expectedConnection(client) })
    expect(before.p99Ms).toBe(Math.round(client.stats().latency.p99Ms * 1000) / 1000)
    if (before.connection !== undefined) expect(before.connection).toBe('ready')
    else expect(before).not.toHaveProperty('connection')

    // the server drops the connection: the client reconnects by itself, and the indicator says so
    await srv.cli('CLIENT', 'KILL', 'TYPE', 'normal')
    const after = await eventually(async () => {
      const h = (await indicator.isHealthy()).redis
      if (h.status !== 'up' || h.reconnects !== 1) throw new Error(`not reconnected yet: ${JSON.stringify(h)}`)
      return h
    }, 5_000, 20)
    expect(after).toMatchObject({ status: 'up', reconnects: client.stats().reconnects, ...expectedConnection(client) })
    expect(after.p99Ms).toBeGreaterThan(0)

    // closed: down with the client's error, and the counters still reported
    await moduleRef.close()
    const closed = (await indicator.isHealthy()).redis
    expect(closed).toMatchObject({ status: 'down', message: expect.stringContaining('ERR_CLOSED'), reconnects: 1, ...expectedConnection(client) })
    expect(closed).not.toHaveProperty('latencyMs')
    await srv.kill()
  })
})
