// Issue 18, point 7: over TLS, the end of a batch could stay in the TLS layer's buffer
// after a would-block until the next write (no flush), so that its reply never came.
// Test: a large SET over rediss:// while the server is not reading (paused briefly:
// SIGSTOP/SIGCONT, or DEBUG SLEEP from another connection), then no other traffic at
// all: the reply must arrive, and the value be whole.
import { createHash } from 'crypto'
import { readFileSync } from 'fs'
import { RedisClient } from '../../lib'
import { startRedis, stopAll, RedisServer } from '../harness'
import { closeAll, connect, sleep, withTimeout } from '../helpers'

/** Long: the server is paused for a fraction of it, and no timeout must explain a failure. */
const COMMAND_TIMEOUT_MS = 8_000
const PAUSE_MS = 400

let srv: RedisServer
beforeAll(async () => {
  srv = await startRedis({ tls: true, args: ['--enable-debug-command', 'yes'] })
})
afterEach(closeAll)
afterAll(async () => {
  try {
    srv.resume()
  } catch {
    /* not running */
  }
  await stopAll()
})

function tlsClient(): Promise<RedisClient> {
  return connect({ url: srv.url, tls: { ca: srv.certs!.ca }, commandTimeoutMs: COMMAND_TIMEOUT_MS })
}

/** A value of `mb` MB (plus `extra` bytes) with a pattern, so a lost or reordered piece shows. */
function value(mb: number, extra = 0): Buffer {
  const b = Buffer.alloc(Math.round(mb * 1024 * 1024) + extra)
  for (let i = 0; i + 4 <= b.length; i += 4) b.writeUInt32LE(i, i)
  return b
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** The value's digest as the server holds it, read through a fresh client. */
async function stored(key: string): Promise<string | undefined> {
  const c = await tlsClient()
  const got = await c.getBuffer(key)
  return got ? sha(got) : undefined
}

test.each([1, 4, 16])('SET of %i MB while the server is stopped (SIGSTOP): the reply arrives with no other traffic', async (mb) => {
  const c = await tlsClient()
  await c.ping() // connected and idle
  const v = value(mb)
  const key = `tls:stopped:${mb}`
  srv.pause()
  const set = c.set(key, v) // the socket fills up: the TLS writer meets would-block
  await sleep(PAUSE_MS)
  srv.resume()
  // nothing else is sent by this client: only a flush can finish the SET
  const outcome = await withTimeout(set.then(() => 'resolved', (e) => `rejected ${e?.code}: ${e?.message}`), COMMAND_TIMEOUT_MS + 2000, 'still pending')
    .catch((e: Error) => e.message)
  expect(outcome).toBe('resolved')
  expect(await stored(key)).toBe(sha(v))
}, 60_000)

/**
 * The sizes to try: the bug needs the last bytes of a command accepted by the TLS layer
 * while the socket is full, i.e. a command a little larger (by less than the TLS
 * layer's 64 KB buffer) than what the kernel takes while the server reads nothing: the
 * client's send buffer (it grows up to tcp_wmem's maximum) and the server's receive
 * window. Sizes from 3/4 of tcp_wmem's maximum to 10 % above it, 32 KB apart, are sure
 * to hit that window on Linux (measured: 3.87 MB taken with the 4 MB default).
 */
function sizesAcrossKernelBuffers(): number[] {
  let wmemMax = 4 * 1024 * 1024
  try {
    wmemMax = Number(readFileSync('/proc/sys/net/ipv4/tcp_wmem', 'utf8').trim().split(/\s+/)[2]) || wmemMax
  } catch {
    // not Linux: the Linux default
  }
  const out: number[] = []
  for (let s = Math.floor(wmemMax * 0.75); s <= wmemMax * 1.1; s += 32 * 1024) out.push(s)
  return out
}

test('SETs of every size across the kernel buffers, each on its own connection, while the server is stopped: every reply arrives with no other traffic', async () => {
  const sizes = sizesAcrossKernelBuffers()
  const big = value(Math.ceil(sizes[sizes.length - 1] / 2 ** 20))
  const clients = await Promise.all(sizes.map(() => tlsClient()))
  await Promise.all(clients.map((c) => c.ping()))
  srv.pause()
  const sets = clients.map((c, i) => c.set(`tls:size:${i}`, big.subarray(0, sizes[i])).then(() => 'resolved', (e) => `rejected ${e?.code}`))
  await sleep(PAUSE_MS)
  srv.resume()
  const outcomes = await withTimeout(Promise.all(sets), COMMAND_TIMEOUT_MS + 2000, 'still pending').catch((e: Error) => sizes.map(() => e.message))
  const stuck = sizes.map((size, i) => (outcomes[i] === 'resolved' ? '' : `${size} bytes: ${outcomes[i]}`)).filter(Boolean)
  expect(stuck).toEqual([])
}, 120_000)

test('a burst of 32 SETs of 256 KB while the server sleeps (DEBUG SLEEP from another connection): every reply arrives', async () => {
  const c = await tlsClient()
  const sleeper = await tlsClient()
  await c.ping()
  const v = value(0.25)
  const asleep = sleeper.command('DEBUG', 'SLEEP', String(PAUSE_MS / 1000))
  await sleep(50) // the server is inside DEBUG SLEEP
  const sets = Array.from({ length: 32 }, (_, i) => c.set(`tls:burst:${i}`, v))
  const outcomes = await withTimeout(
    Promise.all(sets.map((p) => p.then(() => 'resolved', (e) => `rejected ${e?.code}`))),
    COMMAND_TIMEOUT_MS + 2000,
    'still pending',
  ).catch((e: Error) => [e.message])
  await asleep
  expect(outcomes).toEqual(Array(32).fill('resolved'))
  expect(await stored('tls:burst:31')).toBe(sha(v))
}, 60_000)

test('a large reply (GET of 16 MB) while the server is stopped halfway through writing it: it arrives whole', async () => {
  const c = await tlsClient()
  const v = value(16)
  await c.set('tls:reply', v)
  const got = c.getBuffer('tls:reply')
  await sleep(5)
  srv.pause()
  await sleep(PAUSE_MS)
  srv.resume()
  const b = await withTimeout(got, COMMAND_TIMEOUT_MS + 2000, 'still pending')
  expect(b && sha(b)).toBe(sha(v))
}, 60_000)
