// client.rateLimit / rateLimitAll against real redis-servers: GCRA, fixed and
// sliding windows, atomic multi-rule checks, the denied-key cache, the fail
// policy, and rateLimitHeaders.
import { RedisClient, rateLimitHeaders } from '../lib'
import type { RateLimitResult, RateLimitRule } from '../lib'
import { ScriptPacer } from '../lib/core/pacer'
import { DeniedCache, SCRIPT_BATCH } from '../lib/ratelimit/ratelimit'
import { startRedis, stopAll, RedisServer } from './harness'
import { closeAll, connect, eventually, ns, realRedisTest, rejection, sleep } from './helpers'

// These cases depend on wall-clock timing against a live server (window edges, a 50 ms
// propagation bound); on a loaded 2-core CI machine a late timer can miss one, so a
// failure is retried (and logged) before it counts.
jest.retryTimes(2, { logErrorsBeforeRetry: true })

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

/** The server's clock in ms (with the microseconds as fraction). */
async function serverMs(c: RedisClient = client): Promise<number> {
  const [s, us] = (await c.command('TIME')) as [string, string]
  return Number(s) * 1000 + Number(us) / 1000
}

/** Waits until the server's clock is `offsetMs` into the next window of `windowMs` (epoch-aligned). */
async function alignToNextWindow(windowMs: number, offsetMs: number): Promise<void> {
  const now = await serverMs()
  await sleep(windowMs - (now % windowMs) + offsetMs)
}

/** Waits, if needed, so that the next `marginMs` stay inside one window of `windowMs`. */
async function awayFromBoundary(windowMs: number, marginMs: number): Promise<void> {
  const into = (await serverMs()) % windowMs
  if (windowMs - into < marginMs) await sleep(windowMs - into + 10)
}

const ALGORITHMS = ['gcra', 'fixed-window', 'sliding-window'] as const

// ---- validation -------------------------------------------------------------------------

describe('bad rules', () => {
  const bad: Array<[string, unknown]> = [
    ['limit 0', { limit: 0, windowMs: 1000 }],
    ['negative limit', { limit: -5, windowMs: 1000 }],
    ['NaN limit', { limit: NaN, windowMs: 1000 }],
    ['fractional limit', { limit: 2.5, windowMs: 1000 }],
    ['string limit', { limit: '10', windowMs: 1000 }],
    ['window 0', { limit: 10, windowMs: 0 }],
    ['NaN window', { limit: 10, windowMs: NaN }],
    ['infinite window', { limit: 10, windowMs: Infinity }],
    ['missing window', { limit: 10 }],
    ['cost above the burst', { limit: 10, windowMs: 1000, burst: 2, cost: 3 }],
    ['cost above the limit (gcra, burst = limit)', { limit: 10, windowMs: 1000, cost: 11 }],
    ['cost above the limit (fixed window)', { limit: 10, windowMs: 1000, algorithm: 'fixed-window', cost: 11 }],
    ['negative cost', { limit: 10, windowMs: 1000, cost: -1 }],
    ['NaN cost', { limit: 10, windowMs: 1000, cost: NaN }],
    ['burst 0', { limit: 10, windowMs: 1000, burst: 0 }],
    ['burst on a window algorithm', { limit: 10, windowMs: 1000, algorithm: 'sliding-window', burst: 5 }],
    ['unknown algorithm', { limit: 10, windowMs: 1000, algorithm: 'leaky' }],
    ['negative blockMs', { limit: 10, windowMs: 1000, blockMs: -1 }],
    ['empty name', { limit: 10, windowMs: 1000, name: '' }],
    ['bad onUnavailable', { limit: 10, windowMs: 1000, onUnavailable: 'maybe' }],
    ['unknown field', { limit: 10, windowMs: 1000, windowSize: 5 }],
    ['not an object', 10],
    ['null', null],
  ]
  test.each(bad)('%s rejects with ERR_INVALID_ARGUMENT before anything is sent', async (_, rule) => {
    const before = client.stats().commands
    expect(await rejection(client.rateLimit('k', rule as RateLimitRule))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(await rejection(client.rateLimitAll('k', [{ limit: 1, windowMs: 1000 }, rule as RateLimitRule]))).toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    })
    expect(client.stats().commands).toBe(before)
  })

  test('bad keys and rule lists', async () => {
    const before = client.stats().commands
    for (const p of [
      client.rateLimit('', { limit: 1, windowMs: 1000 }),
      client.rateLimit(42 as any, { limit: 1, windowMs: 1000 }),
      client.rateLimitAll('k', []),
      client.rateLimitAll('k', { limit: 1, windowMs: 1000 } as any),
      // two rules with one identity would count each request twice in one state
      client.rateLimitAll('k', [{ limit: 1, windowMs: 1000 }, { limit: 1, windowMs: 1000 }]),
      client.rateLimitAll('k', [{ limit: 1, windowMs: 1000, name: 'a' }, { limit: 5, windowMs: 9000, name: 'a' }]),
    ]) {
      expect(await rejection(p)).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    }
    expect(client.stats().commands).toBe(before)
  })
})

// ---- exactness under concurrency --------------------------------------------------------------

describe('exact counts', () => {
  test.each(ALGORITHMS)('%s: 1000 concurrent calls against a limit of 100 allow exactly 100', async (algorithm) => {
    const rule: RateLimitRule = { limit: 100, windowMs: 3_600_000, algorithm }
    await awayFromBoundary(rule.windowMs, 10_000)
    const key = ns('c1000')
    const results = await Promise.all(Array.from({ length: 1000 }, () => client.rateLimit(key, rule)))
    const allowed = results.filter((r) => r.allowed)
    expect(allowed).toHaveLength(100)
    expect(allowed.map((r) => r.remaining).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i))
    expect(results.filter((r) => !r.allowed).every((r) => r.reason === 'limit' && r.retryAfterMs > 0)).toBe(true)
  })

  test.each(ALGORITHMS)('%s: two clients (two API instances) share one limit exactly', async (algorithm) => {
    const other = await connect(srv.url)
    const rule: RateLimitRule = { limit: 100, windowMs: 3_600_000, algorithm }
    await awayFromBoundary(rule.windowMs, 10_000)
    // concurrently: 300 calls through both, exactly 100 pass
    const key = ns('two')
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => (i % 2 ? client : other).rateLimit(key, rule)))
    expect(results.filter((r) => r.allowed)).toHaveLength(100)
    // in turns: each instance sees the other's calls
    const key2 = ns('turns')
    const small: RateLimitRule = { limit: 10, windowMs: 3_600_000, algorithm }
    const seen: Array<[string, boolean, number]> = []
    for (let i = 0; i < 14; i++) {
      const [name, c] = i % 2 ? ['b', other] : ['a', client]
      const r = await (c as RedisClient).rateLimit(key2, small)
      seen.push([name as string, r.allowed, r.remaining])
    }
    expect(seen).toEqual([
      ['a', true, 9], ['b', true, 8], ['a', true, 7], ['b', true, 6], ['a', true, 5],
      ['b', true, 4], ['a', true, 3], ['b', true, 2], ['a', true, 1], ['b', true, 0],
      ['a', false, 0], ['b', false, 0], ['a', false, 0], ['b', false, 0],
    ])
  })

  test('rateLimitAll: 10 per second and 1000 per day in one atomic check; when one denies, none is charged', async () => {
    const key = ns('all')
    const perSecond: RateLimitRule = { limit: 10, windowMs: 1000, burst: 10 }
    const perDay: RateLimitRule = { limit: 1000, windowMs: 86_400_000, name: 'daily' }
    const results = await Promise.all(Array.from({ length: 50 }, () => client.rateLimitAll(key, [perSecond, perDay])))
    const allowed = results.filter(([s, d]) => s.allowed && d.allowed)
    // within a few ms, GCRA's 10/s allows its burst of 10 and perhaps the one that has since dripped in
    expect(allowed.length).toBeGreaterThanOrEqual(10)
    expect(allowed.length).toBeLessThanOrEqual(11)
    for (const [s, d] of results) {
      expect(s.allowed).toBe(d.allowed) // all pass or none
      if (!s.allowed) {
        expect(s.reason).toBe('limit')
        expect(d.reason).toBe('other-rule')
        expect(d.name).toBe('daily')
      }
    }
    // the day was charged only for the allowed calls: 1000 - allowed left
    const day = await client.rateLimit(key, { ...perDay, cost: 0 })
    expect(day.remaining).toBe(1000 - allowed.length)
  })

  test('rateLimitAll under 1000 concurrent calls: the tighter rule decides, the other is charged exactly as often', async () => {
    const key = ns('all1000')
    const hourly: RateLimitRule = { limit: 100, windowMs: 3_600_000, algorithm: 'fixed-window' }
    const daily: RateLimitRule = { limit: 50, windowMs: 86_400_000, algorithm: 'sliding-window' }
    await awayFromBoundary(86_400_000, 10_000)
    const results = await Promise.all(Array.from({ length: 1000 }, () => client.rateLimitAll(key, [hourly, daily])))
    expect(results.filter(([h]) => h.allowed)).toHaveLength(50)
    const h = await client.rateLimit(key, { ...hourly, cost: 0 })
    expect(h.remaining).toBe(50)
  })
})

// ---- algorithms ------------------------------------------------------------------------------

describe('GCRA', () => {
  test('spaces requests windowMs / limit apart beyond the burst', async () => {
    const key = ns('gcra')
    const rule: RateLimitRule = { limit: 10, windowMs: 1000, burst: 1 } // one every 100 ms
    const other = await connect(srv.url) // no denied-key cache in the way of the measurement
    const allowedAt: number[] = []
    const start = performance.now()
    while (performance.now() - start < 1500) {
      const r = await other.rateLimit(key, rule)
      if (r.allowed) {
        allowedAt.push(performance.now())
        expect(r.remaining).toBe(0)
      } else {
        expect(r.retryAfterMs).toBeGreaterThan(0)
        expect(r.retryAfterMs).toBeLessThanOrEqual(100)
        await sleep(Math.max(1, r.retryAfterMs - 5)) // a little early on purpose: must be denied again
      }
    }
    // at most one per 100 ms (1 + 1500 / 100), and not much fewer when the caller keeps up
    expect(allowedAt.length).toBeLessThanOrEqual(16)
    expect(allowedAt.length).toBeGreaterThanOrEqual(12)
    // spaced by the server: on average at least 100 ms apart as seen here (single
    // intervals can look shorter when one reply was delayed on its way back)
    expect((allowedAt[allowedAt.length - 1] - allowedAt[0]) / (allowedAt.length - 1)).toBeGreaterThan(95)
  })

  test('a burst passes at once, then one per interval; cost counts as several requests', async () => {
    const key = ns('burst')
    const rule: RateLimitRule = { limit: 10, windowMs: 1000, burst: 5 }
    const remaining: number[] = []
    for (let i = 0; i < 5; i++) remaining.push((await client.rateLimit(key, rule)).remaining)
    expect(remaining).toEqual([4, 3, 2, 1, 0])
    const denied = await client.rateLimit(key, rule)
    expect(denied).toMatchObject({ allowed: false, reason: 'limit', remaining: 0 })
    expect(denied.retryAfterMs).toBeGreaterThan(50)
    expect(denied.retryAfterMs).toBeLessThanOrEqual(100)
    expect(denied.resetMs).toBeGreaterThan(350)
    expect(denied.resetMs).toBeLessThanOrEqual(500)

    const key2 = ns('cost')
    const heavy: RateLimitRule = { limit: 10, windowMs: 1000, cost: 3 }
    const seen = [await client.rateLimit(key2, heavy), await client.rateLimit(key2, heavy), await client.rateLimit(key2, heavy)]
    expect(seen.map((r) => r.remaining)).toEqual([7, 4, 1])
    const no = await client.rateLimit(key2, heavy)
    expect(no.allowed).toBe(false)
    expect(no.retryAfterMs).toBeGreaterThan(150) // two more units at 100 ms each
    expect(no.retryAfterMs).toBeLessThanOrEqual(200)
    // a cheaper request still fits in what is left
    expect(await client.rateLimit(key2, { ...heavy, cost: 1 })).toMatchObject({ allowed: true, remaining: 0 })
  })

  test('a denied request writes nothing', async () => {
    const key = ns('nowrite')
    const rule: RateLimitRule = { limit: 2, windowMs: 60_000 }
    const other = await connect(srv.url) // bypasses the first client's denied-key cache
    await client.rateLimit(key, rule)
    await client.rateLimit(key, rule)
    const stateKey = `rl:{${key}}:g:2/60000`
    const before = await srv.cli('HGETALL', stateKey)
    expect(before).toMatch(/^t\n\d+\.\d{3}$/)
    for (let i = 0; i < 5; i++) expect((await other.rateLimit(key, rule)).allowed).toBe(false)
    expect(await srv.cli('HGETALL', stateKey)).toBe(before)
  })
})

describe('windows (epoch-aligned, on the server clock)', () => {
  test('fixed window: the count resets at each multiple of windowMs of the server clock', async () => {
    // the caller's clock is wrong by a day: nothing may depend on it
    const spy = jest.spyOn(Date, 'now').mockImplementation(() => 86_400_000)
    try {
      const key = ns('fixed')
      const rule: RateLimitRule = { limit: 3, windowMs: 1000, algorithm: 'fixed-window' }
      await alignToNextWindow(1000, 100)
      const r = [await client.rateLimit(key, rule), await client.rateLimit(key, rule), await client.rateLimit(key, rule)]
      expect(r.map((x) => x.remaining)).toEqual([2, 1, 0])
      const now = await serverMs()
      const denied = await client.rateLimit(key, rule)
      expect(denied).toMatchObject({ allowed: false, reason: 'limit', remaining: 0 })
      // retry exactly at the next whole second of the server clock
      const boundary = Math.ceil(now / 1000) * 1000
      expect(Math.abs(now + denied.retryAfterMs - boundary)).toBeLessThan(25)
      expect(denied.resetMs).toBe(denied.retryAfterMs)
      await sleep(denied.retryAfterMs + 20)
      expect(await client.rateLimit(key, rule)).toMatchObject({ allowed: true, remaining: 2 })
    } finally {
      spy.mockRestore()
    }
  })

  test('sliding window: the previous window counts by the share of it still covered', async () => {
    const key = ns('sliding')
    const rule: RateLimitRule = { limit: 4, windowMs: 1000, algorithm: 'sliding-window' }
    const other = await connect(srv.url) // no denied-key cache between the checks
    await alignToNextWindow(1000, 50)
    for (let i = 0; i < 4; i++) expect((await client.rateLimit(key, rule)).allowed).toBe(true)
    expect((await other.rateLimit(key, rule)).allowed).toBe(false)
    // 350 ms into the next window: 4 × 0.65 = 2.6 still count, so one more fits (and does
    // from 250 ms to 500 ms in: a timer firing early or late by 100 ms changes nothing)
    await alignToNextWindow(1000, 350)
    const one = await other.rateLimit(key, rule)
    expect(one).toMatchObject({ allowed: true, remaining: 0 })
    const at = (await serverMs(other)) % 1000
    const denied = await other.rateLimit(key, rule)
    expect(denied.allowed).toBe(false)
    // 4 × (1 - e) + 1 + 1 <= 4 from e = 0.5 of the window
    expect(Math.abs(denied.retryAfterMs - (500 - at))).toBeLessThan(30)
    await sleep(denied.retryAfterMs + 10)
    expect((await other.rateLimit(key, rule)).allowed).toBe(true)
  })

  test('blockMs: a denial blocks the key for that long, on every instance', async () => {
    const key = ns('block')
    const rule: RateLimitRule = { limit: 2, windowMs: 1000, algorithm: 'fixed-window', blockMs: 1500 }
    const other = await connect(srv.url)
    await alignToNextWindow(1000, 50)
    await client.rateLimit(key, rule)
    await client.rateLimit(key, rule)
    const denied = await client.rateLimit(key, rule)
    expect(denied).toMatchObject({ allowed: false, reason: 'limit' })
    expect(denied.retryAfterMs).toBeGreaterThan(1400)
    expect(denied.retryAfterMs).toBeLessThanOrEqual(1500)
    await alignToNextWindow(1000, 100) // a new window, but still blocked
    const blocked = await other.rateLimit(key, rule)
    expect(blocked).toMatchObject({ allowed: false, reason: 'blocked', remaining: 0 })
    await sleep(blocked.retryAfterMs + 20)
    expect(await other.rateLimit(key, rule)).toMatchObject({ allowed: true })
  })
})

// ---- the denied-key cache -----------------------------------------------------------------------

describe('denied keys are remembered until their retry time', () => {
  test('no round trip while denied; stats() counts them; the next call after the retry time goes to Redis', async () => {
    const c = await connect(srv.url)
    const key = ns('cache')
    const rule: RateLimitRule = { limit: 1, windowMs: 400 }
    expect((await c.rateLimit(key, rule)).allowed).toBe(true)
    const denied = await c.rateLimit(key, rule)
    expect(denied).toMatchObject({ allowed: false, reason: 'limit' })
    const commands = c.stats().commands
    const hits = c.stats().rateLimitCacheHits
    let last = denied.retryAfterMs
    for (let i = 0; i < 50; i++) {
      const r = await c.rateLimit(key, rule)
      expect(r).toMatchObject({ allowed: false, reason: 'cached-deny', limit: 1, remaining: 0 })
      expect(r.retryAfterMs).toBeLessThanOrEqual(last)
      last = r.retryAfterMs
    }
    expect(c.stats().commands).toBe(commands)
    expect(c.stats().rateLimitCacheHits).toBe(hits + 50)
    // another rule (or cost) for the same key is not answered from the cache
    expect((await c.rateLimit(key, { ...rule, cost: 0 })).allowed).toBe(true)
    expect(c.stats().commands).toBe(commands + 1)
    await sleep(last + 5)
    const after = await c.rateLimit(key, rule)
    expect(after).toMatchObject({ allowed: true })
    expect(c.stats().commands).toBe(commands + 2)
  })

  test('rateLimitAll denials are cached whole', async () => {
    const c = await connect(srv.url)
    const key = ns('cacheall')
    const rules: RateLimitRule[] = [{ limit: 5, windowMs: 60_000, name: 'a' }, { limit: 1, windowMs: 60_000, name: 'b' }]
    await c.rateLimitAll(key, rules)
    const first = await c.rateLimitAll(key, rules)
    const commands = c.stats().commands
    const again = await c.rateLimitAll(key, rules)
    expect(c.stats().commands).toBe(commands)
    expect(again.map((r) => [r.name, r.allowed, r.reason])).toEqual([
      ['a', false, 'other-rule'],
      ['b', false, 'cached-deny'],
    ])
    expect(first.map((r) => r.reason)).toEqual(['other-rule', 'limit'])
  })

  test('bounded, least recently used first out', () => {
    const cache = new DeniedCache(3)
    const denial = (retryAfterMs: number): RateLimitResult[] => [
      { allowed: false, limit: 1, windowMs: 60_000, remaining: 0, resetMs: retryAfterMs, retryAfterMs, reason: 'limit' },
    ]
    cache.remember('a', 0, denial(1000))
    cache.remember('b', 0, denial(1000))
    cache.remember('c', 0, denial(1000))
    expect(cache.lookup('a', 10)).toBeDefined() // a is now the most recently used
    cache.remember('d', 10, denial(1000))
    expect(cache.size).toBe(3)
    expect(cache.lookup('b', 20)).toBeUndefined() // evicted
    expect(cache.lookup('a', 20)?.[0]).toMatchObject({ reason: 'cached-deny', retryAfterMs: 980 })
    expect(cache.lookup('c', 20)).toBeDefined()
    expect(cache.lookup('d', 20)).toBeDefined()
    // an entry is dropped at its retry time
    expect(cache.lookup('a', 1000)).toBeUndefined()
    expect(cache.size).toBe(2)
  })
})

// ---- scripts, keys, cluster ---------------------------------------------------------------------

describe('pacing', () => {
  test('a burst of scripts is handed to the client 32 per turn of the event loop, in order', async () => {
    const pacer = new ScriptPacer(SCRIPT_BATCH)
    const started: number[] = []
    const done = Array.from({ length: 100 }, (_, i) =>
      pacer.run(async () => {
        started.push(i)
        return i
      }),
    )
    const seen = [started.length]
    while (started.length < 100) {
      await new Promise((r) => setImmediate(r))
      seen.push(started.length)
    }
    expect(SCRIPT_BATCH).toBe(32)
    expect(seen).toEqual([32, 64, 96, 100])
    expect(started).toEqual(Array.from({ length: 100 }, (_, i) => i))
    expect(await Promise.all(done)).toEqual(started)
  })

  test("take and later (the throttler's way): a turn's room at once, the rest turn by turn, in order with run()", async () => {
    const pacer = new ScriptPacer(10)
    const sent: string[] = []
    let queue = 25
    const flush = () => {
      const n = pacer.take(queue)
      queue -= n
      sent.push(`batch ${n}`)
      if (queue > 0) pacer.later(flush)
    }
    flush()
    const single = pacer.run(async () => sent.push('run'))
    const turns = [sent.join(', ')]
    while (turns.length < 4) {
      await new Promise((r) => setImmediate(r))
      turns.push(sent.join(', '))
    }
    await single
    expect(turns).toEqual([
      'batch 10',
      'batch 10, batch 10',
      'batch 10, batch 10, batch 5, run', // the run() call waited behind the batch's rest
      'batch 10, batch 10, batch 5, run',
    ])
    expect(pacer.take(20)).toBe(10) // a fresh turn: its whole room
  })
})

describe('scripts and keys', () => {
  test('a SCRIPT FLUSH mid-run changes nothing', async () => {
    const key = ns('flush')
    const rule: RateLimitRule = { limit: 100, windowMs: 3_600_000 }
    await srv.cli('CONFIG', 'RESETSTAT')
    let allowed = 0
    for (let i = 0; i < 150; i++) {
      // (after the 100th call the denials come from the denied-key cache: flush before)
      if (i === 50 || i === 80) await srv.cli('SCRIPT', 'FLUSH')
      if ((await client.rateLimit(key, rule)).allowed) allowed++
    }
    expect(allowed).toBe(100)
    const stats = await srv.cli('INFO', 'commandstats')
    // one EVAL after each flush (and possibly for the first call), EVALSHA otherwise
    expect(Number(/cmdstat_eval:calls=(\d+)/.exec(stats)?.[1])).toBeGreaterThanOrEqual(2)
    expect(Number(/cmdstat_eval:calls=(\d+)/.exec(stats)?.[1])).toBeLessThanOrEqual(3)
  })

  test("keys get the client's keyPrefix and one hash tag per call", async () => {
    const c = await connect({ url: srv.url, keyPrefix: 'tenant7:' })
    const key = ns('pfx')
    await c.rateLimitAll(key, [{ limit: 5, windowMs: 60_000 }, { limit: 9, windowMs: 3_600_000, algorithm: 'fixed-window', name: 'h' }])
    const keys = (await srv.cli('--scan', '--pattern', `tenant7:rl:{${key}}*`)).split('\n').sort()
    expect(keys).toEqual([`tenant7:rl:{${key}}:f:n:h`, `tenant7:rl:{${key}}:g:5/60000`])
  })

  realRedisTest('on a Redis Cluster node, every call stays in one slot', async () => {
    const node = await startRedis({ cluster: true })
    await node.cli('CLUSTER', 'ADDSLOTSRANGE', 0, 16383)
    await eventually(async () => expect(await node.cli('CLUSTER', 'INFO')).toMatch(/cluster_state:ok/), 10_000)
    const c = await connect(node.url)
    // keys in two slots are refused by a cluster node: what the hash tag prevents
    expect(await rejection(c.runScript('ratelimit', ['a', 'b'], [1, 1, 1000, 1, 1, 0, 1, 1, 1000, 1, 1, 0]))).toMatchObject({
      code: 'ERR_REPLY',
      message: expect.stringMatching(/CROSSSLOT/),
    })
    const rules: RateLimitRule[] = ALGORITHMS.map((algorithm, i) => ({ limit: 5 + i, windowMs: 60_000, algorithm }))
    for (const key of ['user:1', '{a}b', 'x}y{z', '~', 'ключ']) {
      const results = await c.rateLimitAll(key, rules)
      expect(results.every((r) => r.allowed && r.reason === undefined)).toBe(true)
    }
    await node.stop()
  })
})

// ---- fail policy -----------------------------------------------------------------------------------

describe('when Redis is unavailable', () => {
  realRedisTest('a stopped server: the policy answers, the client recovers, nothing is replayed', async () => {
    const down = await startRedis()
    const c = await connect({ url: down.url, commandTimeoutMs: 300, reconnect: { minDelayMs: 10, maxDelayMs: 50 } })
    const key = 'k'
    const allow: RateLimitRule = { limit: 100, windowMs: 3_600_000 }
    const deny: RateLimitRule = { limit: 100, windowMs: 3_600_000, name: 'strict', onUnavailable: 'deny' }
    for (let i = 0; i < 5; i++) await c.rateLimit(key, allow)
    await down.kill()
    for (let i = 0; i < 10; i++) {
      expect(await c.rateLimit(key, allow)).toEqual({
        allowed: true, limit: 100, windowMs: 3_600_000, remaining: 99, resetMs: 0, retryAfterMs: 0, reason: 'unavailable',
      })
      expect(await c.rateLimit(key, deny)).toEqual({
        allowed: false, limit: 100, windowMs: 3_600_000, remaining: 0, resetMs: 0, retryAfterMs: 1000, name: 'strict', reason: 'unavailable',
      })
      // any rule that says deny denies the whole call
      const both = await c.rateLimitAll(key, [allow, deny])
      expect(both.map((r) => [r.allowed, r.reason])).toEqual([[false, 'unavailable'], [false, 'unavailable']])
    }
    expect(c.stats().rateLimitCacheHits).toBe(0) // policy answers are not remembered
    await down.restart() // without persistence: back empty
    const back = await eventually(async () => {
      const r = await c.rateLimit(key, allow)
      if (r.reason === 'unavailable') throw new Error('still unavailable')
      return r
    }, 10_000, 50)
    // counted once, from scratch: none of the 30 calls made during the outage was sent later
    expect(back).toMatchObject({ allowed: true, remaining: 99 })
    expect(await c.rateLimit(key, allow)).toMatchObject({ allowed: true, remaining: 98 })
    await down.stop()
  })

  realRedisTest('a server slower than commandTimeoutMs: the policy answers in time, and no request is counted twice', async () => {
    const slow = await startRedis()
    const c = await connect({ url: slow.url, commandTimeoutMs: 200, reconnect: { minDelayMs: 10, maxDelayMs: 50 } })
    const rule: RateLimitRule = { limit: 1000, windowMs: 3_600_000, onUnavailable: 'deny' }
    for (let i = 0; i < 3; i++) await c.rateLimit('k', rule)
    slow.pause()
    try {
      const start = performance.now()
      const during = await Promise.all(Array.from({ length: 4 }, () => c.rateLimit('k', rule)))
      expect(performance.now() - start).toBeLessThan(1500)
      expect(during.every((r) => !r.allowed && r.reason === 'unavailable')).toBe(true)
    } finally {
      slow.resume()
    }
    const after = await eventually(async () => {
      const r = await c.rateLimit('k', rule)
      if (r.reason === 'unavailable') throw new Error('still unavailable')
      return r
    }, 10_000, 50)
    // 3 before + this one, plus at most the 4 sent before the pause was noticed (which the
    // server may still run once when it wakes) — never more: nothing is resent.
    const used = 1000 - after.remaining
    expect(used).toBeGreaterThanOrEqual(4)
    expect(used).toBeLessThanOrEqual(8)
    await slow.stop()
  })

  test('ERR_CLOSED and server error replies are not hidden by the policy', async () => {
    const c = await connect(srv.url)
    const key = ns('wrongtype')
    await c.set(`rl:{${key}}:g:1/1000`, 'a string')
    expect(await rejection(c.rateLimit(key, { limit: 1, windowMs: 1000 }))).toMatchObject({ code: 'ERR_REPLY' })
    await c.close()
    expect(await rejection(c.rateLimit(key, { limit: 1, windowMs: 1000 }))).toMatchObject({ code: 'ERR_CLOSED' })
  })
})

// ---- headers -----------------------------------------------------------------------------------------

describe('rateLimitHeaders', () => {
  const ok = (over: Partial<RateLimitResult> = {}): RateLimitResult => ({
    allowed: true, limit: 10, windowMs: 1000, remaining: 7, resetMs: 1200, retryAfterMs: 0, ...over,
  })
  /** A result as a caller might build it by hand, without the window. */
  const windowless = (over: Partial<RateLimitResult> = {}): RateLimitResult => {
    const { windowMs: _dropped, ...rest } = ok(over)
    return rest as RateLimitResult
  }

  test('RateLimit-Policy and RateLimit of the IETF draft, one item per rule', () => {
    const rules: RateLimitRule[] = [{ limit: 10, windowMs: 1000 }, { limit: 1000, windowMs: 86_400_000, name: 'daily' }]
    expect(rateLimitHeaders([ok(), ok({ limit: 1000, remaining: 990, resetMs: 86_000_000, name: 'daily' })], rules)).toEqual({
      'RateLimit-Policy': '"10-per-1s";q=10;w=1, "daily";q=1000;w=86400',
      RateLimit: '"10-per-1s";r=7;t=2, "daily";r=990;t=86000',
    })
  })

  test('the results alone give each policy its window and, unnamed, a name from limit and window', () => {
    const h = rateLimitHeaders([ok(), ok({ limit: 1000, windowMs: 86_400_000, remaining: 990, resetMs: 86_000_000, name: 'daily' }), ok({ limit: 5, windowMs: 1500 })])
    expect(h).toEqual({
      'RateLimit-Policy': '"10-per-1s";q=10;w=1, "daily";q=1000;w=86400, "5-per-1500ms";q=5;w=2',
      RateLimit: '"10-per-1s";r=7;t=2, "daily";r=990;t=86000, "5-per-1500ms";r=7;t=2',
    })
    // rules passed as well (the older call) say the same; a rule's window takes precedence over its result's
    const rules: RateLimitRule[] = [{ limit: 10, windowMs: 1000 }, { limit: 1000, windowMs: 86_400_000, name: 'daily' }, { limit: 5, windowMs: 1500 }]
    expect(rateLimitHeaders([ok(), ok({ limit: 1000, windowMs: 86_400_000, remaining: 990, resetMs: 86_000_000, name: 'daily' }), ok({ limit: 5, windowMs: 1500 })], rules)).toEqual(h)
    expect(rateLimitHeaders(ok(), { limit: 10, windowMs: 60_000 })['RateLimit-Policy']).toBe('"10-per-1m";q=10;w=60')
    // a window that is not a positive integer is refused, as a rule's is
    for (const windowMs of [0, -1, 1.5, NaN, '1000']) {
      expect(() => rateLimitHeaders(ok({ windowMs: windowMs as number }))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    }
  })

  test('a result built by hand without its window: q= only, unnamed policies numbered', () => {
    const h = rateLimitHeaders([windowless(), windowless({ name: 'b' })])
    expect(h['RateLimit-Policy']).toBe('"policy-1";q=10, "b";q=10')
    expect(rateLimitHeaders(windowless(), { limit: 10, windowMs: 2000 })['RateLimit-Policy']).toBe('"10-per-2s";q=10;w=2')
  })

  test('Retry-After (whole seconds, rounded up) only when denied', () => {
    const h = rateLimitHeaders([ok({ allowed: false, remaining: 0, retryAfterMs: 1500, reason: 'limit' }), ok({ allowed: false, reason: 'other-rule' })])
    expect(h['Retry-After']).toBe('2')
    expect(rateLimitHeaders(ok())['Retry-After']).toBeUndefined()
    expect(rateLimitHeaders(ok({ allowed: false, retryAfterMs: 1 }))['Retry-After']).toBe('1')
  })

  test('names are sf-strings; results of the fail policy are left out of RateLimit', () => {
    const h = rateLimitHeaders([ok({ name: 'a "quoted" \\ name' }), ok({ name: 'b', reason: 'unavailable' })])
    expect(h['RateLimit-Policy']).toBe('"a \\"quoted\\" \\\\ name";q=10;w=1, "b";q=10;w=1')
    expect(h.RateLimit).toBe('"a \\"quoted\\" \\\\ name";r=7;t=2')
    expect(rateLimitHeaders(ok({ reason: 'unavailable' })).RateLimit).toBeUndefined()
    expect(() => rateLimitHeaders([ok()], [])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => rateLimitHeaders([])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  test('from a real denial', async () => {
    const key = ns('hdr')
    const rule: RateLimitRule = { limit: 1, windowMs: 60_000, name: 'login' }
    await client.rateLimit(key, rule)
    const r = await client.rateLimit(key, rule)
    const h = rateLimitHeaders(r)
    expect(r.windowMs).toBe(60_000)
    expect(h['RateLimit-Policy']).toBe('"login";q=1;w=60')
    expect(h.RateLimit).toMatch(/^"login";r=0;t=(59|60)$/)
    expect(h['Retry-After']).toMatch(/^(59|60)$/)
    expect(rateLimitHeaders(r, rule)['RateLimit-Policy']).toBe(h['RateLimit-Policy'])
    // answered from the memory of denied keys: the window is still there
    const cached = await client.rateLimit(key, rule)
    expect(cached).toMatchObject({ reason: 'cached-deny', windowMs: 60_000 })
    expect(rateLimitHeaders(cached)['RateLimit-Policy']).toBe('"login";q=1;w=60')
  })

  test('rateLimitAll results carry each rule\'s window: the headers need nothing else', async () => {
    const key = ns('hdr-all')
    const rules: RateLimitRule[] = [
      { limit: 10, windowMs: 1_000 },
      { limit: 1000, windowMs: 86_400_000, name: 'daily', algorithm: 'fixed-window' },
      { limit: 50, windowMs: 90_000, algorithm: 'sliding-window' },
    ]
    const results = await client.rateLimitAll(key, rules)
    expect(results.map((r) => r.windowMs)).toEqual([1_000, 86_400_000, 90_000])
    const h = rateLimitHeaders(results)
    expect(h['RateLimit-Policy']).toBe('"10-per-1s";q=10;w=1, "daily";q=1000;w=86400, "50-per-90s";q=50;w=90')
    expect(h.RateLimit).toMatch(/^"10-per-1s";r=9;t=[01], "daily";r=999;t=\d+, "50-per-90s";r=49;t=\d+$/)
    expect(rateLimitHeaders(results, rules)).toEqual(h)
  })
})
