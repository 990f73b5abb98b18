// RedisThrottlerStorage (`@atlas-erp/redis/throttler`) against real redis-servers:
// the same answers as @nestjs/throttler's in-memory ThrottlerStorageService, shared
// by every API instance, behind a real ThrottlerGuard in a Nest app.
import 'reflect-metadata'
import type { INestApplication } from '@nestjs/common'
import { Controller, Get } from '@nestjs/common'
import { APP_GUARD } from '@nestjs/core'
import { Test } from '@nestjs/testing'
import { ThrottlerGuard, ThrottlerModule, ThrottlerStorageService } from '@nestjs/throttler'
import request from 'supertest'
import { RedisClient } from '../lib'
import { RedisThrottlerStorage, THROTTLE_BATCH } from '../lib/ratelimit/throttler'
import type { ThrottlerStorageRecord } from '../lib/ratelimit/throttler'
import { keySlot } from './harness/slot'
import { startRedis, stopAll, RedisServer } from './harness'
import { closeAll, connect, eventually, ns, prng, realRedisTest, rejection, sleep } from './helpers'

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

// ---- side by side with the in-memory storage ---------------------------------------------

/**
 * One `increment` call of a timed sequence. `at` is in grid units of GRID_MS.
 * Every ttl and blockDuration is a multiple of GRID_MS plus HALF (or 0), so every
 * moment that matters — a hit's expiry, a window's or a block's end, the whole
 * second a `Math.ceil(ms / 1000)` rounds to — falls half a grid step away from
 * every call: timer lateness below MARGIN_MS cannot put the two storages on
 * different sides of one.
 */
interface Step {
  at: number
  key: string
  ttl: number
  limit: number
  block: number
  name: string
}

const GRID_MS = 100
const HALF = GRID_MS / 2
/** Allowed spread of call lateness within one run (half a grid step, less the round trip). */
const MARGIN_MS = HALF - 10

interface Compared {
  step: Step
  memory: ThrottlerStorageRecord
  redis: ThrottlerStorageRecord
}

/** Runs the steps against a fresh in-memory storage and the Redis storage, side by side. */
async function replay(steps: Step[], storage: RedisThrottlerStorage): Promise<{ records: Compared[]; spreadMs: number }> {
  const memory = new ThrottlerStorageService()
  const sorted = [...steps].sort((a, b) => a.at - b.at)
  const records: Compared[] = []
  let earliest = Infinity
  let latest = -Infinity
  const t0 = performance.now() + 20
  try {
    for (const step of sorted) {
      const planned = t0 + step.at * GRID_MS
      const wait = planned - performance.now()
      if (wait > 0) await sleep(wait)
      earliest = Math.min(earliest, performance.now() - planned)
      const m = await memory.increment(step.key, step.ttl, step.limit, step.block, step.name)
      const r = await storage.increment(step.key, step.ttl, step.limit, step.block, step.name)
      latest = Math.max(latest, performance.now() - planned)
      records.push({ step, memory: { ...m }, redis: { ...r } })
    }
  } finally {
    memory.onApplicationShutdown() // its sweep timer
  }
  return { records, spreadMs: latest - earliest }
}

/** Differences between the two storages' records, as readable lines. */
function mismatches(records: Compared[]): string[] {
  const out: string[] = []
  for (const { step, memory: m, redis: r } of records) {
    const same =
      r.totalHits === m.totalHits &&
      r.isBlocked === m.isBlocked &&
      r.timeToExpire === m.timeToExpire + 0 && // + 0: the in-memory storage can answer -0
      // timeToBlockExpire of a key never blocked is Math.ceil((0 - now) / 1000): an
      // absolute clock reading, taken by Date.now() on one side and by the server's
      // TIME a fraction of a millisecond later on the other. The two legitimately
      // differ by one when a whole second ticks between them; everywhere else (a
      // relative time) it must be equal.
      (Math.abs(m.timeToBlockExpire) > 1e6
        ? Math.abs(r.timeToBlockExpire - m.timeToBlockExpire) <= 1
        : r.timeToBlockExpire === m.timeToBlockExpire + 0)
    if (!same) {
      out.push(
        `t=${step.at * GRID_MS}ms ${step.key}/${step.name} ttl=${step.ttl} limit=${step.limit} block=${step.block}: ` +
          `memory ${JSON.stringify(m)} redis ${JSON.stringify({ ...r })}`,
      )
    }
  }
  return out
}

/**
 * Replays until timer lateness stayed within the margin (at most 3 tries), then
 * compares. Blocked keys are partly answered from the storage's memory (no round
 * trip): those answers are compared too; `cached` says how many there were.
 */
async function sideBySide(build: (prefix: string) => Step[]): Promise<Compared[] & { cached: number }> {
  const storage = new RedisThrottlerStorage(client, { prefix: ns('side') })
  let last: { records: Compared[]; spreadMs: number } | undefined
  let cached = 0
  for (let attempt = 0; attempt < 3; attempt++) {
    const hits = client.stats().rateLimitCacheHits
    last = await replay(build(ns('k')), storage)
    cached = client.stats().rateLimitCacheHits - hits
    if (last.spreadMs < MARGIN_MS) break
  }
  if (last!.spreadMs >= MARGIN_MS) {
    throw new Error(`timers were ${last!.spreadMs.toFixed(1)} ms late: the comparison needs < ${MARGIN_MS} ms`)
  }
  expect(mismatches(last!.records)).toEqual([])
  return Object.assign(last!.records, { cached })
}

const steps = (key: string, name: string, ttl: number, limit: number, block: number, ats: number[]): Step[] =>
  ats.map((at) => ({ at, key, name, ttl, limit, block }))

describe('the same answers as the in-memory ThrottlerStorageService', () => {
  test('sliding log, block, and counting afresh when the block ends', async () => {
    const records = await sideBySide((p) => [
      // limit 3 per 1050 ms, blocked 1550 ms: hits expire one by one, the 4th blocks,
      // hits during the block are not counted, counting restarts after it
      ...steps(`${p}a`, 'default', 1050, 3, 1550, [0, 1, 2, 5, 6, 8, 11, 13, 19, 21, 22, 23, 24, 24, 31, 42]),
      // the same shape with a long ttl and a short block, so hits outlive the block
      ...steps(`${p}b`, 'default', 2050, 2, 550, [0, 0, 0, 3, 7, 9, 9, 10, 16, 25, 26]),
    ])
    // the sequence really went through every state the comparison is about
    const a = records.filter((r) => r.step.key.endsWith('a'))
    expect(a.map((r) => r.redis.isBlocked)).toEqual([
      false, false, false, true, true, true, true, true, true, false, false, false, true, true, true, false,
    ])
    expect(a.map((r) => r.redis.totalHits)).toEqual([1, 2, 3, 4, 4, 4, 3, 1, 0, 1, 2, 3, 4, 4, 4, 1])
    // some blocked answers came from the storage's memory, and matched all the same
    expect(records.cached).toBeGreaterThan(5)
  })

  test('blockDuration 0 (incrementWithoutBlock), ttl 0, limit 0', async () => {
    const records = await sideBySide((p) => [
      ...steps(`${p}noblock`, 'default', 1050, 2, 0, [0, 0, 0, 0, 3, 11, 11, 12, 21, 23]),
      ...steps(`${p}ttl0`, 'default', 0, 1, 0, [0, 0, 1, 2, 2]),
      ...steps(`${p}ttl0block`, 'default', 0, 1, 550, [0, 0, 1, 3]),
      ...steps(`${p}limit0`, 'default', 1050, 0, 0, [0, 1, 12]),
      ...steps(`${p}limit0block`, 'default', 1050, 0, 550, [0, 1, 6, 7, 13]),
      ...steps(`${p}both0`, 'default', 0, 0, 0, [0, 1]),
    ])
    const noBlock = records.filter((r) => r.step.key.endsWith('noblock')).map((r) => r.redis)
    expect(noBlock.slice(0, 4).map((r) => [r.totalHits, r.isBlocked])).toEqual([[1, false], [2, false], [3, true], [3, true]])
    expect(records.cached).toBeGreaterThan(0)
  })

  test('two throttler names on one key share its record and block', async () => {
    await sideBySide((p) => [
      ...steps(`${p}shared`, 'short', 1050, 2, 2050, [0, 1, 2, 3, 9, 15, 24, 25, 26]),
      ...steps(`${p}shared`, 'long', 3050, 4, 1050, [0, 1, 2, 4, 10, 16, 25, 27, 36]),
    ])
  })

  test('random sequences (seeded)', async () => {
    const rand = prng(20240605)
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]
    await sideBySide((p) => {
      const out: Step[] = []
      for (let k = 0; k < 4; k++) {
        const key = `${p}r${k}`
        for (const name of k % 2 === 0 ? ['default'] : ['default', 'other']) {
          const ttl = pick([0, 550, 1050, 1550, 2550])
          const limit = pick([0, 1, 2, 3, 5])
          const block = pick([0, 550, 1050, 2050])
          for (let i = 0; i < 14; i++) out.push({ at: Math.floor(rand() * 40), key, name, ttl, limit, block })
        }
      }
      return out
    })
  })

  test('a throttler whose ttl changes while its hits live, a block that outlasts its hits, a fractional limit', async () => {
    await sideBySide((p) => [
      ...steps(`${p}c`, 'default', 550, 2, 2050, [0, 1, 2, 8, 12, 25, 26, 27, 40]),
      // shorter hits after longer ones: each still expires on its own
      ...steps(`${p}a`, 'default', 2550, 4, 1050, [0, 1]),
      ...steps(`${p}a`, 'default', 550, 4, 1050, [2, 3, 5, 7, 9]),
      ...steps(`${p}a`, 'default', 1550, 4, 1050, [10, 12, 20, 30, 45]),
      ...steps(`${p}b`, 'default', 1550, 2.5, 0, [0, 1]),
      ...steps(`${p}b`, 'default', 550, 2.5, 0, [2, 3, 4, 9, 10, 11, 12, 30]),
    ])
  })
})

// ---- the storage itself ---------------------------------------------------------------------

describe('RedisThrottlerStorage', () => {
  test('one EVALSHA round trip per call; a SCRIPT FLUSH changes nothing', async () => {
    const storage = new RedisThrottlerStorage(client, { prefix: ns('rt') })
    await storage.increment('warm', 60_000, 10, 60_000, 'default') // loads the script
    await srv.cli('CONFIG', 'RESETSTAT')
    const before = client.stats().commands
    const answers: ThrottlerStorageRecord[] = []
    for (let i = 0; i < 20; i++) {
      if (i === 10) await srv.cli('SCRIPT', 'FLUSH')
      answers.push(await storage.increment('ip-1', 60_000, 30, 60_000, 'default'))
    }
    expect(answers.map((a) => a.totalHits)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    // the flush cost one NOSCRIPT reply and one EVAL, nothing else
    expect(client.stats().commands - before).toBe(21)
    const stats = await srv.cli('INFO', 'commandstats')
    expect(stats).toMatch(/cmdstat_evalsha:calls=20,/)
    expect(stats).toMatch(/cmdstat_eval:calls=1,/)
  })

  test('a blocked key is answered without a round trip until its block (or window) ends', async () => {
    const c = await connect(srv.url)
    const storage = new RedisThrottlerStorage(c, { prefix: ns('blk') })
    const answers: ThrottlerStorageRecord[] = []
    for (let i = 0; i < 4; i++) answers.push(await storage.increment('ip-2', 60_000, 3, 1500, 'default'))
    expect(answers.map((a) => a.isBlocked)).toEqual([false, false, false, true])
    const commands = c.stats().commands
    const hits = c.stats().rateLimitCacheHits
    for (let i = 0; i < 30; i++) {
      expect(await storage.increment('ip-2', 60_000, 3, 1500, 'default')).toEqual({
        totalHits: 4, timeToExpire: 60, isBlocked: true, timeToBlockExpire: 2,
      })
    }
    expect(c.stats().commands).toBe(commands)
    expect(c.stats().rateLimitCacheHits).toBe(hits + 30)
    // another configuration of the same key is not answered from memory
    await storage.increment('ip-2', 60_000, 3, 1000, 'default')
    expect(c.stats().commands).toBe(commands + 1)
    await sleep(1550)
    // the block is over: the script runs again, resets the key and counts afresh
    expect(await storage.increment('ip-2', 60_000, 3, 1500, 'default')).toMatchObject({ totalHits: 1, isBlocked: false })
    expect(c.stats().commands).toBe(commands + 2)
  })

  test('zero ttl and zero blockDuration answer without a server error', async () => {
    const storage = new RedisThrottlerStorage(client, { prefix: ns('zero') })
    const a = await storage.increment('k', 0, 1, 0, 'default')
    const b = await storage.increment('k', 0, 1, 0, 'default')
    expect(a).toEqual({ totalHits: 1, timeToExpire: 0, isBlocked: false, timeToBlockExpire: 0 })
    expect(b).toEqual({ totalHits: 1, timeToExpire: 0, isBlocked: false, timeToBlockExpire: 0 })
    const c = await storage.increment('k2', 1000, 0, 0, 'default')
    expect(c).toEqual({ totalHits: 1, timeToExpire: 1, isBlocked: true, timeToBlockExpire: 1 })
  })

  test('two clients (two API instances) share one limit exactly', async () => {
    const other = await connect(srv.url)
    const prefix = ns('shared')
    const a = new RedisThrottlerStorage(client, { prefix })
    const b = new RedisThrottlerStorage(other, { prefix })
    const calls = Array.from({ length: 300 }, (_, i) => (i % 2 === 0 ? a : b).increment('ip-9', 60_000, 100, 0, 'default'))
    const records = await Promise.all(calls)
    expect(records.filter((r) => !r.isBlocked)).toHaveLength(100)
    expect(records.filter((r) => r.isBlocked)).toHaveLength(200)
    // every instance saw the other's hits: totals 1..100 handed out once each
    expect(records.filter((r) => !r.isBlocked).map((r) => r.totalHits).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 100 }, (_, i) => i + 1),
    )
  })

  test('idle records expire after everything in them is over', async () => {
    const prefix = ns('idle')
    const storage = new RedisThrottlerStorage(client, { prefix })
    await storage.increment('gone', 1000, 5, 2000, 'default')
    const keys = (await srv.cli('--scan', '--pattern', `${prefix}*`)).split('\n').filter(Boolean).sort()
    expect(keys).toEqual([`${prefix}{gone}`, `${prefix}{gone}:default`])
    for (const k of keys) {
      const ttl = Number(await srv.cli('PTTL', k))
      // between one and two 60 s graces after the last hit (1 s) is over
      expect(ttl).toBeGreaterThan(60_000)
      expect(ttl).toBeLessThanOrEqual(1000 + 2 * 60_000)
    }
  })

  test('a record keeps the entries of the names whose hits live, and drops the others when rewritten', async () => {
    const prefix = ns('names')
    const storage = new RedisThrottlerStorage(client, { prefix })
    const rec = `${prefix}{k}`
    // src/scripts/throttle.lua's record: 4 bytes of format, 6 doubles, then per
    // name t (double), its length (u32), the name, xn, h (doubles)
    const entries = async () => {
      const buf = (await client.getBuffer(rec))!
      const out: Array<{ name: string; xnAt: number }> = []
      for (let at = 52; at < buf.length; ) {
        const len = buf.readUInt32BE(at + 8)
        out.push({ name: buf.toString('utf8', at + 12, at + 12 + len), xnAt: at + 12 + len })
        at += 28 + len
      }
      return { buf, out }
    }
    await storage.increment('k', 60_000, 5, 0, 'gone')
    await storage.increment('k', 60_000, 5, 0, 'kept')
    const { buf, out } = await entries()
    expect(out.map((e) => e.name).sort()).toEqual(['gone', 'kept'])
    // as if the hits of 'gone' had expired: its list's lease (xn) in the past, the list gone
    buf.writeDoubleBE(1, out.find((e) => e.name === 'gone')!.xnAt)
    await client.command('SET', rec, buf, 'KEEPTTL')
    await client.del(`${rec}:gone`)
    await storage.increment('k', 60_000, 5, 0, 'new') // a new name: the record is written again
    expect((await entries()).out.map((e) => e.name)).toEqual(['new', 'kept'])
    expect((await storage.increment('k', 60_000, 5, 0, 'kept')).totalHits).toBe(2)
    expect((await storage.increment('k', 60_000, 5, 0, 'gone')).totalHits).toBe(1)
  })

  test('a block that outlasts its hits: another instance sees them expire, as the in-memory storage does', async () => {
    const prefix = ns('outlast')
    // two instances: the second has no memory of the block, so it asks the server
    const [first, second] = [new RedisThrottlerStorage(client, { prefix }), new RedisThrottlerStorage(client, { prefix })]
    const memory = new ThrottlerStorageService()
    try {
      const both = async (s: RedisThrottlerStorage) => [await memory.increment('k', 300, 2, 5000, 'default'), await s.increment('k', 300, 2, 5000, 'default')]
      for (let i = 0; i < 3; i++) await both(first)
      await sleep(450) // every hit has expired; the block has not
      const [m, r] = await both(second)
      expect(m).toMatchObject({ totalHits: 0, isBlocked: true })
      expect({ ...r }).toEqual({ ...m })
    } finally {
      memory.onApplicationShutdown()
    }
  })

  test('hits of a window before that expire in a bunch between two calls are all pruned', async () => {
    const storage = new RedisThrottlerStorage(client, { prefix: ns('bunch') })
    const memory = new ThrottlerStorageService()
    try {
      const both = async () => [await memory.increment('k', 1000, 100, 0, 'default'), await storage.increment('k', 1000, 100, 0, 'default')]
      await both() // t0: window 1, to t0 + 1000
      await sleep(300)
      for (let i = 0; i < 6; i++) await both() // six hits expiring at t0 + 1300
      await sleep(750) // t0 + 1050: window 2, to t0 + 2050; the first hit has expired
      await both()
      await sleep(450) // t0 + 1500: the six have expired (more than one read of the list's head)
      const [m, r] = await both()
      expect(m.totalHits).toBe(2)
      expect({ ...r }).toEqual({ ...m })
    } finally {
      memory.onApplicationShutdown()
    }
  })

  test('a hit list that emptied and filled again keeps an expiry', async () => {
    const prefix = ns('refill')
    const storage = new RedisThrottlerStorage(client, { prefix })
    await storage.increment('k', 200, 5, 1000, 'default')
    await sleep(300) // every hit expired: the next call empties the list and starts it again
    await storage.increment('k', 200, 5, 1000, 'default')
    const ttl = Number(await srv.cli('PTTL', `${prefix}{k}:default`))
    expect(ttl).toBeGreaterThan(60_000)
    expect(ttl).toBeLessThanOrEqual(200 + 2 * 60_000)
  })

  test('a busy hit list always outlives its newest hit (its expiry lease is renewed as hits come)', async () => {
    // With a grace of 200 ms, the lease a list gets covers its hits for only
    // 200 ms of traffic: the calls after that must push it forward, also those
    // that otherwise only append their hit.
    const prefix = ns('lease')
    const storage = new RedisThrottlerStorage(client, { prefix, idleGraceMs: 200 })
    const hits = `${prefix}{k}:default`
    const short: number[] = []
    const until = Date.now() + 1000
    let n = 0
    // at least 20 hits, however slow the machine: the list must outlive its 200 ms grace
    while (Date.now() < until || n < 20) {
      const r = await storage.increment('k', 2000, 1000, 0, 'default')
      expect(r.totalHits).toBe(++n) // no hit expires within the run: none lost either
      const pttl = Number(await srv.cli('PTTL', hits))
      if (pttl < 2000) short.push(pttl)
      await sleep(10)
    }
    expect(short).toEqual([])
  })

  test('bad arguments reject with ERR_INVALID_ARGUMENT before anything is sent', async () => {
    const storage = new RedisThrottlerStorage(client)
    const before = client.stats().commands
    for (const args of [
      ['', 1000, 1, 0, 'default'],
      ['k', NaN, 1, 0, 'default'],
      ['k', 1000, Infinity, 0, 'default'],
      ['k', 1000, 1, '5', 'default'],
      ['k', 1000, 1, 0, 7],
    ] as const) {
      expect(await rejection((storage.increment as any)(...args))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    }
    expect(client.stats().commands).toBe(before)
    expect(() => new RedisThrottlerStorage(client, { onUnavailable: 'maybe' as any })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    )
    expect(() => new RedisThrottlerStorage(client, { prefx: 'x' } as any)).toThrow(/unknown option "prefx"/)
    expect(() => new RedisThrottlerStorage({} as any)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})

// ---- batching: the calls of one tick in one script call --------------------------------------

type Args = [key: string, ttl: number, limit: number, block: number, name: string]

/** `n` copies of `args`. */
const times = (n: number, args: Args): Args[] => Array.from({ length: n }, () => args)

/** Interleaves the lists (one of each in turn), keeping each list's own order. */
function interleave<T>(...lists: T[][]): T[] {
  const out: T[] = []
  for (let i = 0; out.length < lists.reduce((n, l) => n + l.length, 0); i++) for (const l of lists) if (i < l.length) out.push(l[i])
  return out
}

describe('the calls of one tick run in one script call', () => {
  test('in call order: the same records as the same calls one after another, and as the in-memory storage', async () => {
    const batched = new RedisThrottlerStorage(client, { prefix: ns('batch') })
    const oneByOne = new RedisThrottlerStorage(client, { prefix: ns('seq') })
    const memory = new ThrottlerStorageService()
    const calls = interleave<Args>(
      times(8, ['a', 60_500, 3, 1550, 'default']), // the 4th hit blocks; hits in the block are not counted
      times(5, ['b', 60_500, 2, 0, 'default']), // incrementWithoutBlock
      interleave(times(4, ['c', 60_500, 2, 1550, 'short']), times(4, ['c', 60_500, 4, 3050, 'long'])), // two names, one record
      times(3, ['d', 0, 1, 0, 'default']), // ttl 0
      times(2, ['e', 1050, 0, 550, 'default']), // limit 0
      times(3, ['{f}', 60_500, 1, 1550, 'default']), // a brace in the key
    )
    const before = client.stats().commands
    const together = await Promise.all(calls.map((a) => batched.increment(...a)))
    expect(client.stats().commands - before).toBe(1)
    const sequential: ThrottlerStorageRecord[] = []
    const inMemory: ThrottlerStorageRecord[] = []
    try {
      for (const a of calls) {
        sequential.push(await oneByOne.increment(...a))
        inMemory.push({ ...(await memory.increment(...a)) })
      }
    } finally {
      memory.onApplicationShutdown()
    }
    const compared = (other: ThrottlerStorageRecord[]): Compared[] =>
      calls.map(([key, ttl, limit, block, name], i) => ({ step: { at: 0, key, ttl, limit, block, name }, memory: other[i], redis: { ...together[i] } }))
    expect(mismatches(compared(sequential))).toEqual([])
    expect(mismatches(compared(inMemory))).toEqual([])
    // the sequence went through the states it is about
    expect(together.filter((_, i) => calls[i][0] === 'a').map((r) => [r.totalHits, r.isBlocked])).toEqual([
      [1, false], [2, false], [3, false], [4, true], [4, true], [4, true], [4, true], [4, true],
    ])
  })

  test(`one script call per tick, at most ${THROTTLE_BATCH} increments per turn of the event loop; in call order`, async () => {
    const storage = new RedisThrottlerStorage(client, { prefix: ns('tick') })
    await storage.increment('warm', 60_000, 10, 0, 'default') // the script is loaded
    let before = client.stats().commands
    let records = await Promise.all(Array.from({ length: 10 }, (_, i) => storage.increment(`k${i}`, 60_000, 1000, 0, 'default')))
    expect(client.stats().commands - before).toBe(1)
    expect(records.map((r) => r.totalHits)).toEqual(Array(10).fill(1))
    // Start on a fresh turn: a server that answers within microseconds (memory://) can
    // resolve the calls above in this same turn, whose budget they have used in part.
    await new Promise((r) => setImmediate(r))
    before = client.stats().commands
    records = await Promise.all(Array.from({ length: 150 }, (_, i) => storage.increment(`k${i % 50}`, 60_000, 1000, 0, 'default')))
    expect(THROTTLE_BATCH).toBeLessThan(75)
    expect(client.stats().commands - before).toBe(Math.ceil(150 / THROTTLE_BATCH)) // one per turn
    // k0…k9 had one hit, k10…k49 none: hits 2-4 and 1-3, handed out in call order
    expect(records.map((r) => r.totalHits)).toEqual(Array.from({ length: 150 }, (_, i) => Math.floor(i / 50) + (i % 50 < 10 ? 2 : 1)))
    before = client.stats().commands
    for (let tick = 0; tick < 5; tick++) {
      await Promise.all([storage.increment('k0', 60_000, 1000, 0, 'default'), storage.increment('k1', 60_000, 1000, 0, 'other')])
    }
    expect(client.stats().commands - before).toBe(5)
    expect((await storage.increment('k0', 60_000, 1000, 0, 'default')).totalHits).toBe(10)
  })

  test('a SCRIPT FLUSH during a busy run neither loses nor doubles a hit', async () => {
    const storage = new RedisThrottlerStorage(client, { prefix: ns('flush') })
    await storage.increment('warm', 60_000, 10, 0, 'default')
    await srv.cli('CONFIG', 'RESETSTAT')
    const before = client.stats().commands
    const flushes: Array<Promise<string>> = []
    const ticks: ThrottlerStorageRecord[][] = []
    for (let tick = 0; tick < 40; tick++) {
      // two flushes land somewhere in the run (redis-cli takes a while); both are over by tick 30
      if (tick === 5 || tick === 15) flushes.push(srv.cli('SCRIPT', 'FLUSH'))
      if (tick === 30) await Promise.all(flushes)
      ticks.push(await Promise.all(Array.from({ length: 25 }, (_, i) => storage.increment(`k${i % 5}`, 60_000, 1000, 0, 'default'))))
    }
    // every key: 5 hits per tick, counted once each, in call order
    for (let k = 0; k < 5; k++) {
      const totals = ticks.flatMap((t) => t.filter((_, i) => i % 5 === k).map((r) => r.totalHits))
      expect(totals).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
    }
    const stats = await srv.cli('INFO', 'commandstats')
    const evals = Number(/cmdstat_eval:calls=(\d+),/.exec(stats)?.[1] ?? 0)
    const [, evalshas, noscripts] = /cmdstat_evalsha:calls=(\d+),.*failed_calls=(\d+)/.exec(stats)!.map(Number)
    // each flush cost one EVAL per script call it caught in flight (two when a tick was
    // split, see below), each after a NOSCRIPT reply, and nothing else was resent.
    // (memory:// was seen counting one or two failed EVALSHAs more than EVALs sent.)
    expect(evals).toBeGreaterThanOrEqual(1)
    expect(evals).toBeLessThanOrEqual(4)
    expect(noscripts).toBeGreaterThanOrEqual(evals)
    expect(client.stats().commands - before).toBe(evalshas + evals)
    // one script call per tick (two when a tick found this turn's THROTTLE_BATCH partly used by the tick before)
    expect(evalshas).toBeGreaterThanOrEqual(40)
    expect(evalshas).toBeLessThanOrEqual(80)
  })

  test('an increment that fails (WRONGTYPE) fails alone: the others of its script call are counted', async () => {
    const prefix = ns('wrong')
    const storage = new RedisThrottlerStorage(client, { prefix })
    await client.set(`${prefix}{bad}`, 'not a record')
    await client.command('HSET', `${prefix}{hashed}`, 'f', 'v')
    const before = client.stats().commands
    const [a, bad, b, c, hashed] = await Promise.allSettled([
      storage.increment('good', 60_000, 5, 0, 'default'),
      storage.increment('bad', 60_000, 5, 0, 'default'),
      storage.increment('good', 60_000, 5, 0, 'default'),
      storage.increment('good', 60_000, 5, 0, 'other'),
      storage.increment('hashed', 60_000, 5, 0, 'default'),
    ])
    expect(client.stats().commands - before).toBe(1)
    expect(a).toMatchObject({ status: 'fulfilled', value: { totalHits: 1 } })
    for (const failed of [bad, hashed]) {
      expect(failed).toMatchObject({ status: 'rejected', reason: { code: 'ERR_REPLY', message: expect.stringMatching(/WRONGTYPE/) } })
    }
    expect(b).toMatchObject({ status: 'fulfilled', value: { totalHits: 2 } })
    expect(c).toMatchObject({ status: 'fulfilled', value: { totalHits: 1 } })
    // nothing of the failed ones was written
    expect(await client.get(`${prefix}{bad}`)).toBe('not a record')
    expect(await client.command('HGETALL', `${prefix}{hashed}`)).toEqual(['f', 'v'])
    for (const k of ['bad', 'hashed']) expect(await client.exists(`${prefix}{${k}}:default`)).toBe(0)
  })

  test('a record of another format (another build of the script, or any string) fails with WRONGTYPE, not misread', async () => {
    const prefix = ns('format')
    const storage = new RedisThrottlerStorage(client, { prefix })
    for (let i = 0; i < 3; i++) await storage.increment('k', 60_000, 5, 0, 'default')
    const rec = `${prefix}{k}`
    const buf = (await client.getBuffer(rec))!
    expect(buf.subarray(0, 4).toString('latin1')).toBe('thr\x01')
    // the same record as a later format would write it; then a long string of something else
    for (const value of [Buffer.concat([Buffer.from('thr\x02', 'latin1'), buf.subarray(4)]), Buffer.alloc(200, 7)]) {
      await client.command('SET', rec, value, 'KEEPTTL')
      const r = await rejection(storage.increment('k', 60_000, 5, 0, 'default'))
      expect(r).toMatchObject({ code: 'ERR_REPLY', message: expect.stringMatching(/WRONGTYPE/) })
      expect(await client.getBuffer(rec)).toEqual(value)
      expect(await client.command('LLEN', `${rec}:default`)).toBe(3)
    }
  })

  test('times beyond 2^53 (absurd ttls) come back as the in-memory storage has them, and the connection stays', async () => {
    const storage = new RedisThrottlerStorage(client, { prefix: ns('huge') })
    const memory = new ThrottlerStorageService()
    const calls: Args[] = [
      ['neg', -9.223372036854776e21, 0, 0, 'default'],
      ['neg', -9.223372036854776e21, 0, 0, 'default'],
      ['neg2', -1e300, 5, 1000, 'default'],
    ]
    const reconnects = client.stats().reconnects
    const [far] = await Promise.allSettled([storage.increment('far', 1e300, 5, 0, 'default'), ...calls.map((a) => storage.increment(...a))])
    // an expiry that far is more than Redis takes (PEXPIREAT): that call alone fails
    expect(far).toMatchObject({ status: 'rejected', reason: { code: 'ERR_REPLY' } })
    const together = await Promise.all(calls.map((a) => storage.increment(...a)))
    const inMemory: ThrottlerStorageRecord[] = []
    try {
      for (const a of [...calls, ...calls]) inMemory.push({ ...(await memory.increment(...a)) })
    } finally {
      memory.onApplicationShutdown()
    }
    expect(client.stats().reconnects).toBe(reconnects)
    expect(together.map((r) => [r.totalHits, r.isBlocked, r.timeToExpire])).toEqual(inMemory.slice(3).map((r) => [r.totalHits, r.isBlocked, r.timeToExpire]))
    expect(together[0].timeToExpire).toBe(Math.ceil(-9.223372036854776e21 / 1000))
  })

  test('batchAcrossSlots must be a boolean, idleGraceMs a finite number >= 0', () => {
    expect(() => new RedisThrottlerStorage(client, { batchAcrossSlots: 'yes' as any })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/batchAcrossSlots/) }),
    )
    for (const idleGraceMs of [-1, NaN, Infinity, '5' as any]) {
      expect(() => new RedisThrottlerStorage(client, { idleGraceMs })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/idleGraceMs/) }),
      )
    }
  })
})

describe('on a Redis Cluster node', () => {
  realRedisTest('the script keys of every call share one slot, braces in keys included', async () => {
    const node = await startRedis({ cluster: true })
    await node.cli('CLUSTER', 'ADDSLOTSRANGE', 0, 16383)
    await eventually(async () => expect(await node.cli('CLUSTER', 'INFO')).toMatch(/cluster_state:ok/), 10_000)
    const c = await connect(node.url)
    const prefixed = await connect({ url: node.url, keyPrefix: 'app{1}:' })
    // A script whose keys are in different slots is refused by a cluster node:
    // this is what the hash tags prevent.
    expect(await rejection(c.runScript('throttle', ['a', 'b'], [60_000, '', 1000, 1, 0, 'default']))).toMatchObject({
      code: 'ERR_REPLY',
      message: expect.stringMatching(/CROSSSLOT/),
    })
    for (const cl of [c, prefixed]) {
      const storage = new RedisThrottlerStorage(cl)
      for (const key of ['plain', 'a}b', '{x}y', '}', '{', '~tilde', 'ünï']) {
        for (const name of ['default', 'other{z}']) {
          await expect(storage.increment(key, 1000, 5, 1000, name)).resolves.toMatchObject({ totalHits: 1 })
        }
      }
    }
    await node.stop()
  })
})

describe('batching on a Redis Cluster node', () => {
  realRedisTest('batchAcrossSlots: false sends one script call per slot; left true, a CROSSSLOT refusal switches to that', async () => {
    const node = await startRedis({ cluster: true })
    await node.cli('CLUSTER', 'ADDSLOTSRANGE', 0, 16383)
    await eventually(async () => expect(await node.cli('CLUSTER', 'INFO')).toMatch(/cluster_state:ok/), 10_000)
    const c = await connect(node.url)
    // 'k0' and another key in one slot, and two keys in two other slots: three slots
    let twin = 1
    while (keySlot(`k${twin}`) !== keySlot('k0')) twin++
    const keys = ['k0', `k${twin}`, 'x', 'y']
    expect(new Set(keys.map((k) => keySlot(k))).size).toBe(3)
    const tick = (s: RedisThrottlerStorage) =>
      Promise.all(keys.flatMap((k) => [s.increment(k, 60_000, 5, 0, 'default'), s.increment(k, 60_000, 5, 0, 'other')]))
    const perSlot = new RedisThrottlerStorage(c, { prefix: 'p1:', batchAcrossSlots: false })
    await perSlot.increment('warm', 60_000, 5, 0, 'default') // the script is loaded
    let before = c.stats().commands
    expect((await tick(perSlot)).map((r) => r.totalHits)).toEqual(Array(8).fill(1))
    expect(c.stats().commands - before).toBe(3)

    const auto = new RedisThrottlerStorage(c, { prefix: 'p2:' })
    before = c.stats().commands
    expect((await tick(auto)).map((r) => r.totalHits)).toEqual(Array(8).fill(1))
    expect(c.stats().commands - before).toBe(1 + 3) // refused (nothing ran), then one per slot
    before = c.stats().commands
    expect((await tick(auto)).map((r) => r.totalHits)).toEqual(Array(8).fill(2))
    expect(c.stats().commands - before).toBe(3)
    await node.stop()
  })
})

// ---- fail policy -------------------------------------------------------------------------------

describe('when Redis is unavailable', () => {
  realRedisTest("'allow' (default) and 'deny' answer for a stopped server; the client recovers; nothing is replayed", async () => {
    const down = await startRedis()
    const c = await connect({ url: down.url, commandTimeoutMs: 300, reconnect: { minDelayMs: 10, maxDelayMs: 50 } })
    const allow = new RedisThrottlerStorage(c)
    const deny = new RedisThrottlerStorage(c, { onUnavailable: 'deny' })
    for (let i = 0; i < 3; i++) expect((await allow.increment('ip', 60_000, 100, 0, 'default')).totalHits).toBe(i + 1)
    await down.kill()
    for (let i = 0; i < 5; i++) {
      expect(await allow.increment('ip', 60_000, 100, 0, 'default')).toEqual({
        totalHits: 0, timeToExpire: 60, isBlocked: false, timeToBlockExpire: 0, reason: 'unavailable',
      })
      expect(await deny.increment('ip', 60_000, 100, 0, 'default')).toEqual({
        totalHits: 101, timeToExpire: 60, isBlocked: true, timeToBlockExpire: 1, reason: 'unavailable',
      })
    }
    await down.restart() // no persistence: the server comes back empty
    const back = await eventually(async () => {
      const r = await allow.increment('ip', 60_000, 100, 0, 'default')
      if (r.reason) throw new Error('still unavailable')
      return r
    }, 10_000, 50)
    // Counted once, from scratch: none of the 10 calls made during the outage reached the server.
    expect(back).toMatchObject({ totalHits: 1, isBlocked: false })
    expect((await allow.increment('ip', 60_000, 100, 0, 'default')).totalHits).toBe(2)
    await down.stop()
  })

  realRedisTest('every call of a script call gets its own fail-policy answer', async () => {
    const down = await startRedis()
    const c = await connect({ url: down.url, commandTimeoutMs: 300 })
    const deny = new RedisThrottlerStorage(c, { onUnavailable: 'deny' })
    await deny.increment('warm', 60_000, 5, 0, 'default')
    await down.kill()
    const before = c.stats().commands
    expect(await Promise.all([deny.increment('a', 2_500, 5, 0, 'default'), deny.increment('b', 60_000, 100, 1000, 'other')])).toEqual([
      { totalHits: 6, timeToExpire: 3, isBlocked: true, timeToBlockExpire: 1, reason: 'unavailable' },
      { totalHits: 101, timeToExpire: 60, isBlocked: true, timeToBlockExpire: 1, reason: 'unavailable' },
    ])
    expect(c.stats().commands - before).toBeLessThanOrEqual(1)
    await down.stop()
  })

  realRedisTest('a server slower than commandTimeoutMs answers by the policy', async () => {
    const slow = await startRedis()
    const c = await connect({ url: slow.url, commandTimeoutMs: 200 })
    const deny = new RedisThrottlerStorage(c, { onUnavailable: 'deny' })
    await deny.increment('ip', 60_000, 100, 0, 'default')
    slow.pause()
    try {
      const start = performance.now()
      const r = await deny.increment('ip', 60_000, 100, 0, 'default')
      expect(r).toMatchObject({ isBlocked: true, reason: 'unavailable' })
      expect(performance.now() - start).toBeLessThan(1500)
    } finally {
      slow.resume()
    }
    await slow.stop()
  })

  test('other errors are not hidden by the policy', async () => {
    const c = await connect(srv.url)
    const storage = new RedisThrottlerStorage(c)
    const prefix = ns('wrongtype')
    const s2 = new RedisThrottlerStorage(c, { prefix })
    await c.set(`${prefix}{k}`, 'not a record')
    expect(await rejection(s2.increment('k', 1000, 1, 0, 'default'))).toMatchObject({ code: 'ERR_REPLY' })
    await c.close()
    expect(await rejection(storage.increment('k', 1000, 1, 0, 'default'))).toMatchObject({ code: 'ERR_CLOSED' })
  })
})

// ---- behind ThrottlerGuard in a Nest app ---------------------------------------------------------

class HelloController {
  hello() {
    return { ok: true }
  }
}
Controller()(HelloController)
Get('hello')(HelloController.prototype, 'hello', Object.getOwnPropertyDescriptor(HelloController.prototype, 'hello')!)

const apps: INestApplication[] = []
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()))
})

async function nestApp(redis: RedisClient, prefix: string, onUnavailable?: 'allow' | 'deny'): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      ThrottlerModule.forRootAsync({
        useFactory: () => ({
          throttlers: [
            { name: 'short', ttl: 10_000, limit: 3 },
            { name: 'long', ttl: 60_000, limit: 5 },
          ],
          storage: new RedisThrottlerStorage(redis, { prefix, onUnavailable }),
        }),
      }),
    ],
    controllers: [HelloController],
    providers: [{ provide: APP_GUARD, useClass: ThrottlerGuard }],
  }).compile()
  const app = moduleRef.createNestApplication({ logger: false })
  await app.init()
  apps.push(app)
  return app
}

describe('ThrottlerGuard with RedisThrottlerStorage', () => {
  test('allows the limit, then 429 with Retry-After; the X-RateLimit headers count down', async () => {
    const app = await nestApp(client, ns('nest'))
    const server = app.getHttpServer()
    for (let i = 1; i <= 3; i++) {
      const res = await request(server).get('/hello').expect(200)
      expect(res.body).toEqual({ ok: true })
      expect(res.headers['x-ratelimit-limit-short']).toBe('3')
      expect(res.headers['x-ratelimit-remaining-short']).toBe(String(3 - i))
      expect(res.headers['x-ratelimit-reset-short']).toBe('10')
      expect(res.headers['x-ratelimit-limit-long']).toBe('5')
      expect(res.headers['x-ratelimit-remaining-long']).toBe(String(5 - i))
    }
    const denied = await request(server).get('/hello').expect(429)
    expect(denied.headers['retry-after-short']).toBe('10') // blockDuration defaults to the ttl
    expect(denied.body).toMatchObject({ statusCode: 429 })
    await request(server).get('/hello').expect(429)
  })

  test('two app instances with their own clients share one limit', async () => {
    const prefix = ns('nest2')
    const other = await connect(srv.url)
    const a = (await nestApp(client, prefix)).getHttpServer()
    const b = (await nestApp(other, prefix)).getHttpServer()
    await request(a).get('/hello').expect(200)
    await request(b).get('/hello').expect(200)
    const third = await request(a).get('/hello').expect(200)
    expect(third.headers['x-ratelimit-remaining-short']).toBe('0')
    await request(b).get('/hello').expect(429)
    await request(a).get('/hello').expect(429)
  })

  realRedisTest('a stopped Redis lets requests through by default, or refuses them with onUnavailable: deny', async () => {
    const down = await startRedis()
    const c = await connect({ url: down.url, commandTimeoutMs: 300 })
    const open = (await nestApp(c, ns('nest3'))).getHttpServer()
    const closed = (await nestApp(c, ns('nest4'), 'deny')).getHttpServer()
    await request(open).get('/hello').expect(200)
    await request(closed).get('/hello').expect(200)
    await down.kill()
    for (let i = 0; i < 6; i++) await request(open).get('/hello').expect(200)
    const refused = await request(closed).get('/hello').expect(429)
    expect(refused.headers['retry-after-short']).toBe('1')
    await down.stop()
  })
})
