// Issue 18, point 12: the rate limiter's and the throttler's pacers queued without a
// bound or a timeout. Now past PACER_LIMITS.maxWaiting waiting callers a call is refused
// at once, and a caller whose turn comes later than maxWaitMs is refused then — both
// with ERR_OVERLOADED, before anything was sent — which rateLimit and the throttler
// storage answer with their fail policy (reason 'unavailable'). Behaviour only: the
// latency and heap at 256 concurrent requests are a benchmark row (benchmark/ratelimit.js,
// group ratelimit-256), not a timed test.
import { RedisClient } from '../../lib'
import { ErrorCode, isUnavailable } from '../../lib/core/errors'
import { PACER_LIMITS, ScriptPacer } from '../../lib/core/pacer'
import { RedisThrottlerStorage } from '../../lib/ratelimit/throttler'
import { startRedis, stopAll, RedisServer } from '../harness'
import { closeAll, connect } from '../helpers'

const nextTurn = () => new Promise<void>((r) => setImmediate(r))

/** Blocks the event loop for `ms` (a turn that comes late). */
function busy(ms: number) {
  const end = performance.now() + ms
  while (performance.now() < end) {
    /* spin */
  }
}

describe('ScriptPacer', () => {
  test('past maxWaiting, run() refuses at once with ERR_OVERLOADED and never runs the call; the others run in order', async () => {
    const pacer = new ScriptPacer(2, { maxWaiting: 5, maxWaitMs: 1e9 })
    const ran: number[] = []
    const settled: Array<string | number> = new Array(20)
    const calls = Array.from({ length: 20 }, (_, i) =>
      pacer
        .run(async () => {
          ran.push(i)
          return i
        })
        .then(
          (v) => (settled[i] = v),
          (e) => (settled[i] = e.code),
        ),
    )
    // before any turn: the two that had room ran, the 13 past the bound are refused
    await Promise.resolve()
    await Promise.resolve()
    expect(ran).toEqual([0, 1])
    expect(settled.slice(7)).toEqual(Array(13).fill(ErrorCode.Overloaded))
    expect(pacer.queued).toBe(5)
    await Promise.all(calls)
    expect(ran).toEqual([0, 1, 2, 3, 4, 5, 6])
    expect(settled.slice(0, 7)).toEqual([0, 1, 2, 3, 4, 5, 6])
  })

  test('a caller whose turn comes later than maxWaitMs is refused then (ERR_OVERLOADED), and the pacer goes on', async () => {
    const pacer = new ScriptPacer(1, { maxWaiting: 100, maxWaitMs: 50 })
    const ran: number[] = []
    const outcome = (i: number) => pacer.run(async () => void ran.push(i)).then(() => 'ran', (e) => e.code)
    const first = [0, 1, 2, 3, 4].map(outcome)
    busy(80) // the next turn comes 80 ms after they asked
    expect(await Promise.all(first)).toEqual(['ran', ErrorCode.Overloaded, ErrorCode.Overloaded, ErrorCode.Overloaded, ErrorCode.Overloaded])
    await nextTurn()
    expect(await Promise.all([5, 6].map(outcome))).toEqual(['ran', 'ran'])
    expect(ran).toEqual([0, 5, 6])
  })

  test('ERR_OVERLOADED counts as "Redis cannot answer now" for the fail policies', () => {
    expect(isUnavailable({ code: ErrorCode.Overloaded })).toBe(true)
    expect(PACER_LIMITS).toEqual({ maxWaiting: 10_000, maxWaitMs: 5_000 })
  })
})

describe('on a real server', () => {
  let srv: RedisServer
  let c: RedisClient
  beforeAll(async () => {
    srv = await startRedis()
    c = await connect({ port: srv.port, commandTimeoutMs: 20_000 })
  })
  afterAll(async () => {
    await closeAll()
    await stopAll()
  })

  const FLOOD = PACER_LIMITS.maxWaiting + 2_000

  test(`rateLimit: a flood of ${FLOOD.toLocaleString('en')} calls in one tick — those past the bound get the fail policy's answer at once, the rest are counted`, async () => {
    const allow = Array.from({ length: FLOOD }, (_, i) => c.rateLimit(`flood:a:${i}`, { limit: 5, windowMs: 60_000 }))
    const deny = Array.from({ length: FLOOD }, (_, i) => c.rateLimit(`flood:d:${i}`, { limit: 5, windowMs: 60_000, onUnavailable: 'deny' }))
    const a = await Promise.all(allow)
    const d = await Promise.all(deny)
    const shed = (rs: typeof a) => rs.filter((r) => r.reason === 'unavailable')
    // the first calls were counted by Redis (remaining 4 of 5); the overflow was not sent
    expect(a.slice(0, 100).every((r) => r.allowed && r.remaining === 4 && r.reason === undefined)).toBe(true)
    expect(shed(a).length).toBeGreaterThanOrEqual(FLOOD - PACER_LIMITS.maxWaiting - 32)
    expect(shed(a).every((r) => r.allowed)).toBe(true)
    // the second flood came after the first in the same tick: the queue was full for all of it
    expect(shed(d).length).toBe(FLOOD)
    expect(shed(d).every((r) => !r.allowed)).toBe(true)
    // what was shed never reached Redis: no state for any key of the second flood
    expect(await srv.cli('--scan', '--pattern', '*flood:a:0[}:]*')).not.toBe('')
    expect(await srv.cli('--scan', '--pattern', '*flood:d:*')).toBe('')
    // and the client serves normally afterwards
    expect((await c.rateLimit('flood:after', { limit: 5, windowMs: 60_000 })).remaining).toBe(4)
  }, 120_000)

  test(`throttler storage: a flood of ${FLOOD.toLocaleString('en')} increments in one tick — those past the bound get the fail policy's answer at once`, async () => {
    const allow = new RedisThrottlerStorage(c)
    const deny = new RedisThrottlerStorage(c, { onUnavailable: 'deny', prefix: 'thd:' })
    const a = await Promise.all(Array.from({ length: FLOOD }, (_, i) => allow.increment(`t:${i}`, 60_000, 10, 0, 'default')))
    const d = await Promise.all(Array.from({ length: FLOOD }, (_, i) => deny.increment(`t:${i}`, 60_000, 10, 0, 'default')))
    const shed = (rs: typeof a) => rs.filter((r) => r.reason === 'unavailable')
    expect(a.slice(0, 100).every((r) => r.totalHits === 1 && !r.isBlocked && r.reason === undefined)).toBe(true)
    expect(shed(a).length).toBe(FLOOD - PACER_LIMITS.maxWaiting)
    expect(shed(a).every((r) => !r.isBlocked)).toBe(true)
    expect(shed(d).length).toBe(FLOOD - PACER_LIMITS.maxWaiting)
    expect(shed(d).every((r) => r.isBlocked)).toBe(true)
    expect((await allow.increment('t:after', 60_000, 10, 0, 'default')).totalHits).toBe(1)
  }, 120_000)

  test('throttler storage: increments whose turn comes later than maxWaitMs get the fail policy\'s answer, the others Redis\'', async () => {
    const s = new RedisThrottlerStorage(c, { prefix: 'thw:' })
    ;(s as unknown as { limits: object }).limits = { maxWaiting: 100_000, maxWaitMs: 30 }
    const calls = Array.from({ length: 500 }, (_, i) => s.increment(`w:${i}`, 60_000, 10, 0, 'default'))
    await Promise.resolve() // the tick's flush: the first turn's share (48) is sent, the rest wait
    busy(60) // their turn comes 60 ms later
    const r = await Promise.all(calls)
    const shed = r.filter((x) => x.reason === 'unavailable').length
    expect(r.slice(0, 48).every((x) => x.totalHits === 1 && x.reason === undefined)).toBe(true)
    expect(shed).toBe(500 - 48)
  })
})
