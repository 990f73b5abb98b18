// Issue 18, point 6: a connection that stops answering without closing (half-open TCP,
// a blackholed network path) was never dropped: calls timed out one by one for as long
// as the kernel kept the socket, and unsent commands piled up. The client must notice
// (timeouts with nothing read, or a PING on a quiet connection), reconnect once a path
// exists again, and cap what waits to be sent, failing fast past the cap.
//
// The blackhole is the harness proxy's pause(): nothing crosses, nothing closes, and
// the connections that were open stay dead after resume() — only a new connection gets
// through, so a client that serves after resume() has reconnected.
import { RedisClient } from '../../lib'
import { startProxy, startRedis, stopAll, RedisServer, TcpProxy } from '../harness'
import { closeAll, connect, sleep, timed } from '../helpers'
import { COMMAND_TIMEOUT_MS, CONNECT_TIMEOUT_MS, HEALTH_CHECK_MS, RECONNECT, RECOVER_MS, SEND_QUEUE_CAP_BYTES } from './limits'

/** Long enough for the health check to have given the connection up. */
const PAUSE_MS = COMMAND_TIMEOUT_MS + HEALTH_CHECK_MS + 1000

let srv: RedisServer
beforeAll(async () => {
  srv = await startRedis()
})
afterEach(closeAll)
afterAll(stopAll)

async function through(proxy: TcpProxy, extra: Record<string, unknown> = {}): Promise<RedisClient> {
  return connect({ port: proxy.port, commandTimeoutMs: COMMAND_TIMEOUT_MS, connectTimeoutMs: CONNECT_TIMEOUT_MS, reconnect: RECONNECT, ...extra })
}

/** GETs every 100 ms until one returns `expected`; ms from the start to it, or undefined after `ms`. */
async function servesWithin(c: RedisClient, key: string, expected: string, ms: number): Promise<{ at?: number; codes: Record<string, number> }> {
  const start = Date.now()
  const codes: Record<string, number> = {}
  while (Date.now() - start < ms) {
    try {
      if ((await c.get(key)) === expected) return { at: Date.now() - start, codes }
    } catch (e: any) {
      codes[e?.code] = (codes[e?.code] ?? 0) + 1
    }
    await sleep(100)
  }
  return { codes }
}

test(`blackholed while busy: every call settles within commandTimeoutMs + 1 s (ERR_TIMEOUT or ERR_CONNECTION), and the client serves again within ${RECOVER_MS} ms of the path coming back`, async () => {
  const proxy = await startProxy(srv.port)
  const c = await through(proxy)
  await c.set('ho:k', 'v')
  proxy.pause()
  // calls all through the pause, a few at a time
  const outcomes: Array<{ ms: number; code?: string }> = []
  const stop = Date.now() + PAUSE_MS
  while (Date.now() < stop) {
    const round = await Promise.all([c.get('ho:k'), c.incr('ho:n'), c.set('ho:x', '1')].map((p: Promise<unknown>) => timed(p)))
    for (const r of round) outcomes.push({ ms: r.ms, code: r.error?.code })
  }
  proxy.resume()
  const recovered = await servesWithin(c, 'ho:k', 'v', RECOVER_MS + 2000)
  expect(outcomes.filter((o) => o.ms > COMMAND_TIMEOUT_MS + 1000)).toEqual([])
  expect(outcomes.filter((o) => o.code !== 'ERR_TIMEOUT' && o.code !== 'ERR_CONNECTION')).toEqual([])
  expect(recovered).toEqual({ at: expect.any(Number), codes: expect.anything() })
  expect(recovered.at).toBeLessThanOrEqual(RECOVER_MS)
  // a new connection was made: the blackholed one never carries anything again
  expect(proxy.accepted).toBeGreaterThan(1)
  expect(c.stats().reconnects).toBeGreaterThan(0)
})

test(`blackholed while idle: the client's calls succeed again within ${RECOVER_MS} ms of the path coming back`, async () => {
  const proxy = await startProxy(srv.port)
  const c = await through(proxy)
  await c.set('ho:idle', 'v')
  proxy.pause()
  await sleep(PAUSE_MS) // nobody calls: only a health check can tell
  proxy.resume()
  const recovered = await servesWithin(c, 'ho:idle', 'v', RECOVER_MS + 2000)
  expect(recovered.at).toBeDefined()
  expect(recovered.at).toBeLessThanOrEqual(RECOVER_MS)
})

test('a blackhole that never ends: calls keep settling within commandTimeoutMs + 1 s, and the client keeps trying new connections', async () => {
  const proxy = await startProxy(srv.port)
  const c = await through(proxy)
  proxy.pause()
  const slow: number[] = []
  const stop = Date.now() + 2 * PAUSE_MS
  while (Date.now() < stop) {
    const r = await timed(c.get('ho:never'))
    if (r.ms > COMMAND_TIMEOUT_MS + 1000) slow.push(Math.round(r.ms))
    expect(['ERR_TIMEOUT', 'ERR_CONNECTION']).toContain(r.error?.code)
  }
  expect(slow).toEqual([])
  // the dead connection was given up and new ones tried (each accepted, then blackholed)
  expect(proxy.accepted).toBeGreaterThan(1)
  proxy.resume()
  // While disconnected the client fails fast; it serves again once a new connection is up.
  const recovered = await servesWithinAfterSet(c, 'ho:never', 'back', RECOVER_MS + 2000)
  expect(recovered).toBe(true)
}, 30_000)

/** SETs then GETs every 100 ms until the value reads back; false after `ms`. */
async function servesWithinAfterSet(c: RedisClient, key: string, value: string, ms: number): Promise<boolean> {
  const start = Date.now()
  while (Date.now() - start < ms) {
    try {
      await c.set(key, value)
      if ((await c.get(key)) === value) return true
    } catch {
      // not yet: fail fast while reconnecting
    }
    await sleep(100)
  }
  return false
}

test(`what waits to be sent is capped (${SEND_QUEUE_CAP_BYTES / 2 ** 20} MB): past it, calls fail fast instead of piling up`, async () => {
  // A long commandTimeoutMs, so that no timeout explains a quick rejection.
  const LONG_TIMEOUT_MS = 10_000
  const proxy = await startProxy(srv.port)
  const c = await through(proxy, { commandTimeoutMs: LONG_TIMEOUT_MS })
  await c.set('ho:cap', 'v')
  proxy.pause()
  const value = Buffer.alloc(1024 * 1024, 'x') // 1 MB, 3 × the cap in all
  const n = (3 * SEND_QUEUE_CAP_BYTES) / value.length
  const issued = Date.now()
  let settledEarly = 0
  const earlyCodes = new Set<string>()
  const calls = Array.from({ length: n }, (_, i) =>
    timed(c.set(`ho:cap:${i}`, value)).then((r) => {
      if (Date.now() - issued < LONG_TIMEOUT_MS / 10) {
        settledEarly++
        earlyCodes.add(r.error?.code ?? 'resolved')
      }
      return r
    }),
  )
  // the calls past the cap settle long before a timeout could (a tenth of it)
  await sleep(LONG_TIMEOUT_MS / 10)
  const early = settledEarly
  // unblock everything before asserting, so that a failure leaves nothing hanging
  proxy.resume()
  proxy.cut()
  const all = await Promise.all(calls)
  // at least the calls beyond the cap (2/3 of them), minus what the kernel buffers hold
  expect(early).toBeGreaterThanOrEqual(n / 2)
  expect([...earlyCodes].filter((code) => code !== 'ERR_CONNECTION' && code !== 'ERR_TIMEOUT')).toEqual([])
  expect(all.every((r) => r.ms <= LONG_TIMEOUT_MS + 1000)).toBe(true)
  // and the client recovers from it
  const recovered = await servesWithin(c, 'ho:cap', 'v', RECOVER_MS + 2000)
  expect(recovered.at).toBeDefined()
}, 60_000)
