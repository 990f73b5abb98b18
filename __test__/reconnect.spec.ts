// Timeouts and connection loss: a paused server, a killed and restarted
// server, a slow command. Replies of timed-out commands must never reach
// later calls.
import { RedisClient } from '../lib'
import { startRedis, stopAll, RedisServer } from './harness'
import { attempt, closeAll, connect, eventually, ns, sleep, timed, track, withTimeout } from './helpers'

afterEach(closeAll)
afterAll(stopAll)

describe('a paused server (SIGSTOP)', () => {
  let srv: RedisServer
  beforeAll(async () => {
    srv = await startRedis()
  })
  afterEach(() => {
    try {
      srv.resume()
    } catch {
      /* not running */
    }
  })

  test('calls reject with ERR_TIMEOUT after commandTimeoutMs; after resume the same client serves correct values', async () => {
    const c = await connect({ port: srv.port, commandTimeoutMs: 200 })
    const p = ns('pause')
    await c.mset({ [p + 'a']: 'A', [p + 'b']: 'B', [p + 'c']: 'C' })
    srv.pause()
    const first = timed(c.get(p + 'a'))
    const second = timed(c.get(p + 'b'))
    await sleep(80)
    const later = timed(c.get(p + 'c')) // issued later: its own deadline
    const [r1, r2, r3] = await Promise.all([first, second, later])
    for (const r of [r1, r2, r3]) {
      expect(r.error).toMatchObject({ code: 'ERR_TIMEOUT' })
      expect(r.error.message).toContain(`127.0.0.1:${srv.port}`)
      expect(r.ms).toBeGreaterThanOrEqual(190)
      expect(r.ms).toBeLessThan(600)
    }
    expect(c.stats().timeouts).toBeGreaterThanOrEqual(3)
    expect(c.stats().inFlight).toBe(0)
    srv.resume()
    // The replies to the timed-out GETs (A, B, C) arrive now and must be dropped:
    // each new call gets its own value.
    expect(await c.get(p + 'b')).toBe('B')
    expect(await c.get(p + 'c')).toBe('C')
    expect(await c.get(p + 'a')).toBe('A')
    expect(await c.mget(p + 'c', p + 'a')).toEqual(['C', 'A'])
    await c.set(p + 'd', 'D')
    expect(await c.get(p + 'd')).toBe('D')
  })

  test('calls issued while the server is paused and answered after resume get their own replies', async () => {
    const c = await connect({ port: srv.port, commandTimeoutMs: 300 })
    const p = ns('pause2')
    await c.mset({ [p + 'x']: 'X', [p + 'y']: 'Y' })
    srv.pause()
    const timedOut = c.get(p + 'x').catch((e) => e)
    await sleep(200)
    const answered = c.get(p + 'y') // issued 200 ms in: will be answered after resume
    await sleep(130)
    srv.resume()
    expect(await timedOut).toMatchObject({ code: 'ERR_TIMEOUT' })
    expect(await answered).toBe('Y')
    expect(await c.get(p + 'x')).toBe('X')
  })

  test('close() does not hang on a server that stopped answering', async () => {
    const c = await connect({ port: srv.port, commandTimeoutMs: 200 })
    const p = ns('pauseclose')
    srv.pause()
    const pending = c.get(p + 'a').catch((e) => e)
    const closing = timed(withTimeout(c.close(), 3000, 'close() did not resolve within 3 s'))
    expect(await pending).toMatchObject({ code: 'ERR_TIMEOUT' })
    const r = await closing
    srv.resume()
    expect(r.error).toBeUndefined()
    expect(r.ms).toBeLessThan(1500)
    await expect(c.get(p + 'a')).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })
})

describe('a slow command', () => {
  let srv: RedisServer
  beforeAll(async () => {
    srv = await startRedis({ args: ['--enable-debug-command', 'yes'] })
  })

  test('DEBUG SLEEP 0.5 with commandTimeoutMs 200 → ERR_TIMEOUT; the next get returns its own value', async () => {
    const c = await connect({ port: srv.port, commandTimeoutMs: 200 })
    const p = ns('slow')
    await c.set(p + 'k', 'mine')
    const r = await timed(c.command('DEBUG', 'SLEEP', '0.5'))
    expect(r.error).toMatchObject({ code: 'ERR_TIMEOUT' })
    expect(r.ms).toBeGreaterThanOrEqual(190)
    expect(r.ms).toBeLessThan(480)
    // The server is still asleep: this GET queues behind the DEBUG SLEEP, whose
    // late "OK" must be dropped, not handed to it.
    await sleep(150)
    expect(await c.get(p + 'k')).toBe('mine')
    expect(await c.command('GET', p + 'k')).toBe('mine')
    expect(c.stats().timeouts).toBe(1)
  })

  test('a burst behind a slow command: each call gets its own reply', async () => {
    const c = await connect({ port: srv.port, commandTimeoutMs: 200 })
    const p = ns('slow2')
    await c.mset(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`${p}${i}`, `v${i}`])))
    const sleeper = c.command('DEBUG', 'SLEEP', '0.3').catch((e) => e)
    const victims = Array.from({ length: 20 }, (_, i) => c.get(`${p}${i}`).catch((e) => e))
    expect(await sleeper).toMatchObject({ code: 'ERR_TIMEOUT' })
    for (const v of await Promise.all(victims)) expect(v).toMatchObject({ code: 'ERR_TIMEOUT' })
    await sleep(200)
    const got = await Promise.all(Array.from({ length: 20 }, (_, i) => c.get(`${p}${i}`)))
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => `v${i}`))
  })
})

describe('a killed server', () => {
  let srv: RedisServer
  beforeAll(async () => {
    srv = await startRedis()
  })

  test('in-flight and new calls reject with ERR_CONNECTION; after restart the same client serves again', async () => {
    const c = await connect({ port: srv.port, connectTimeoutMs: 500 })
    const p = ns('kill')
    await c.set(p + 'before', '1')
    expect(c.stats().reconnects).toBe(0)
    // A command that is surely in flight when the server dies: BLPOP blocks server-side.
    const inFlight = timed(c.command('BLPOP', p + 'list', '0'))
    await sleep(50)
    await srv.kill()
    const r = await inFlight
    expect(r.error).toMatchObject({ code: 'ERR_CONNECTION' })
    expect(r.ms).toBeLessThan(50 + 1500)

    // New calls while it is down: ERR_CONNECTION within connectTimeoutMs + 1 s, never a hang.
    for (let i = 0; i < 4; i++) {
      const n = await timed(c.get(p + 'before'))
      expect(n.error).toMatchObject({ code: 'ERR_CONNECTION' })
      expect(n.error.message).toContain(`127.0.0.1:${srv.port}`)
      expect(n.ms).toBeLessThan(500 + 1000)
      await sleep(150)
    }
    // A burst while down: all reject, none hangs.
    const burst = await Promise.all(Array.from({ length: 50 }, () => timed(c.incr(p + 'n'))))
    for (const b of burst) {
      expect(b.error).toMatchObject({ code: 'ERR_CONNECTION' })
      expect(b.ms).toBeLessThan(1500)
    }

    await srv.restart()
    // The same client reconnects on its own within a few seconds.
    await eventually(async () => {
      await c.set(p + 'after', 'back')
    }, 5000)
    expect(await c.get(p + 'after')).toBe('back')
    expect(await srv.cli('GET', p + 'after')).toBe('back')
    expect(c.stats().reconnects).toBeGreaterThan(0)
    // Nothing issued while down was replayed after the reconnect.
    expect(await c.get(p + 'n')).toBeNull()
    expect(await c.incr(p + 'n')).toBe(1)
  })

  test('a server that goes away cleanly (restart) is reconnected to, without losing later calls', async () => {
    const c = await connect({ port: srv.port, connectTimeoutMs: 500, reconnect: { minDelayMs: 20, maxDelayMs: 200 } })
    const p = ns('restart')
    await c.set(p + 'k', 'v')
    await srv.restart() // data is not persisted (--save '')
    const v = await eventually(() => c.get(p + 'k'), 3000)
    expect(v).toBeNull()
    await c.set(p + 'k', 'v2')
    expect(await c.get(p + 'k')).toBe('v2')
    expect(c.stats().reconnects).toBeGreaterThanOrEqual(1)
  })

  test('close() while the server is down resolves, and later calls reject ERR_CLOSED', async () => {
    const c = await connect({ port: srv.port, connectTimeoutMs: 500 })
    await srv.kill()
    await c.get('x').catch(() => undefined)
    const r = await timed(withTimeout(c.close(), 3000, 'close() did not resolve within 3 s'))
    expect(r.error).toBeUndefined()
    expect(r.ms).toBeLessThan(1000)
    await expect(c.get('x')).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    await srv.restart()
  })
})

test('connect() to a server that is down rejects (no retry loop inside connect)', async () => {
  const s = await startRedis()
  await s.kill()
  const r = await timed(RedisClient.connect({ port: s.port, connectTimeoutMs: 500 }).then(track))
  expect(r.error).toMatchObject({ code: 'ERR_CONNECTION', message: expect.stringContaining('connection refused') })
  expect(r.ms).toBeLessThan(1000)
  await s.stop()
})
