// RedisThrottlerGuard (`@atlas-erp/redis/throttler`) side by side with
// @nestjs/throttler's own ThrottlerGuard on RedisThrottlerStorage: two Nest apps
// with the same controllers and module options, one per guard, each on its own
// key prefix of one real redis-server, answer the same timed request sequences
// with the same statuses, headers and bodies — while the new guard counts all
// throttlers of a request in one script call.
import 'reflect-metadata'
import fs from 'fs'
import path from 'path'
import { Controller, Get, Injectable, type ExecutionContext, type INestApplication, type Type } from '@nestjs/common'
import { APP_GUARD } from '@nestjs/core'
import { Test } from '@nestjs/testing'
import {
  SkipThrottle,
  Throttle,
  ThrottlerGuard,
  ThrottlerModule,
  type ThrottlerLimitDetail,
  type ThrottlerModuleOptions,
} from '@nestjs/throttler'
import request from 'supertest'
import { RedisClient } from '../lib'
import { RedisThrottlerGuard, RedisThrottlerStorage, THROTTLE_BATCH } from '../lib/ratelimit/throttler'
import { startRedis, stopAll, RedisServer } from './harness'
import { closeAll, connect, eventually, ns, prng, realRedisTest, sleep } from './helpers'

let srv: RedisServer
let client: RedisClient

beforeAll(async () => {
  srv = await startRedis()
  client = await connect(srv.url)
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

const apps: INestApplication[] = []
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()))
})

// ---- the app: routes with the decorators users put on them ------------------------------------

/**
 * The timed sequences below step on a grid of GRID_MS; every ttl and block
 * duration is a whole number of steps plus a half (`ms(10.5)`), so every moment
 * that changes an answer (a hit's expiry, a block's end, the whole second that
 * a header rounds up to) falls half a step away from every request.
 */
const GRID_MS = 200
const HALF = GRID_MS / 2
/** Allowed spread of request lateness within one run (half a grid step, less two requests' time). */
const MARGIN_MS = HALF - 15
const ms = (steps: number) => steps * GRID_MS
/** A duration's whole seconds, rounded up, as the headers give it. */
const seconds = (steps: number) => String(Math.ceil(ms(steps) / 1000))

@Controller()
class RoutesController {
  @Get('a')
  a() {
    return { route: 'a' }
  }

  @Get('b')
  @Throttle({ short: { limit: 1, ttl: ms(5.5), blockDuration: ms(10.5) } })
  b() {
    return { route: 'b' }
  }

  @Get('c')
  @SkipThrottle({ short: true })
  c() {
    return { route: 'c' }
  }

  @Get('d')
  @Throttle({ long: { limit: 2, ttl: ms(20.5), blockDuration: 0 } })
  d() {
    return { route: 'd' }
  }

  // a limit the stock guard refuses (toNumber): it throws after counting the throttlers before it
  @Get('bad')
  @Throttle({ long: { limit: 'many' as unknown as number, ttl: ms(30.5) } })
  bad() {
    return { route: 'bad' }
  }
}

/** The throttlers of most cases: three names, one without a block. The guard sorts them by ttl. */
const THROTTLERS = [
  { name: 'long', ttl: ms(30.5), limit: 6 },
  { name: 'short', ttl: ms(10.5), limit: 3, blockDuration: ms(15.5) },
  { name: 'burst', ttl: ms(5.5), limit: 4, blockDuration: 0 },
]

type ModuleOptions = Exclude<ThrottlerModuleOptions, unknown[]>

/** One app: `guard` as APP_GUARD, RedisThrottlerStorage on `prefix`, callers told apart by `X-Client`. */
async function app(guard: Type<ThrottlerGuard>, prefix: string, options: Partial<ModuleOptions> = {}, redis = client): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      ThrottlerModule.forRoot({
        throttlers: THROTTLERS,
        getTracker: (req: Record<string, any>) => String(req.headers['x-client'] ?? 'anonymous'),
        storage: new RedisThrottlerStorage(redis, { prefix }),
        ...options,
      } as ModuleOptions),
    ],
    controllers: [RoutesController],
    providers: [{ provide: APP_GUARD, useClass: guard }],
  }).compile()
  const a = moduleRef.createNestApplication({ logger: false })
  await a.init()
  apps.push(a)
  return a
}

/** The app's base URL, listening on a free port of the loopback. */
async function listening(a: INestApplication): Promise<string> {
  await a.listen(0, '127.0.0.1')
  return (await a.getUrl()).replace('[::1]', '127.0.0.1')
}

interface Answer {
  status: number
  headers: Record<string, string>
  body: unknown
}

/** One request of a step to an app listening at `base` (fetch: a kept-alive connection, no listen per request). */
async function get(base: string, step: Step): Promise<Answer> {
  const headers: Record<string, string> = { 'X-Client': step.client }
  if (step.agent !== undefined) headers['User-Agent'] = step.agent
  if (step.skip) headers['X-Skip'] = '1'
  const res = await fetch(`${base}/${step.path}`, { headers })
  const answer: Record<string, string> = {}
  for (const [name, value] of res.headers) if (name !== 'date') answer[name] = value // date: the one header that tells two answers of the same instant apart
  return { status: res.status, headers: answer, body: await res.json() }
}

// ---- timed sequences, side by side ---------------------------------------------------------------

/** One request of a timed sequence, at `at` steps of GRID_MS. */
interface Step {
  at: number
  path: string
  client: string
  agent?: string
  skip?: boolean
}


interface Compared {
  step: Step
  stock: Answer
  ours: Answer
}

/**
 * Both apps answer each step; the two requests of a step go out together. The
 * steps of one moment go out at once, but for those of one caller on one route
 * (which share their counters: the guard's default key names the handler),
 * which go one after another in the order given.
 */
async function replay(steps: Step[], stock: string, ours: string): Promise<{ records: Compared[]; spreadMs: number }> {
  const moments = new Map<number, Step[]>()
  for (const step of steps) {
    if (!moments.has(step.at)) moments.set(step.at, [])
    moments.get(step.at)!.push(step)
  }
  const records = new Map<Step, Compared>()
  let earliest = Infinity
  let latest = -Infinity
  const t0 = performance.now() + 20
  for (const t of [...moments.keys()].sort((x, y) => x - y)) {
    const planned = t0 + t * GRID_MS
    const wait = planned - performance.now()
    if (wait > 0) await sleep(wait)
    earliest = Math.min(earliest, performance.now() - planned)
    const lanes = new Map<string, Step[]>()
    for (const step of moments.get(t)!) {
      const lane = `${step.client} ${step.path}`
      if (!lanes.has(lane)) lanes.set(lane, [])
      lanes.get(lane)!.push(step)
    }
    await Promise.all(
      [...lanes.values()].map(async (lane) => {
        for (const step of lane) {
          const [s, o] = await Promise.all([get(stock, step), get(ours, step)])
          records.set(step, { step, stock: s, ours: o })
        }
      }),
    )
    latest = Math.max(latest, performance.now() - planned)
  }
  return { records: steps.map((s) => records.get(s)!), spreadMs: latest - earliest }
}

function mismatches(records: Compared[]): string[] {
  const out: string[] = []
  for (const { step, stock, ours } of records) {
    if (JSON.stringify(stock) !== JSON.stringify(ours)) {
      out.push(`t=${step.at * GRID_MS}ms ${step.client} /${step.path}:\n  stock ${JSON.stringify(stock)}\n  ours  ${JSON.stringify(ours)}`)
    }
  }
  return out
}

interface Pair {
  stock: Type<ThrottlerGuard>
  ours: Type<ThrottlerGuard>
  options?: Partial<ModuleOptions>
}

/**
 * Replays `steps` against a fresh pair of apps until request lateness stayed
 * within the margin (at most 4 tries), then compares every answer.
 */
async function sideBySide(steps: Step[], pair: Pair = { stock: ThrottlerGuard, ours: RedisThrottlerGuard }): Promise<Compared[]> {
  let last: { records: Compared[]; spreadMs: number } | undefined
  for (let attempt = 0; attempt < 4; attempt++) {
    const stock = await app(pair.stock, ns('stock'), pair.options)
    const ours = await app(pair.ours, ns('ours'), pair.options)
    const bases = [await listening(stock), await listening(ours)]
    // warm: connections kept alive, scripts loaded, code compiled (another caller's counters)
    for (const base of bases) for (const p of new Set(steps.map((x) => x.path))) await get(base, { at: 0, path: p, client: 'warm-up' })
    last = await replay(steps, bases[0], bases[1])
    await Promise.all(apps.splice(0).map((a) => a.close()))
    if (last.spreadMs < MARGIN_MS) break
  }
  if (last!.spreadMs >= MARGIN_MS) {
    throw new Error(`requests were ${last!.spreadMs.toFixed(1)} ms late: the comparison needs < ${MARGIN_MS} ms`)
  }
  expect(mismatches(last!.records)).toEqual([])
  return last!.records
}

const at = (path: string, client: string, ats: number[], extra: Partial<Step> = {}): Step[] =>
  ats.map((t) => ({ at: t, path, client, ...extra }))

const header = (r: Compared, name: string) => r.ours.headers[name.toLowerCase()]

describe('the same answers as ThrottlerGuard with RedisThrottlerStorage', () => {
  jest.setTimeout(120_000) // a sequence lasts up to 7 s, and is replayed when timers ran late
  test('three named throttlers: counts, blocks, Retry-After, and a throttler after a blocking one is not counted', async () => {
    const records = await sideBySide([
      // c1: short (3 per 10.5 steps) blocks the 4th request for 15.5 steps; long (6 per 30.5) must not count it
      ...at('a', 'c1', [0, 1, 2, 3, 5, 12, 19, 20]),
      // c2 on routes with their own limits and skips
      ...at('b', 'c2', [0, 1, 4, 6, 11, 17, 22]),
      ...at('c', 'c2', [0, 1, 2, 3, 4, 5, 6, 7, 8]),
      ...at('d', 'c3', [0, 1, 2, 3, 9, 21, 22]),
    ])
    const a = records.filter((r) => r.step.client === 'c1')
    expect(a.map((r) => r.ours.status)).toEqual([200, 200, 200, 429, 429, 429, 200, 200])
    expect(a.map((r) => header(r, 'X-RateLimit-Remaining-short') ?? '-')).toEqual(['2', '1', '0', '-', '-', '-', '2', '1'])
    // hits at 0, 1, 2 and 19: the three refused requests were counted by neither long nor burst
    expect(header(a[6], 'X-RateLimit-Remaining-long')).toBe('2')
    expect(header(a[3], 'Retry-After-short')).toBe(seconds(15.5))
    expect(a[3].ours.body).toEqual({ statusCode: 429, message: 'ThrottlerException: Too Many Requests' })
    // /c skips short: no short headers; burst (4 per 5.5 steps, no block) refuses the 5th and 6th,
    // which long does not count, so long (6) blocks only the 9th
    const c = records.filter((r) => r.step.path === 'c')
    expect(c.map((r) => r.ours.status)).toEqual([200, 200, 200, 200, 429, 429, 200, 200, 429])
    expect(c.some((r) => 'x-ratelimit-limit-short' in r.ours.headers)).toBe(false)
    // /d: long without a block (2 per 20.5 steps) refuses the 3rd; short, counting it, blocks the 4th
    const d = records.filter((r) => r.step.path === 'd')
    expect(d.map((r) => r.ours.status)).toEqual([200, 200, 429, 429, 429, 200, 200])
  })

  test('random sequences over routes and callers (seeded)', async () => {
    const rand = prng(20261207)
    const steps: Step[] = []
    for (let i = 0; i < 45; i++) {
      steps.push({
        at: Math.floor(rand() * 32),
        path: ['a', 'a', 'b', 'c', 'd'][Math.floor(rand() * 5)],
        client: ['r1', 'r2'][Math.floor(rand() * 2)],
      })
    }
    const records = await sideBySide(steps)
    // the sequence went through both answers
    expect(records.some((r) => r.ours.status === 429)).toBe(true)
    expect(records.filter((r) => r.ours.status === 200).length).toBeGreaterThan(10)
  })

  test('module options: errorMessage, ignoreUserAgents, setHeaders, skipIf, generateKey; subclass overrides', async () => {
    const options: Partial<ModuleOptions> = {
      throttlers: [
        { name: 'long', ttl: ms(30.5), limit: 5, setHeaders: false },
        { name: 'short', ttl: ms(10.5), limit: 2, blockDuration: ms(15.5), ignoreUserAgents: [/monitor/] },
        { name: 'per-route', ttl: ms(20.5), limit: 4, skipIf: (ctx: ExecutionContext) => ctx.switchToHttp().getRequest().headers['x-skip'] === '1' },
      ],
      errorMessage: (_ctx: ExecutionContext, d: ThrottlerLimitDetail) => `slow down: ${d.totalHits}/${d.limit}, ${d.timeToBlockExpire} s`,
      generateKey: (ctx: ExecutionContext, tracker: string, name: string) => `${ctx.getHandler().name}:${name}:${tracker}`,
    }
    // the example API's guard: the standard Retry-After next to Retry-After-<name>; trackers upper-cased
    const withRetryAfter = <T extends Type<ThrottlerGuard>>(base: T): Type<ThrottlerGuard> => {
      @Injectable()
      class Guard extends (base as Type<ThrottlerGuard>) {
        protected override async getTracker(req: Record<string, any>): Promise<string> {
          return String(req.headers['x-client']).toUpperCase()
        }
        protected override async throwThrottlingException(context: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
          const { res } = this.getRequestResponse(context)
          this.setResponseHeader(res, 'Retry-After', Math.max(1, detail.timeToBlockExpire))
          return super.throwThrottlingException(context, detail)
        }
      }
      return Guard
    }
    const records = await sideBySide(
      [
        ...at('a', 'u1', [0, 1, 2, 3, 4, 6, 8, 21, 22, 23]),
        ...at('a', 'u2', [0, 1, 2, 3, 4], { agent: 'uptime-monitor/1.0' }),
        ...at('b', 'u3', [0, 2, 4, 6, 8, 10], { skip: true }),
      ],
      { stock: withRetryAfter(ThrottlerGuard), ours: withRetryAfter(RedisThrottlerGuard), options: { ...options, getTracker: undefined } }, // the subclass's getTracker
    )
    const u1 = records.filter((r) => r.step.client === 'u1')
    expect(u1.map((r) => r.ours.status)).toEqual([200, 200, 429, 429, 429, 429, 429, 200, 200, 429])
    expect(u1[2].ours.headers['retry-after']).toBe(seconds(15.5))
    expect(u1[2].ours.body).toMatchObject({ message: `slow down: 3/2, ${seconds(15.5)} s` })
    expect(u1.some((r) => 'x-ratelimit-limit-long' in r.ours.headers)).toBe(false) // setHeaders: false
    // a monitor is never limited by short
    const u2 = records.filter((r) => r.step.client === 'u2')
    expect(u2.map((r) => r.ours.status)).toEqual([200, 200, 200, 200, 429])
  })

  test('a throwThrottlingException that does not throw: the throttlers after the refusal are counted, as the stock guard does', async () => {
    const lenient = (base: Type<ThrottlerGuard>): Type<ThrottlerGuard> => {
      @Injectable()
      class Guard extends base {
        protected override async throwThrottlingException(context: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
          const { res } = this.getRequestResponse(context)
          this.setResponseHeader(res, 'X-Over-Limit', `${detail.key.slice(0, 8)}:${detail.totalHits}`)
        }
      }
      return Guard
    }
    const records = await sideBySide(at('a', 'l1', [0, 1, 2, 3, 4, 5, 6, 7]), { stock: lenient(ThrottlerGuard), ours: lenient(RedisThrottlerGuard) })
    expect(records.map((r) => r.ours.status)).toEqual(Array(8).fill(200))
    // the 8th: burst over its limit (blockDuration 0), short blocked, long counting every request
    expect(header(records[7], 'X-RateLimit-Remaining-long')).toBe('0')
  })

  test('a limit the guard refuses: 500 after counting the throttlers before it, on both', async () => {
    const records = await sideBySide(at('bad', 'x1', [0, 1, 2, 3, 4]))
    // long (the refused one) comes last: burst and short count, and short blocks the 4th
    expect(records.map((r) => r.ours.status)).toEqual([500, 500, 500, 429, 429])
  })
})

// ---- what the guard sends -------------------------------------------------------------------------

describe('RedisThrottlerGuard', () => {
  test('one script call per request where the stock guard makes one per throttler', async () => {
    const stock = (await app(ThrottlerGuard, ns('rt-stock'))).getHttpServer()
    const ours = (await app(RedisThrottlerGuard, ns('rt-ours'))).getHttpServer()
    await request(stock).get('/a').set('X-Client', 'warm').expect(200) // scripts loaded
    await request(ours).get('/a').set('X-Client', 'warm').expect(200)
    const commands = async (server: unknown, n: number) => {
      const before = client.stats().commands
      for (let i = 0; i < n; i++) await request(server as never).get('/a').set('X-Client', `k${i}`).expect(200)
      return client.stats().commands - before
    }
    expect(await commands(stock, 5)).toBe(15)
    expect(await commands(ours, 5)).toBe(5)
  })

  test('a request whose first throttler is blocked is answered from memory, without a round trip', async () => {
    const ours = (await app(RedisThrottlerGuard, ns('mem'), { throttlers: [{ name: 'short', ttl: 5_000, limit: 1 }, { name: 'long', ttl: 60_000, limit: 10 }] })).getHttpServer()
    await request(ours).get('/a').set('X-Client', 'm').expect(200)
    await request(ours).get('/a').set('X-Client', 'm').expect(429) // blocked: remembered
    const before = client.stats()
    const again = await request(ours).get('/a').set('X-Client', 'm').expect(429)
    expect(again.headers['retry-after-short']).toBe('5')
    expect(client.stats().commands - before.commands).toBe(0)
    expect(client.stats().rateLimitCacheHits - before.rateLimitCacheHits).toBe(1)
  })

  test('an increment that fails (WRONGTYPE) fails the request as the stock guard does; the throttlers after it are not counted', async () => {
    const results: Record<string, Array<[number, string | undefined]>> = {}
    for (const [label, guard] of [['stock', ThrottlerGuard], ['ours', RedisThrottlerGuard]] as const) {
      const prefix = ns(label)
      const server = (await app(guard, prefix, { generateKey: (_c: ExecutionContext, tracker: string, name: string) => `${name}-${tracker}` })).getHttpServer()
      // burst's record (it comes first) holds a hash: its increment fails
      await client.hset(`${prefix}{burst-w}`, 'not', 'a record')
      const out: Array<[number, string | undefined]> = []
      for (let i = 0; i < 2; i++) out.push([(await request(server).get('/a').set('X-Client', 'w')).status, undefined])
      await client.del(`${prefix}{burst-w}`)
      const ok = await request(server).get('/a').set('X-Client', 'w')
      out.push([ok.status, ok.headers['x-ratelimit-remaining-long']])
      results[label] = out
    }
    expect(results.ours).toEqual([[500, undefined], [500, undefined], [200, '5']])
    expect(results.ours).toEqual(results.stock)
  })

  test('with another storage it is the stock guard', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ThrottlerModule.forRoot({ throttlers: [{ name: 'short', ttl: 10_000, limit: 2 }] })],
      controllers: [RoutesController],
      providers: [{ provide: APP_GUARD, useClass: RedisThrottlerGuard }],
    }).compile()
    const a = moduleRef.createNestApplication({ logger: false })
    await a.init()
    apps.push(a)
    const before = client.stats().commands
    await request(a.getHttpServer()).get('/a').expect(200)
    const second = await request(a.getHttpServer()).get('/a').expect(200)
    expect(second.headers['x-ratelimit-remaining-short']).toBe('0')
    await request(a.getHttpServer()).get('/a').expect(429)
    expect(client.stats().commands).toBe(before) // the in-memory storage: nothing went to Redis
  })
})

describe('RedisThrottlerGuard on a Redis Cluster node', () => {
  realRedisTest("a request's throttlers in several slots: one after another, answering as the stock guard", async () => {
    const node = await startRedis({ cluster: true })
    await node.cli('CLUSTER', 'ADDSLOTSRANGE', 0, 16383)
    await eventually(async () => expect(await node.cli('CLUSTER', 'INFO')).toMatch(/cluster_state:ok/), 10_000)
    const c = await connect(node.url)
    const options = { throttlers: [{ name: 'short', ttl: 60_000, limit: 2 }, { name: 'long', ttl: 120_000, limit: 3 }] }
    const answers: Record<string, Answer[]> = {}
    for (const [label, guard] of [['stock', ThrottlerGuard], ['ours', RedisThrottlerGuard]] as const) {
      const base = await listening(await app(guard, ns(label), options, c))
      answers[label] = []
      // left batching across slots, the first request's script call is refused (CROSSSLOT: nothing ran)
      for (let i = 0; i < 5; i++) answers[label].push(await get(base, { at: 0, path: 'a', client: 'z' }))
    }
    expect(answers.ours.map((a) => a.status)).toEqual([200, 200, 429, 429, 429])
    expect(answers.ours.map((a) => a.headers['x-ratelimit-remaining-long'] ?? '-')).toEqual(['2', '1', '-', '-', '-'])
    expect(answers.ours).toEqual(answers.stock)
    await Promise.all(apps.splice(0).map((a) => a.close()))
    await node.stop()
  })
})

// ---- the storage's incrementAll ---------------------------------------------------------------------

describe('RedisThrottlerStorage.incrementAll', () => {
  test('the requests of one tick share script calls; a request is never split between two, and stops at its first block', async () => {
    const storage = new RedisThrottlerStorage(client, { prefix: ns('all') })
    await storage.incrementAll([0, 1].map((i) => ({ key: 'warm', ttl: 1000, limit: 1, blockDuration: 0, name: `w${i}` }))) // script loaded
    // 12 requests of 5 increments (60 > THROTTLE_BATCH = 48): the first turn takes 9 whole requests (45)
    expect(THROTTLE_BATCH).toBe(48)
    const requests = Array.from({ length: 12 }, (_, r) =>
      Array.from({ length: 5 }, (_, i) => ({
        key: `req${r}-t${i}`,
        ttl: 60_000,
        // the 3rd throttler of every request blocks at once (limit 0): the 4th and 5th never count
        limit: i === 2 ? 0 : 10,
        blockDuration: 60_000,
        name: `t${i}`,
      })),
    )
    const before = client.stats().commands
    const answers = await Promise.all(requests.map((incs) => storage.incrementAll(incs)))
    expect(client.stats().commands - before).toBe(2)
    for (const a of answers) {
      expect(a.map((x) => (x === undefined ? 'skipped' : `${x.totalHits}${x.isBlocked ? ' blocked' : ''}`))).toEqual(['1', '1', '1 blocked', 'skipped', 'skipped'])
    }
    // nothing of the skipped throttlers reached Redis
    const prefix = (storage as unknown as { prefix: string }).prefix
    const skipped = requests.flatMap((incs) => incs.slice(3).map((x) => `${prefix}{${x.key}}`))
    expect(await client.exists(...skipped)).toBe(0)
    expect(await client.exists(`${prefix}{req0-t0}`, `${prefix}{req11-t2}`)).toBe(2)
  })

  test('bad increments reject with ERR_INVALID_ARGUMENT before anything is sent', async () => {
    const storage = new RedisThrottlerStorage(client, { prefix: ns('bad') })
    const ok = { key: 'k', ttl: 1000, limit: 1, blockDuration: 0, name: 'default' }
    const before = client.stats().commands
    for (const bad of [{ key: '' }, { ttl: NaN }, { limit: Infinity }, { blockDuration: '1' }, { name: 7 }]) {
      await expect(storage.incrementAll([ok, { ...ok, ...bad } as never])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    }
    expect(client.stats().commands).toBe(before)
    await expect(storage.incrementAll([])).resolves.toEqual([])
  })
})

// ---- the script --------------------------------------------------------------------------------------

test('throttle_all.lua is throttle.lua with requests: every line of throttle.lua (comments aside) is in it, in order', () => {
  const find = (name: string): string => {
    const hit = fs.readdirSync(path.join(__dirname, '..', 'src'), { recursive: true, encoding: 'utf8' }).find((f) => path.basename(f) === name)
    if (hit === undefined) throw new Error(`src/**/${name} not found`)
    return fs.readFileSync(path.join(__dirname, '..', 'src', hit), 'utf8')
  }
  const code = (src: string) => src.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('--'))
  const base = code(find('throttle.lua'))
  const all = code(find('throttle_all.lua'))
  // the one line that differs: the rules start one argument later (after the requests)
  const changed = new Map([['for a = 3, #ARGV, 4 do', 'for a = 4, #ARGV, 4 do']])
  const missing: string[] = []
  let j = 0
  for (const line of base) {
    const want = changed.get(line) ?? line
    while (j < all.length && all[j] !== want) j++
    if (j === all.length) {
      missing.push(line)
      j = 0
      continue
    }
    j++
  }
  expect(missing).toEqual([])
  expect(base.length).toBeGreaterThan(200)
})
