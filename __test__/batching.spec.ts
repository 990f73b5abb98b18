// How calls leave for a standalone server (src/engine/standalone.rs): a tick's
// calls go as one batch; while two batches and at least 32 replies are on the
// wire, later batches wait, merged, until one of them is answered. Waiting
// batches were never written: they keep their order, go out when close() is
// called, and a lost connection sends them on the next one.
import { startProxy, startRedis, stopAll, RedisServer } from './harness'
import { closeAll, connect, eventually, ns, realRedisTest, withTimeout } from './helpers'

let srv: RedisServer
beforeAll(async () => {
  srv = await startRedis({ args: ['--enable-debug-command', 'yes'] })
})
afterEach(closeAll)
afterAll(stopAll)

/** One macrotask: the calls made before it have been flushed as a batch. */
const nextTick = () => new Promise<void>((r) => setImmediate(r))

test('100 callers and a producer that does not wait: every reply to its caller, the producer’s pushes in order', async () => {
  const c = await connect({ port: srv.port })
  const p = ns('order')
  const rounds = 200
  const callers = Array.from({ length: 100 }, async (_, i) => {
    for (let n = 1; n <= rounds; n++) expect(await c.incr(`${p}n${i}`)).toBe(n)
  })
  // One RPUSH per tick, never awaited: each lands in whichever batch (sent or waiting) that tick makes.
  const pushes: Array<Promise<number>> = []
  let producing = true
  const producer = (async () => {
    for (let i = 0; producing; i++) {
      pushes.push(c.rpush(`${p}list`, String(i)))
      await nextTick()
    }
  })()
  await Promise.all(callers)
  producing = false
  await producer
  const lengths = await Promise.all(pushes)
  expect(lengths).toEqual(lengths.map((_, i) => i + 1))
  expect(await c.lrange(`${p}list`, 0, -1)).toEqual(lengths.map((_, i) => String(i)))
})

realRedisTest('batches that wait behind two slow ones are sent when close() is called', async () => {
  const c = await connect({ port: srv.port, commandTimeoutMs: 5000 })
  const p = ns('close')
  // Two batches of 40 on the wire behind DEBUG SLEEP: the third has to wait.
  const first = [c.command('DEBUG', 'SLEEP', '0.3'), ...Array.from({ length: 39 }, () => c.incr(`${p}a`))]
  await nextTick()
  const second = Array.from({ length: 40 }, () => c.incr(`${p}a`))
  await nextTick()
  const waiting = Array.from({ length: 10 }, () => c.incr(`${p}b`))
  await withTimeout(c.close(), 5000, 'close() did not resolve')
  await Promise.all([...first, ...second])
  expect(await Promise.all(waiting)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1))
  expect(await srv.cli('GET', `${p}a`)).toBe('79')
})

realRedisTest('a connection lost with batches waiting: the sent ones reject ERR_CONNECTION, the waiting ones go on the next connection', async () => {
  const proxy = await startProxy(srv.port)
  try {
    const c = await connect({ port: proxy.port, connectTimeoutMs: 2000, reconnect: { minDelayMs: 10, maxDelayMs: 50 } })
    const p = ns('lost')
    expect(await c.incr(`${p}a`)).toBe(1)
    // The path stops delivering: what is written stays in the kernel's buffers.
    proxy.pause()
    proxy.resume() // new connections get through; the frozen one stays frozen
    const sent = Array.from({ length: 40 }, () => c.incr(`${p}a`))
    await nextTick()
    sent.push(...Array.from({ length: 40 }, () => c.incr(`${p}a`)))
    await nextTick()
    const waiting = Array.from({ length: 10 }, () => c.incr(`${p}b`))
    await nextTick()
    proxy.cut()
    for (const r of await Promise.allSettled(sent)) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'ERR_CONNECTION' } })
    expect(await Promise.all(waiting)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1))
    // The frozen batches never reached the server; nothing was sent twice.
    expect(await srv.cli('GET', `${p}a`)).toBe('1')
    expect(await eventually(() => c.incr(`${p}a`), 2000)).toBe(2)
  } finally {
    await proxy.close()
  }
})
