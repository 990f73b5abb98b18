// Server-assisted client-side caching (RESP3 CLIENT TRACKING, BCAST): two clients
// play two API instances on one real redis-server.
import { RedisClient } from '../lib'
import { RedisThrottlerStorage } from '../lib/ratelimit/throttler'
import { RedisServer, startRedis, stopAll } from './harness'
import { realRedisTest } from './helpers'

let srv: RedisServer
const open: RedisClient[] = []

async function connect(options: Parameters<typeof RedisClient.connect>[0]): Promise<RedisClient> {
  const c = await RedisClient.connect(options)
  open.push(c)
  return c
}

beforeAll(async () => {
  srv = await startRedis()
})
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()))
})
afterAll(stopAll)

const cached = (prefixes = ['coa:'], extra: Record<string, unknown> = {}) =>
  connect({ url: srv.url, clientCache: { prefixes }, ...extra })

test('after the first read, reads are served from memory', async () => {
  const a = await cached()
  const b = await connect(srv.url)
  await b.set('coa:1', 'v1')
  // The server announces b's write to a; a fill that races an invalidation is
  // dropped (safe, one more round trip later), so let the announcement arrive.
  await a.ping()
  expect(await a.get('coa:1')).toBe('v1')
  const before = a.stats().commands
  for (let i = 0; i < 100; i++) expect(await a.get('coa:1')).toBe('v1')
  expect(a.stats().commands).toBe(before) // no round trip
  expect(a.stats().clientCache).toMatchObject({ hits: 100, misses: 1, entries: 1 })
})

test('a write by another instance reaches this copy within 50 ms, and the old value is never served again', async () => {
  const a = await cached()
  const b = await connect(srv.url)
  await b.set('coa:2', 'old')
  expect(await a.get('coa:2')).toBe('old')
  expect(await a.get('coa:2')).toBe('old')
  await b.set('coa:2', 'new')
  const start = process.hrtime.bigint()
  let sawNew = false
  let firstNewMs = -1
  const seen: string[] = []
  while (process.hrtime.bigint() - start < 200_000_000n) {
    const v = (await a.get('coa:2')) as string
    seen.push(v)
    if (v === 'new' && !sawNew) {
      sawNew = true
      firstNewMs = Number(process.hrtime.bigint() - start) / 1e6
    }
    if (sawNew) expect(v).toBe('new') // never back to the old value
  }
  expect(sawNew).toBe(true)
  expect(firstNewMs).toBeLessThan(50)
  expect(a.stats().clientCache!.invalidations).toBeGreaterThanOrEqual(1)
  // And most reads were still served from memory.
  expect(a.stats().clientCache!.hits).toBeGreaterThan(seen.length / 2)
})

test('invalidations reach every caching instance, including the writer itself', async () => {
  const a = await cached()
  const b = await cached()
  await a.set('coa:3', 'one')
  expect(await a.get('coa:3')).toBe('one')
  expect(await b.get('coa:3')).toBe('one')
  await a.set('coa:3', 'two') // written through A
  await b.get('other') // a round trip on B: its invalidation has arrived by now
  expect(await a.get('coa:3')).toBe('two')
  expect(await b.get('coa:3')).toBe('two')
  await b.del('coa:3')
  await a.ping()
  expect(await a.get('coa:3')).toBeNull()
})

test('keys outside the prefixes always go to the server', async () => {
  const a = await cached()
  await a.set('plain', 'x')
  const before = a.stats().commands
  await a.get('plain')
  await a.get('plain')
  expect(a.stats().commands).toBe(before + 2)
  expect(a.stats().clientCache).toMatchObject({ hits: 0, entries: 0 })
})

test('prefixes are relative to keyPrefix', async () => {
  const a = await connect({ url: srv.url, keyPrefix: 'app:', clientCache: { prefixes: ['perm:'] } })
  const raw = await connect(srv.url)
  await raw.set('app:perm:admin', 'all')
  expect(await a.get('perm:admin')).toBe('all')
  expect(await a.get('perm:admin')).toBe('all')
  await raw.set('app:perm:admin', 'none')
  await raw.ping()
  await a.ping()
  expect(await a.get('perm:admin')).toBe('none')
})

test('memory is bounded: least recently used entries go first', async () => {
  const a = await cached(['lru:'], { clientCache: { prefixes: ['lru:'], maxEntries: 50 } })
  await a.mset(Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`lru:${i}`, `v${i}`])))
  await a.get('lru:0')
  for (let i = 1; i < 200; i++) {
    await a.get(`lru:${i}`)
    if (i % 10 === 0) await a.get('lru:0') // keep lru:0 recently used
  }
  expect(a.stats().clientCache!.entries).toBe(50)
  const before = a.stats().commands
  expect(await a.get('lru:0')).toBe('v0') // kept: recently used
  expect(await a.get('lru:199')).toBe('v199') // kept: newest
  expect(a.stats().commands).toBe(before)
  expect(await a.get('lru:100')).toBe('v100') // evicted: a round trip
  expect(a.stats().commands).toBe(before + 1)
})

test('entries expire locally after ttlMs', async () => {
  const a = await cached(['ttl:'], { clientCache: { prefixes: ['ttl:'], ttlMs: 100 } })
  await a.set('ttl:k', 'v')
  await a.ping() // the announcement of a's own write arrives first (see the first test)
  await a.get('ttl:k')
  const before = a.stats().commands
  await a.get('ttl:k')
  expect(a.stats().commands).toBe(before)
  await new Promise((r) => setTimeout(r, 150))
  await a.get('ttl:k')
  expect(a.stats().commands).toBe(before + 1)
})

realRedisTest('a server restart leaves no stale entry: the cache is dropped with the connection', async () => {
  const s = await startRedis()
  const a = await connect({ url: s.url, clientCache: { prefixes: ['coa:'] }, reconnect: { minDelayMs: 20, maxDelayMs: 100 } })
  await a.set('coa:r', 'before')
  expect(await a.get('coa:r')).toBe('before')
  expect(await a.get('coa:r')).toBe('before')
  await s.restart() // nothing persisted (--save "")
  // Until the client notices, reads go to the dead connection and fail; once it has,
  // the copy is gone. It is never served.
  let v: string | null | undefined
  const start = Date.now()
  while (Date.now() - start < 5000) {
    try {
      v = await a.get('coa:r')
      break
    } catch (e) {
      expect(e).toMatchObject({ code: 'ERR_CONNECTION' })
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  expect(v).toBeNull()
  // Tracking is back on after the reconnect: a write by another client still invalidates.
  const b = await connect(s.url)
  expect(await a.get('coa:r')).toBeNull()
  await b.set('coa:r', 'after')
  await b.ping()
  await a.ping()
  expect(await a.get('coa:r')).toBe('after')
  await a.close()
  await s.stop()
})

test('the other commands keep their answers on the RESP3 connection caching needs', async () => {
  const a = await cached()
  await a.hset('coa:h', { f: '1', g: '2' })
  expect(await a.hgetall('coa:h')).toEqual({ f: '1', g: '2' })
  await a.sadd('coa:s', 'x', 'y')
  expect((await a.smembers('coa:s')).sort()).toEqual(['x', 'y'])
  expect(await a.set('coa:nx', 'v', { nx: true })).toBe(true)
  expect(await a.set('coa:nx', 'v', { nx: true })).toBe(false)
  expect(await a.mget('coa:nx', 'coa:none')).toEqual(['v', null])
  expect(await a.command('INCRBYFLOAT', 'coa:f', '1.5')).toBe('1.5')
  const storage = new RedisThrottlerStorage(a)
  const r = await storage.increment('k', 60_000, 1, 0, 'default')
  expect(r).toMatchObject({ totalHits: 1, isBlocked: false })
  const r2 = await storage.increment('k', 60_000, 1, 0, 'default')
  expect(r2).toMatchObject({ totalHits: 2, isBlocked: true })
  const rl = await a.rateLimit('user', { limit: 1, windowMs: 60_000 })
  expect(rl.allowed).toBe(true)
  expect((await a.rateLimit('user', { limit: 1, windowMs: 60_000 })).allowed).toBe(false)
})

test('bad clientCache options are refused before connecting', async () => {
  await expect(RedisClient.connect({ url: srv.url, clientCache: { prefixes: [] } })).rejects.toMatchObject({
    code: 'ERR_INVALID_ARGUMENT',
  })
  await expect(
    RedisClient.connect({ url: srv.url, clientCache: { prefixes: ['a'], maxEntries: 0 } }),
  ).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
})
