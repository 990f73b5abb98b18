// The harness' TCP proxy (harness/proxy.js), checked with raw sockets against a real
// redis-server: the reliability specs trust it to forward faithfully, to blackhole
// without closing, to cut, to retarget, and to deliver replies in small pieces.
import net from 'net'
import { startProxy, startRedis, stopAll, RedisServer } from '../harness'
import { sleep } from '../helpers'

let a: RedisServer
let b: RedisServer
beforeAll(async () => {
  ;[a, b] = await Promise.all([startRedis(), startRedis()])
  await a.cli('SET', 'who', 'a')
  await b.cli('SET', 'who', 'b')
})
afterAll(stopAll)

/** A raw RESP connection: send inline commands, collect what comes back. */
class Raw {
  readonly sock: net.Socket
  data = ''
  reads = 0
  closed = false
  constructor(port: number) {
    this.sock = net.connect({ host: '127.0.0.1', port })
    this.sock.on('data', (d) => {
      this.data += d.toString('latin1')
      this.reads++
    })
    this.sock.on('error', () => undefined)
    this.sock.on('close', () => (this.closed = true))
  }
  send(line: string) {
    this.sock.write(`${line}\r\n`)
  }
  /** Waits until the received text matches, or `ms` passes (then resolves false). */
  async until(re: RegExp | ((d: string) => boolean), ms = 3000): Promise<boolean> {
    const test = typeof re === 'function' ? re : (d: string) => re.test(d)
    const deadline = Date.now() + ms
    while (!test(this.data)) {
      if (Date.now() > deadline) return false
      await sleep(10)
    }
    return true
  }
  close() {
    this.sock.destroy()
  }
}

test('forwards both ways', async () => {
  const p = await startProxy(a.port)
  const r = new Raw(p.port)
  r.send('GET who')
  expect(await r.until(/\$1\r\na\r\n/)).toBe(true)
  expect(p.connections).toBe(1)
  r.close()
  await p.close()
})

test('pause(): nothing crosses and nothing closes; after resume() new connections get through, the paused ones stay silent', async () => {
  const p = await startProxy(a.port)
  const before = new Raw(p.port)
  before.send('PING')
  expect(await before.until(/\+PONG/)).toBe(true)
  p.pause()
  expect(p.paused).toBe(true)
  before.send('INCR proxy:paused')
  const during = new Raw(p.port) // accepted, then nothing
  during.send('PING')
  await sleep(300)
  expect({ before: before.data, during: during.data, closed: [before.closed, during.closed] }).toEqual({ before: '+PONG\r\n', during: '', closed: [false, false] })
  // the command sent into the blackhole never reached the server
  expect(await a.cli('GET', 'proxy:paused')).toBe('')
  p.resume()
  const after = new Raw(p.port)
  after.send('GET who')
  expect(await after.until(/\$1\r\na\r\n/)).toBe(true)
  await sleep(200)
  expect({ before: before.data, during: during.data }).toEqual({ before: '+PONG\r\n', during: '' })
  expect(p.accepted).toBe(3)
  for (const r of [before, during, after]) r.close()
  await p.close()
})

test('cut(): the client sees its connection close; new connections work', async () => {
  const p = await startProxy(a.port)
  const r = new Raw(p.port)
  r.send('PING')
  expect(await r.until(/\+PONG/)).toBe(true)
  p.cut()
  await sleep(100)
  expect(r.closed).toBe(true)
  const again = new Raw(p.port)
  again.send('PING')
  expect(await again.until(/\+PONG/)).toBe(true)
  again.close()
  await p.close()
})

test('retarget(): later connections reach the other server, open ones stay', async () => {
  const p = await startProxy(a.port)
  const old = new Raw(p.port)
  old.send('PING')
  expect(await old.until(/\+PONG/)).toBe(true)
  p.retarget(b.port)
  expect(p.targetPort).toBe(b.port)
  const fresh = new Raw(p.port)
  fresh.send('GET who')
  old.send('GET who')
  expect(await fresh.until(/\$1\r\nb\r\n/)).toBe(true)
  expect(await old.until(/\$1\r\na\r\n/)).toBe(true)
  old.close()
  fresh.close()
  await p.close()
})

test('chunkBytes: a large reply arrives whole, in many reads of at most that size', async () => {
  await a.cli('EVAL', "return redis.call('SET', KEYS[1], string.rep('x', 200000))", '1', 'big')
  const p = await startProxy(a.port, { chunkBytes: 4096, chunkGapMs: 1 })
  const r = new Raw(p.port)
  r.send('GET big')
  expect(await r.until((d) => d.length >= 200_000 + 11, 10_000)).toBe(true)
  expect(r.data).toBe(`$200000\r\n${'x'.repeat(200_000)}\r\n`)
  // 200,011 bytes in pieces of 4 KB: at least 49 reads
  expect(r.reads).toBeGreaterThanOrEqual(49)
  r.close()
  await p.close()
})

test('delayMs: replies come no sooner than the delay, in order', async () => {
  const p = await startProxy(a.port, { delayMs: 150 })
  const r = new Raw(p.port)
  const start = Date.now()
  r.send('ECHO one')
  r.send('ECHO two')
  expect(await r.until(/one[\s\S]*two/)).toBe(true)
  // a lower bound (the proxy's own contract), never an upper one
  expect(Date.now() - start).toBeGreaterThanOrEqual(140)
  expect(r.data).toBe('$3\r\none\r\n$3\r\ntwo\r\n')
  r.close()
  await p.close()
})

test('close(): stops listening', async () => {
  const p = await startProxy(a.port)
  const port = p.port
  await p.close()
  const refused = await new Promise<boolean>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port })
    s.on('connect', () => {
      s.destroy()
      resolve(false)
    })
    s.on('error', () => resolve(true))
  })
  expect(refused).toBe(true)
})
