// Issue 18, point 9: a partial reply was parsed again from the start on every read, so
// a 2,000,000-element array arriving in 4 KB pieces took time quadratic in its size —
// and stalled every client of the process meanwhile. Through the harness proxy
// (chunkBytes: 4096), LRANGE of a 2,000,000-element list must arrive whole, while PINGs
// on another client of the same process keep being answered. A liveness check with
// generous bounds, not a speed measurement.
import { RedisClient } from '../../lib'
import { startProxy, startRedis, stopAll, RedisServer } from '../harness'
import { closeAll, connect, sleep, timed } from '../helpers'

const ELEMENTS = 2_000_000
const CHUNK = 4096
/**
 * A PING that takes longer than this was stalled. Alone it takes well under 10 ms; but
 * turning a 2,000,000-element reply into JS values blocks the event loop for its whole
 * duration whatever the engine (1.2-1.6 s measured on the 2-core dev machine, and a
 * PING on a direct connection then waits up to 2.7 s). What this catches is the stall
 * that grows with the number of pieces (8-15 s measured with the engine of 2026-12).
 */
const PING_BOUND_MS = 5000
/** The whole reply in pieces 1 ms apart takes ~7 s; linear parsing adds little to it. */
const REPLY_BOUND_MS = 60_000

let srv: RedisServer
let other: RedisServer // the PINGs go to a server of their own: Redis' own time for LRANGE is not the client's
beforeAll(async () => {
  ;[srv, other] = await Promise.all([startRedis(), startRedis()])
  // 2,000 RPUSHes of 1,000 elements, inside one script
  await srv.cli(
    'EVAL',
    "for i = 0, 1999 do local t = {} for j = 1, 1000 do t[j] = i * 1000 + j end redis.call('RPUSH', KEYS[1], unpack(t)) end return redis.call('LLEN', KEYS[1])",
    '1',
    'big:list',
  )
}, 60_000)
afterAll(async () => {
  await closeAll()
  await stopAll()
})

test(`a ${ELEMENTS.toLocaleString('en')}-element array arriving in ${CHUNK}-byte pieces arrives whole, and another client's PINGs are answered meanwhile`, async () => {
  expect(await srv.cli('LLEN', 'big:list')).toBe(String(ELEMENTS))
  const proxy = await startProxy(srv.port, { chunkBytes: CHUNK, chunkGapMs: 1 })
  const slow: RedisClient = await connect({ port: proxy.port, commandTimeoutMs: REPLY_BOUND_MS })
  const pinger: RedisClient = await connect({ port: other.port, commandTimeoutMs: REPLY_BOUND_MS })

  let done = false
  const big = timed(slow.command('LRANGE', 'big:list', '0', '-1')).finally(() => (done = true))
  const pings: number[] = []
  while (!done) {
    const r = await timed(pinger.ping())
    if (r.error) throw r.error
    pings.push(r.ms)
    await sleep(100)
  }
  const reply = await big
  expect(reply.error).toBeUndefined()
  const list = reply.value as string[]
  expect(list.length).toBe(ELEMENTS)
  expect([list[0], list[999_999], list[ELEMENTS - 1]]).toEqual(['1', '1000000', String(ELEMENTS)])
  expect(reply.ms).toBeLessThan(REPLY_BOUND_MS)
  // PINGs kept coming back all along (the transfer lasted seconds: several of them)
  expect(pings.length).toBeGreaterThan(5)
  expect(pings.filter((ms) => ms > PING_BOUND_MS).map(Math.round)).toEqual([])
  // the same client still serves
  expect(await slow.command('LLEN', 'big:list')).toBe(ELEMENTS)
}, 120_000)
