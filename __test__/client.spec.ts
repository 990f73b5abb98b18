// Core commands against a real redis-server: values, TTLs, hashes, sets, scan,
// command(), ping, stats, UTF-8 and binary safety.
import { RedisClient } from '../lib'
import { startRedis, stopAll, RedisServer } from './harness'
import { closeAll, connect, ns } from './helpers'

let srv: RedisServer
let redis: RedisClient

beforeAll(async () => {
  srv = await startRedis()
  redis = await connect(srv.url)
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

describe('strings and TTLs', () => {
  test('get on a miss is null, set/get round trip', async () => {
    const p = ns('str')
    expect(await redis.get(p + 'missing')).toBeNull()
    expect(await redis.getBuffer(p + 'missing')).toBeNull()
    expect(await redis.set(p + 'k', 'hello')).toBeUndefined()
    expect(await redis.get(p + 'k')).toBe('hello')
    expect(await srv.cli('GET', p + 'k')).toBe('hello')
    // No TTL unless asked for.
    expect(await redis.ttl(p + 'k')).toBe(-1)
    expect(await redis.pttl(p + 'k')).toBe(-1)
    // Overwrite and the empty string are values like any other.
    await redis.set(p + 'k', '')
    expect(await redis.get(p + 'k')).toBe('')
    expect(await redis.exists(p + 'k')).toBe(1)
  })

  test('set(key, value, ttlSeconds) sets an expiry within (0, ttl*1000]', async () => {
    const p = ns('ttl')
    for (const ttl of [1, 10, 3600]) {
      await redis.set(p + ttl, 'v', ttl)
      const pttl = await redis.pttl(p + ttl)
      expect(pttl).toBeGreaterThan(0)
      expect(pttl).toBeLessThanOrEqual(ttl * 1000)
      expect(pttl).toBeGreaterThan(ttl * 1000 - 2000)
      const secs = await redis.ttl(p + ttl)
      expect(secs).toBeGreaterThan(0)
      expect(secs).toBeLessThanOrEqual(ttl)
    }
    // A plain set afterwards removes the TTL (SET semantics).
    await redis.set(p + 10, 'w')
    expect(await redis.pttl(p + 10)).toBe(-1)
  })

  test('a TTL really expires the key', async () => {
    const p = ns('exp')
    await redis.set(p + 'k', 'v', { ttlMs: 60 })
    expect(await redis.get(p + 'k')).toBe('v')
    await new Promise((r) => setTimeout(r, 150))
    expect(await redis.get(p + 'k')).toBeNull()
    expect(await redis.pttl(p + 'k')).toBe(-2)
    expect(await redis.ttl(p + 'k')).toBe(-2)
  })

  test('set options: ttlMs, ttlSeconds, nx, xx, keepTtl', async () => {
    const p = ns('setopt')
    // ttlMs
    expect(await redis.set(p + 'a', '1', { ttlMs: 1500 })).toBe(true)
    let pttl = await redis.pttl(p + 'a')
    expect(pttl).toBeGreaterThan(0)
    expect(pttl).toBeLessThanOrEqual(1500)
    // ttlSeconds
    expect(await redis.set(p + 'b', '1', { ttlSeconds: 20 })).toBe(true)
    pttl = await redis.pttl(p + 'b')
    expect(pttl).toBeGreaterThan(18000)
    expect(pttl).toBeLessThanOrEqual(20000)
    // empty options object: a plain SET that reports it wrote
    expect(await redis.set(p + 'plain', 'x', {})).toBe(true)
    expect(await redis.pttl(p + 'plain')).toBe(-1)

    // nx: writes only when missing
    expect(await redis.set(p + 'nx', 'first', { nx: true })).toBe(true)
    expect(await redis.set(p + 'nx', 'second', { nx: true })).toBe(false)
    expect(await redis.get(p + 'nx')).toBe('first')
    // nx with a TTL
    expect(await redis.set(p + 'nxttl', 'v', { nx: true, ttlSeconds: 30 })).toBe(true)
    expect(await redis.ttl(p + 'nxttl')).toBeGreaterThan(28)

    // xx: writes only when present
    expect(await redis.set(p + 'xx', 'v', { xx: true })).toBe(false)
    expect(await redis.get(p + 'xx')).toBeNull()
    await redis.set(p + 'xx', 'old')
    expect(await redis.set(p + 'xx', 'new', { xx: true })).toBe(true)
    expect(await redis.get(p + 'xx')).toBe('new')

    // keepTtl: the value changes, the TTL stays
    await redis.set(p + 'keep', 'v1', 100)
    expect(await redis.set(p + 'keep', 'v2', { keepTtl: true })).toBe(true)
    expect(await redis.get(p + 'keep')).toBe('v2')
    const keep = await redis.pttl(p + 'keep')
    expect(keep).toBeGreaterThan(90000)
    expect(keep).toBeLessThanOrEqual(100000)
    // without keepTtl the TTL goes away
    expect(await redis.set(p + 'keep', 'v3', { xx: true })).toBe(true)
    expect(await redis.pttl(p + 'keep')).toBe(-1)
    // false flags are the same as absent
    expect(await redis.set(p + 'flags', 'v', { nx: false, xx: false, keepTtl: false })).toBe(true)
  })

  test('del, exists, expire, pexpire, ttl, pttl', async () => {
    const p = ns('keys')
    await redis.mset({ [p + 'a']: '1', [p + 'b']: '2', [p + 'c']: '3' })
    expect(await redis.exists(p + 'a')).toBe(1)
    expect(await redis.exists(p + 'a', p + 'b', p + 'nope')).toBe(2)
    expect(await redis.exists([p + 'a', p + 'a'])).toBe(2) // counted twice
    expect(await redis.expire(p + 'a', 50)).toBe(true)
    const t = await redis.ttl(p + 'a')
    expect(t).toBeGreaterThan(48)
    expect(t).toBeLessThanOrEqual(50)
    expect(await redis.pexpire(p + 'b', 2500)).toBe(true)
    const pt = await redis.pttl(p + 'b')
    expect(pt).toBeGreaterThan(0)
    expect(pt).toBeLessThanOrEqual(2500)
    expect(await redis.expire(p + 'nope', 10)).toBe(false)
    expect(await redis.pexpire(p + 'nope', 10)).toBe(false)
    expect(await redis.ttl(p + 'nope')).toBe(-2)
    expect(await redis.pttl(p + 'nope')).toBe(-2)
    expect(await redis.del(p + 'a', p + 'b', p + 'nope')).toBe(2)
    expect(await redis.del([p + 'c'])).toBe(1)
    expect(await redis.del(p + 'c')).toBe(0)
    expect(await redis.exists(p + 'a', p + 'b', p + 'c')).toBe(0)
  })

  test('incr and incrBy', async () => {
    const p = ns('incr')
    expect(await redis.incr(p + 'n')).toBe(1)
    expect(await redis.incr(p + 'n')).toBe(2)
    expect(await redis.incrBy(p + 'n', 40)).toBe(42)
    expect(await redis.incrBy(p + 'n', -50)).toBe(-8)
    expect(await redis.incrBy(p + 'm', 2 ** 53 - 1)).toBe(2 ** 53 - 1)
    expect(await redis.get(p + 'n')).toBe('-8')
    await redis.set(p + 's', 'abc')
    await expect(redis.incr(p + 's')).rejects.toMatchObject({
      code: 'ERR_REPLY',
      message: expect.stringContaining('not an integer'),
    })
  })

  test('mget and mset (object, Map, entries array)', async () => {
    const p = ns('multi')
    expect(await redis.mset({ [p + 'o1']: 'a', [p + 'o2']: 'b' })).toBeUndefined()
    await redis.mset(new Map<string, string | Buffer>([[p + 'm1', 'c'], [p + 'm2', Buffer.from('d')]]))
    await redis.mset([[p + 'e1', 'e'], [Buffer.from(p + 'e2'), 'f']])
    expect(await redis.mget(p + 'o1', p + 'o2', p + 'm1', p + 'm2', p + 'e1', p + 'e2', p + 'none')).toEqual([
      'a', 'b', 'c', 'd', 'e', 'f', null,
    ])
    expect(await redis.mget([p + 'o1', p + 'none'])).toEqual(['a', null])
    expect(await redis.mget(p + 'o2')).toEqual(['b'])
  })

  test('getDel and getEx (ttl, persist)', async () => {
    const p = ns('getx')
    await redis.set(p + 'd', 'gone')
    expect(await redis.getDel(p + 'd')).toBe('gone')
    expect(await redis.getDel(p + 'd')).toBeNull()
    expect(await redis.exists(p + 'd')).toBe(0)

    await redis.set(p + 'x', 'val')
    expect(await redis.getEx(p + 'x')).toBe('val')
    expect(await redis.pttl(p + 'x')).toBe(-1)
    expect(await redis.getEx(p + 'x', { ttlSeconds: 30 })).toBe('val')
    let pttl = await redis.pttl(p + 'x')
    expect(pttl).toBeGreaterThan(28000)
    expect(pttl).toBeLessThanOrEqual(30000)
    expect(await redis.getEx(p + 'x', { ttlMs: 1200 })).toBe('val')
    pttl = await redis.pttl(p + 'x')
    expect(pttl).toBeGreaterThan(0)
    expect(pttl).toBeLessThanOrEqual(1200)
    expect(await redis.getEx(p + 'x', { persist: true })).toBe('val')
    expect(await redis.pttl(p + 'x')).toBe(-1)
    expect(await redis.getEx(p + 'missing', { ttlSeconds: 5 })).toBeNull()
    expect(await redis.exists(p + 'missing')).toBe(0)
  })
})

describe('hashes and sets', () => {
  test('hset (both forms), hget, hgetall, hdel', async () => {
    const p = ns('hash')
    const h = p + 'h'
    expect(await redis.hgetall(h)).toEqual({})
    expect(await redis.hget(h, 'f')).toBeNull()
    expect(await redis.hset(h, 'f1', 'v1')).toBe(1)
    expect(await redis.hset(h, 'f1', 'v1b')).toBe(0) // update, not added
    expect(await redis.hset(h, { f2: 'v2', f3: Buffer.from('v3') })).toBe(2)
    expect(await redis.hset(h, new Map<string, string>([['f4', 'v4'], ['f1', 'v1c']]))).toBe(1)
    expect(await redis.hget(h, 'f1')).toBe('v1c')
    expect(await redis.hget(h, Buffer.from('f3'))).toBe('v3')
    expect(await redis.hgetall(h)).toEqual({ f1: 'v1c', f2: 'v2', f3: 'v3', f4: 'v4' })
    expect(await srv.cli('HGET', h, 'f2')).toBe('v2')
    expect(await redis.hdel(h, 'f1', 'f2', 'nope')).toBe(2)
    expect(await redis.hdel(h, ['f3'])).toBe(1)
    expect(await redis.hgetall(h)).toEqual({ f4: 'v4' })
    // hash field names that look like numbers or prototype names stay plain fields
    await redis.hset(h, { '1': 'one', constructor: 'c', __proto__x: 'p' })
    const all = await redis.hgetall(h)
    expect(all['1']).toBe('one')
    expect(all.constructor).toBe('c')
    expect(all.__proto__x).toBe('p')
  })

  test('sadd, srem, smembers', async () => {
    const p = ns('set')
    const s = p + 's'
    expect(await redis.smembers(s)).toEqual([])
    expect(await redis.sadd(s, 'a', 'b', 'c')).toBe(3)
    expect(await redis.sadd(s, ['c', 'd'])).toBe(1)
    expect(await redis.sadd(s, Buffer.from('e'))).toBe(1)
    expect((await redis.smembers(s)).sort()).toEqual(['a', 'b', 'c', 'd', 'e'])
    expect(await redis.srem(s, 'a', 'zzz')).toBe(1)
    expect(await redis.srem(s, ['b', 'c'])).toBe(2)
    expect((await redis.smembers(s)).sort()).toEqual(['d', 'e'])
  })

  test('wrong type against a hash is an ERR_REPLY', async () => {
    const p = ns('wt')
    await redis.hset(p + 'h', 'f', 'v')
    await expect(redis.get(p + 'h')).rejects.toMatchObject({
      code: 'ERR_REPLY',
      message: expect.stringContaining('WRONGTYPE'),
    })
    await expect(redis.sadd(p + 'h', 'm')).rejects.toMatchObject({ code: 'ERR_REPLY' })
    // the connection is fine afterwards
    expect(await redis.hget(p + 'h', 'f')).toBe('v')
  })
})

describe('scan', () => {
  const p = ns('scan')
  beforeAll(async () => {
    const entries: Array<[string, string]> = []
    for (let i = 0; i < 1000; i++) entries.push([`${p}k:${i}`, String(i)])
    await redis.mset(entries)
    await redis.mset({ [`${p}other:1`]: 'x', [`${p}other:2`]: 'y' })
  })

  test('visits every matching key exactly once', async () => {
    const seen = new Map<string, number>()
    for await (const key of redis.scan({ match: `${p}k:*`, count: 100 })) {
      seen.set(key, (seen.get(key) ?? 0) + 1)
    }
    expect(seen.size).toBe(1000)
    expect([...seen.values()].every((n) => n === 1)).toBe(true)
    for (let i = 0; i < 1000; i++) expect(seen.has(`${p}k:${i}`)).toBe(true)
  })

  test('without match, all keys; with a large count, few round trips', async () => {
    const all: string[] = []
    for await (const key of redis.scan()) all.push(key)
    const mine = all.filter((k) => k.startsWith(p))
    expect(mine.length).toBe(1002)
    expect(new Set(mine).size).toBe(1002)

    const before = redis.stats().commands
    const others: string[] = []
    for await (const key of redis.scan({ match: `${p}other:*`, count: 5000 })) others.push(key)
    expect(others.sort()).toEqual([`${p}other:1`, `${p}other:2`])
    expect(redis.stats().commands - before).toBeLessThanOrEqual(3)
  })

  test('type filter and early break', async () => {
    await redis.hset(`${p}hash`, 'f', 'v')
    const hashes: string[] = []
    for await (const key of redis.scan({ match: `${p}*`, type: 'hash', count: 2000 })) hashes.push(key)
    expect(hashes).toEqual([`${p}hash`])
    let n = 0
    for await (const key of redis.scan({ match: `${p}k:*` })) {
      expect(key.startsWith(`${p}k:`)).toBe(true)
      if (++n === 5) break
    }
    expect(n).toBe(5)
    // The client still works after an abandoned iteration.
    expect(await redis.get(`${p}k:7`)).toBe('7')
  })
})

describe('command()', () => {
  test('LPUSH / LRANGE and other generic replies', async () => {
    const p = ns('cmd')
    expect(await redis.command('LPUSH', p + 'l', 'a', 'b', 'c')).toBe(3)
    expect(await redis.command('lrange', p + 'l', 0, -1)).toEqual(['c', 'b', 'a'])
    expect(await redis.command('LLEN', p + 'l')).toBe(3)
    expect(await redis.command('GET', p + 'missing')).toBeNull()
    expect(await redis.command('SET', p + 's', 'v')).toBe('OK')
    expect(await redis.command('ECHO', 'hi')).toBe('hi')
    expect(await redis.command('INCRBYFLOAT', p + 'f', 1.5)).toBe('1.5')
    // binary (non-UTF-8) bulk replies come back as Buffers
    await redis.set(p + 'bin', Buffer.from([0xff, 0xfe, 0x00]))
    const bin = await redis.command('GET', p + 'bin')
    expect(Buffer.isBuffer(bin)).toBe(true)
    expect([...(bin as Buffer)]).toEqual([0xff, 0xfe, 0x00])
  })

  test('an error reply rejects with ERR_REPLY and keeps the server text', async () => {
    const p = ns('cmderr')
    await redis.set(p + 'str', 'v')
    const err: any = await redis.command('LPUSH', p + 'str', 'x').catch((e) => e)
    expect(err).toMatchObject({ code: 'ERR_REPLY' })
    expect(err.message).toContain('WRONGTYPE Operation against a key holding the wrong kind of value')
    await expect(redis.command('NOSUCHCOMMAND', 'x')).rejects.toMatchObject({
      code: 'ERR_REPLY',
      message: expect.stringContaining('unknown command'),
    })
    // Later calls get their own replies.
    expect(await redis.get(p + 'str')).toBe('v')
  })
})

describe('ping and stats', () => {
  test('ping() resolves a positive round trip in ms', async () => {
    const ms = await redis.ping()
    expect(typeof ms).toBe('number')
    expect(ms).toBeGreaterThan(0)
    expect(ms).toBeLessThan(1000)
  })

  test('stats() counts commands, errors and latency', async () => {
    const c = await connect(srv.url)
    const s0 = c.stats()
    expect(s0).toMatchObject({ commands: 0, errors: 0, reconnects: 0, inFlight: 0 })
    const p = ns('stats')
    await Promise.all([c.set(p + 'a', '1'), c.get(p + 'a'), c.get(p + 'b')])
    const s1 = c.stats()
    expect(s1.commands).toBe(3)
    expect(s1.replies).toBe(3)
    expect(s1.errors).toBe(0)
    expect(s1.inFlight).toBe(0)
    expect(s1.latency.p50Ms).toBeGreaterThan(0)
    expect(s1.latency.maxMs).toBeGreaterThanOrEqual(s1.latency.p50Ms)
    expect(s1.latency.p99Ms).toBeGreaterThanOrEqual(s1.latency.p50Ms)
    await c.command('NOSUCHCOMMAND').catch(() => undefined)
    await c.hset(p + 'h', 'f', 'v')
    await c.get(p + 'h').catch(() => undefined)
    const s2 = c.stats()
    expect(s2.commands).toBe(6)
    expect(s2.errors).toBe(2)
    // in flight while waiting
    const pending = [c.get(p + 'a'), c.get(p + 'a')]
    expect(c.stats().inFlight).toBe(2)
    await Promise.all(pending)
    expect(c.stats().inFlight).toBe(0)
    expect(JSON.parse(JSON.stringify(c.stats()))).toEqual(c.stats())
  })
})

describe('UTF-8 and binary safety', () => {
  test('emoji and CJK strings round-trip as text and as keys', async () => {
    const p = ns('utf8')
    const values = ['héllo wörld', '日本語のテキスト', '中文字符', '한국어', '👍🏽🚀 family: 👨‍👩‍👧‍👦', 'mixed ascii ✓ and \u0000 nul']
    for (const [i, v] of values.entries()) {
      await redis.set(`${p}${i}`, v)
      expect(await redis.get(`${p}${i}`)).toBe(v)
      expect((await redis.getBuffer(`${p}${i}`))!.equals(Buffer.from(v, 'utf8'))).toBe(true)
    }
    const key = `${p}キー🔑`
    await redis.set(key, '値')
    expect(await redis.get(key)).toBe('値')
    expect(await srv.cli('STRLEN', key)).toBe(String(Buffer.byteLength('値')))
    await redis.hset(`${p}h`, '字段', '価値🎉')
    expect(await redis.hgetall(`${p}h`)).toEqual({ 字段: '価値🎉' })
    await redis.sadd(`${p}s`, 'ü', '🚀')
    expect((await redis.smembers(`${p}s`)).sort()).toEqual(['ü', '🚀'].sort())
    expect(await redis.mget(key, `${p}4`)).toEqual(['値', values[4]])
    // long strings of multi-byte characters (past any small internal buffer)
    const long = '🚀日本'.repeat(5000)
    await redis.set(`${p}long`, long)
    expect(await redis.get(`${p}long`)).toBe(long)
  })

  test('a Buffer of all 256 byte values round-trips, as value and as key', async () => {
    const p = ns('bin')
    const all = Buffer.alloc(256)
    for (let i = 0; i < 256; i++) all[i] = i
    await redis.set(p + 'v', all)
    const back = await redis.getBuffer(p + 'v')
    expect(Buffer.isBuffer(back)).toBe(true)
    expect(back!.equals(all)).toBe(true)
    expect(await srv.cli('STRLEN', p + 'v')).toBe('256')

    const key = Buffer.concat([Buffer.from(p), all])
    await redis.set(key, 'by binary key')
    expect(await redis.get(key)).toBe('by binary key')
    expect(await redis.exists(key)).toBe(1)
    await redis.set(key, all)
    expect((await redis.getBuffer(key))!.equals(all)).toBe(true)
    // The key really is those bytes (not a lossy UTF-8 rendering).
    expect(await redis.get(Buffer.concat([Buffer.from(p), Buffer.from(all.toString('utf8'), 'utf8')]))).toBeNull()
    expect(await redis.del(key)).toBe(1)

    // Buffers through hashes, sets and mset
    await redis.hset(p + 'h', Buffer.from([0, 1, 2]), all)
    await redis.mset([[Buffer.from([0xff, 0x00, 0x7f]), all]])
    expect((await redis.getBuffer(Buffer.from([0xff, 0x00, 0x7f])))!.equals(all)).toBe(true)
    await redis.del(Buffer.from([0xff, 0x00, 0x7f]))
    // an empty Buffer is a valid value
    await redis.set(p + 'empty', Buffer.alloc(0))
    expect((await redis.getBuffer(p + 'empty'))!.length).toBe(0)
  })

  test('a 5 MB value round-trips (string and Buffer)', async () => {
    const p = ns('big')
    const big = Buffer.alloc(5 * 1024 * 1024)
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 8)) & 0xff
    await redis.set(p + 'buf', big)
    const back = await redis.getBuffer(p + 'buf')
    expect(back!.length).toBe(big.length)
    expect(back!.equals(big)).toBe(true)
    const text = 'x'.repeat(5 * 1024 * 1024 - 3) + '€'
    await redis.set(p + 'str', text)
    const t = await redis.get(p + 'str')
    expect(t!.length).toBe(text.length)
    expect(t === text).toBe(true)
    // small commands in the same batch as a large one keep their own replies
    const [a, b, c] = await Promise.all([redis.get(p + 'str'), redis.set(p + 's', 'small'), redis.get(p + 's')])
    expect(a === text).toBe(true)
    expect(b).toBeUndefined()
    expect(c).toBe('small')
  })

  test('array replies of every length around how they are built (one by one below 4 and above 8,192)', async () => {
    const p = ns('arrays')
    const n = 20_000
    for (let i = 0; i < n; i += 1000) {
      await redis.command('RPUSH', p + 'l', ...Array.from({ length: 1000 }, (_, j) => String(i + j)))
    }
    const first = (len: number) => Array.from({ length: len }, (_, j) => String(j))
    expect(await redis.command('LRANGE', p + 'missing', 0, -1)).toEqual([])
    for (const len of [1, 3, 4, 5, 8191, 8192, 8193, n]) {
      expect(await redis.command('LRANGE', p + 'l', 0, len - 1)).toEqual(first(len))
    }
    // nested: an array of arrays of each size, and MGET's strings-or-null shape
    const nested = (await redis.command('EVAL', "return { redis.call('LRANGE', KEYS[1], 0, 2), redis.call('LRANGE', KEYS[1], 0, 9000) }", 1, p + 'l')) as string[][]
    expect(nested.map((a) => a.length)).toEqual([3, 9001])
    expect(nested[1]).toEqual(first(9001))
    await redis.set(p + 'k1', 'v1')
    const keys = Array.from({ length: 8193 }, (_, i) => `${p}k${i}`)
    const got = await redis.mget(keys)
    expect(got.length).toBe(8193)
    expect(got[1]).toBe('v1')
    expect(got.filter((v) => v !== null)).toEqual(['v1'])
    // one tick's replies beyond 8,192 (the batch array is built one by one)
    const many = await Promise.all(Array.from({ length: 9000 }, (_, i) => redis.command('LINDEX', p + 'l', i)))
    expect(many).toEqual(first(9000))
  })

  test('many concurrent calls each get their own reply', async () => {
    const p = ns('conc')
    await Promise.all(Array.from({ length: 2000 }, (_, i) => redis.set(`${p}${i}`, `v${i}`)))
    const got = await Promise.all(Array.from({ length: 2000 }, (_, i) => redis.get(`${p}${i}`)))
    expect(got.every((v, i) => v === `v${i}`)).toBe(true)
  })
})
