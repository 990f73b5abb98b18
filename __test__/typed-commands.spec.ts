// The typed commands (lib/core/commands.ts), group by group: against a redis-server, and
// in the `memory` jest project against memory:// for the commands it has. Each group runs
// on a RESP2 client and on a RESP3 one (clientCache turns RESP3 on), whose raw replies
// differ (doubles, maps, nested pairs) and must shape the same. Then: keyPrefix on every
// command, argument checks, and — on memory:// — a clear refusal of what it lacks.
import { RedisClient } from '../lib'
import type { ConnectOptions, DeletedStreamEntry, StreamEntry, StreamMessages, XAutoClaimIdsResult, XAutoClaimResult, XPendingEntry, XPendingSummary, ZMemberScore } from '../lib'
import { startCluster, startRedis, stopAll, type RedisCluster, type RedisServer } from './harness'
import { closeAll, connect, ns, onMemoryBackend, rejection } from './helpers'

/** The commands memory:// does not have ('ZRANGE BYLEX': ZRANGE without that form); checked by the `memory:// lacks` group. */
const MEMORY_LACKS = new Set([
  'SETRANGE', 'HSCAN', 'LMOVE', 'SPOP', 'SRANDMEMBER', 'SINTER', 'SUNION', 'SDIFF', 'SSCAN', 'ZRANGE BYLEX', 'ZRANK',
  'ZREVRANK', 'ZPOPMIN', 'ZPOPMAX', 'ZSCAN', 'XADD', 'XLEN', 'XRANGE', 'XREVRANGE', 'XREAD', 'XGROUP', 'XREADGROUP',
  'XACK', 'XPENDING', 'XCLAIM', 'XAUTOCLAIM', 'XTRIM', 'XDEL', 'COPY', 'TOUCH',
])

/** A test of one or a few commands; `uses` names every Redis command it sends. */
interface Case {
  name: string
  uses: string[]
  run: (c: RedisClient, k: string) => Promise<void>
}

/** Whether a case runs on this backend: everything on Redis, what memory:// has on memory://. */
const runsHere = (uses: string[]) => !onMemoryBackend || uses.every((u) => !MEMORY_LACKS.has(u))

let srv: RedisServer

beforeAll(async () => {
  srv = await startRedis()
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

const sorted = (a: string[]) => [...a].sort()

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const v of it) out.push(v)
  return out
}

/** Stream entries `1-1`, `2-1`, … with one field each. */
async function fill(c: RedisClient, key: string, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) await c.xadd(key, `${i}-1`, { n: String(i) })
}

/** A record holds `__proto__` as an own, enumerable field and keeps Object.prototype. */
function expectProtoField(rec: Record<string, string>, value: string): void {
  expect(Object.getPrototypeOf(rec)).toBe(Object.prototype)
  expect(Object.keys(rec)).toContain('__proto__')
  expect(Object.getOwnPropertyDescriptor(rec, '__proto__')?.value).toBe(value)
  expect(JSON.parse(JSON.stringify(rec)).__proto__).toBe(value)
}

const GROUPS: Record<string, Case[]> = {
  strings: [
    {
      name: 'incrByFloat resolves a number',
      uses: ['SET', 'INCRBYFLOAT'],
      run: async (c, k) => {
        await c.set(k + 'f', '10.5')
        const v = await c.incrByFloat(k + 'f', 0.1)
        expect(typeof v).toBe('number')
        expect(v).toBeCloseTo(10.6, 10)
        expect(await c.incrByFloat(k + 'new', -2)).toBe(-2)
        await c.set(k + 's', 'abc')
        expect(await rejection(c.incrByFloat(k + 's', 1))).toMatchObject({ code: 'ERR_REPLY' })
      },
    },
    {
      name: 'decr and decrBy',
      uses: ['DECR', 'DECRBY'],
      run: async (c, k) => {
        expect(await c.decr(k + 'n')).toBe(-1)
        expect(await c.decrBy(k + 'n', 5)).toBe(-6)
        expect(await c.decrBy(k + 'n', -10)).toBe(4)
      },
    },
    {
      name: 'append, strlen and getRange',
      uses: ['APPEND', 'STRLEN', 'GETRANGE', 'SET'],
      run: async (c, k) => {
        expect(await c.append(k + 's', 'ab')).toBe(2)
        expect(await c.append(k + 's', 'cdé')).toBe(6) // bytes: é is two
        expect(await c.strlen(k + 's')).toBe(6)
        expect(await c.strlen(k + 'missing')).toBe(0)
        await c.set(k + 'h', 'Hello World')
        expect(await c.getRange(k + 'h', 0, 4)).toBe('Hello')
        expect(await c.getRange(k + 'h', -5, -1)).toBe('World')
        expect(await c.getRange(k + 'h', 20, 30)).toBe('')
        expect(await c.getRange(k + 'missing', 0, -1)).toBe('')
      },
    },
    {
      name: 'setRange overwrites and zero-pads',
      uses: ['SET', 'SETRANGE', 'GETBUFFER'],
      run: async (c, k) => {
        await c.set(k + 'h', 'Hello World')
        expect(await c.setRange(k + 'h', 6, 'Redis')).toBe(11)
        expect(await c.get(k + 'h')).toBe('Hello Redis')
        expect(await c.setRange(k + 'new', 2, 'x')).toBe(3)
        expect(await c.getBuffer(k + 'new')).toEqual(Buffer.from([0, 0, 0x78]))
      },
    },
    {
      name: 'msetnx sets all or none, from an object, a Map or pairs',
      uses: ['MSETNX', 'MGET', 'EXISTS'],
      run: async (c, k) => {
        expect(await c.msetnx({ [k + 'a']: '1', [k + 'b']: '2' })).toBe(true)
        expect(await c.mget(k + 'a', k + 'b')).toEqual(['1', '2'])
        expect(await c.msetnx(new Map([[k + 'b', 'x'], [k + 'c', '3']]))).toBe(false)
        expect(await c.exists(k + 'c')).toBe(0)
        expect(await c.get(k + 'b')).toBe('2')
        expect(await c.msetnx([[k + 'd', '4'], [Buffer.from(k + 'e'), Buffer.from('5')]])).toBe(true)
        expect(await c.mget(k + 'd', k + 'e')).toEqual(['4', '5'])
      },
    },
  ],

  hashes: [
    {
      name: 'hmget: values in order, null for missing fields',
      uses: ['HSET', 'HMGET'],
      run: async (c, k) => {
        await c.hset(k + 'h', { a: '1', b: '2' })
        expect(await c.hmget(k + 'h', 'a', 'zz', 'b')).toEqual(['1', null, '2'])
        expect(await c.hmget(k + 'h', ['b'])).toEqual(['2'])
        expect(await c.hmget(k + 'missing', 'a')).toEqual([null])
      },
    },
    {
      name: 'hincrBy and hincrByFloat resolve numbers',
      uses: ['HINCRBY', 'HINCRBYFLOAT', 'HSET'],
      run: async (c, k) => {
        expect(await c.hincrBy(k + 'h', 'n', 5)).toBe(5)
        expect(await c.hincrBy(k + 'h', 'n', -2)).toBe(3)
        expect(await c.hincrByFloat(k + 'h', 'f', 1.5)).toBe(1.5)
        expect(await c.hincrByFloat(k + 'h', 'f', 0.25)).toBe(1.75)
        await c.hset(k + 'h', 's', 'x')
        expect(await rejection(c.hincrBy(k + 'h', 's', 1))).toMatchObject({ code: 'ERR_REPLY' })
      },
    },
    {
      name: 'hexists, hlen, hkeys, hvals, hsetnx',
      uses: ['HSET', 'HEXISTS', 'HLEN', 'HKEYS', 'HVALS', 'HSETNX', 'HGET'],
      run: async (c, k) => {
        await c.hset(k + 'h', { a: '1', b: '2' })
        expect(await c.hexists(k + 'h', 'a')).toBe(true)
        expect(await c.hexists(k + 'h', 'zz')).toBe(false)
        expect(await c.hexists(k + 'missing', 'a')).toBe(false)
        expect(await c.hlen(k + 'h')).toBe(2)
        expect(await c.hlen(k + 'missing')).toBe(0)
        expect(sorted(await c.hkeys(k + 'h'))).toEqual(['a', 'b'])
        expect(sorted(await c.hvals(k + 'h'))).toEqual(['1', '2'])
        expect(await c.hkeys(k + 'missing')).toEqual([])
        expect(await c.hsetnx(k + 'h', 'c', '3')).toBe(true)
        expect(await c.hsetnx(k + 'h', 'c', 'other')).toBe(false)
        expect(await c.hget(k + 'h', 'c')).toBe('3')
      },
    },
    {
      name: 'hscan iterates over every [field, value] pair, with match and count',
      uses: ['HSET', 'HSCAN'],
      run: async (c, k) => {
        const fields: Record<string, string> = {}
        for (let i = 0; i < 60; i++) fields[`f${i}`] = `v${i}`
        await c.hset(k + 'h', fields)
        await c.hset(k + 'h', '__proto__', 'p')
        const all = new Map(await collect(c.hscan(k + 'h', { count: 7 })))
        expect(all.size).toBe(61)
        for (let i = 0; i < 60; i++) expect(all.get(`f${i}`)).toBe(`v${i}`)
        expect(all.get('__proto__')).toBe('p')
        const some = await collect(c.hscan(k + 'h', { match: 'f1*' }))
        expect(sorted(some.map(([f]) => f))).toEqual(sorted(['f1', ...Array.from({ length: 10 }, (_, i) => `f1${i}`)]))
        expect(await collect(c.hscan(k + 'missing'))).toEqual([])
      },
    },
  ],

  lists: [
    {
      name: 'lpush, rpush, lrange, llen',
      uses: ['LPUSH', 'RPUSH', 'LRANGE', 'LLEN'],
      run: async (c, k) => {
        expect(await c.lpush(k + 'l', 'a', 'b')).toBe(2)
        expect(await c.rpush(k + 'l', ['c', 'd'])).toBe(4)
        expect(await c.lrange(k + 'l', 0, -1)).toEqual(['b', 'a', 'c', 'd'])
        expect(await c.lrange(k + 'l', 1, 2)).toEqual(['a', 'c'])
        expect(await c.llen(k + 'l')).toBe(4)
        expect(await c.llen(k + 'missing')).toBe(0)
        expect(await c.lrange(k + 'missing', 0, -1)).toEqual([])
      },
    },
    {
      name: 'lpop and rpop, with and without count',
      uses: ['RPUSH', 'LPOP', 'RPOP'],
      run: async (c, k) => {
        await c.rpush(k + 'l', 'a', 'b', 'c', 'd', 'e')
        expect(await c.lpop(k + 'l')).toBe('a')
        expect(await c.rpop(k + 'l')).toBe('e')
        expect(await c.lpop(k + 'l', 2)).toEqual(['b', 'c'])
        expect(await c.rpop(k + 'l', 5)).toEqual(['d'])
        expect(await c.lpop(k + 'l')).toBeNull()
        expect(await c.lpop(k + 'l', 2)).toBeNull()
        expect(await c.rpop(k + 'missing')).toBeNull()
      },
    },
    {
      name: 'lindex, lset, lrem, ltrim',
      uses: ['RPUSH', 'LINDEX', 'LSET', 'LRANGE', 'LREM', 'LTRIM'],
      run: async (c, k) => {
        await c.rpush(k + 'l', 'a', 'b', 'a', 'c', 'a')
        expect(await c.lindex(k + 'l', 1)).toBe('b')
        expect(await c.lindex(k + 'l', -2)).toBe('c')
        expect(await c.lindex(k + 'l', 99)).toBeNull()
        expect(await c.lset(k + 'l', 1, 'B')).toBeUndefined()
        expect(await c.lrange(k + 'l', 0, -1)).toEqual(['a', 'B', 'a', 'c', 'a'])
        expect(await rejection(c.lset(k + 'l', 99, 'x'))).toMatchObject({ code: 'ERR_REPLY' })
        expect(await c.lrem(k + 'l', 2, 'a')).toBe(2)
        expect(await c.lrange(k + 'l', 0, -1)).toEqual(['B', 'c', 'a'])
        expect(await c.lrem(k + 'l', 0, 'zz')).toBe(0)
        expect(await c.ltrim(k + 'l', 0, 1)).toBeUndefined()
        expect(await c.lrange(k + 'l', 0, -1)).toEqual(['B', 'c'])
      },
    },
    {
      name: 'lmove moves between ends and lists',
      uses: ['RPUSH', 'LMOVE', 'LRANGE'],
      run: async (c, k) => {
        await c.rpush(k + 'src', 'a', 'b', 'c')
        expect(await c.lmove(k + 'src', k + 'dst', 'LEFT', 'RIGHT')).toBe('a')
        expect(await c.lmove(k + 'src', k + 'dst', 'RIGHT', 'LEFT')).toBe('c')
        expect(await c.lrange(k + 'dst', 0, -1)).toEqual(['c', 'a'])
        expect(await c.lrange(k + 'src', 0, -1)).toEqual(['b'])
        expect(await c.lmove(k + 'missing', k + 'dst', 'LEFT', 'LEFT')).toBeNull()
      },
    },
  ],

  sets: [
    {
      name: 'sismember, smismember (booleans), scard',
      uses: ['SADD', 'SISMEMBER', 'SMISMEMBER', 'SCARD'],
      run: async (c, k) => {
        await c.sadd(k + 's', 'a', 'b', 'c')
        expect(await c.sismember(k + 's', 'a')).toBe(true)
        expect(await c.sismember(k + 's', 'x')).toBe(false)
        expect(await c.sismember(k + 'missing', 'a')).toBe(false)
        expect(await c.smismember(k + 's', 'a', 'x', 'c')).toEqual([true, false, true])
        expect(await c.smismember(k + 's', ['b'])).toEqual([true])
        expect(await c.scard(k + 's')).toBe(3)
        expect(await c.scard(k + 'missing')).toBe(0)
      },
    },
    {
      name: 'spop and srandmember, with and without count',
      uses: ['SADD', 'SPOP', 'SRANDMEMBER', 'SCARD'],
      run: async (c, k) => {
        const all = ['a', 'b', 'c', 'd']
        await c.sadd(k + 's', all)
        expect(all).toContain(await c.srandmember(k + 's'))
        expect(sorted(await c.srandmember(k + 's', 10))).toEqual(all)
        const repeated = await c.srandmember(k + 's', -6)
        expect(repeated).toHaveLength(6)
        for (const m of repeated) expect(all).toContain(m)
        const one = await c.spop(k + 's')
        expect(all).toContain(one)
        expect(await c.scard(k + 's')).toBe(3)
        expect(sorted(await c.spop(k + 's', 10))).toEqual(all.filter((m) => m !== one))
        expect(await c.spop(k + 's')).toBeNull()
        expect(await c.spop(k + 's', 2)).toEqual([])
        expect(await c.srandmember(k + 's')).toBeNull()
        expect(await c.srandmember(k + 's', 3)).toEqual([])
      },
    },
    {
      name: 'sinter, sunion, sdiff',
      uses: ['SADD', 'SINTER', 'SUNION', 'SDIFF'],
      run: async (c, k) => {
        await c.sadd(k + '{s}1', 'a', 'b', 'c')
        await c.sadd(k + '{s}2', 'b', 'c', 'd')
        expect(sorted(await c.sinter(k + '{s}1', k + '{s}2'))).toEqual(['b', 'c'])
        expect(sorted(await c.sunion(k + '{s}1', k + '{s}2'))).toEqual(['a', 'b', 'c', 'd'])
        expect(await c.sdiff(k + '{s}1', k + '{s}2')).toEqual(['a'])
        expect(await c.sdiff([k + '{s}2', k + '{s}1'])).toEqual(['d'])
        expect(await c.sinter(k + '{s}1', k + '{s}missing')).toEqual([])
      },
    },
    {
      name: 'sscan iterates over every member, with match',
      uses: ['SADD', 'SSCAN'],
      run: async (c, k) => {
        const members = Array.from({ length: 40 }, (_, i) => `m${i}`)
        await c.sadd(k + 's', members)
        expect(sorted([...new Set(await collect(c.sscan(k + 's', { count: 5 })))])).toEqual(sorted(members))
        expect(sorted([...new Set(await collect(c.sscan(k + 's', { match: 'm3*' })))])).toEqual(sorted(['m3', ...Array.from({ length: 10 }, (_, i) => `m3${i}`)]))
      },
    },
  ],

  'sorted sets': [
    {
      name: 'zadd adds and updates; ch counts changed members',
      uses: ['ZADD', 'ZSCORE'],
      run: async (c, k) => {
        expect(await c.zadd(k + 'z', [{ score: 1, value: 'a' }, { score: 2, value: 'b' }])).toBe(2)
        expect(await c.zadd(k + 'z', { score: 3, value: 'a' })).toBe(0)
        expect(await c.zscore(k + 'z', 'a')).toBe(3)
        const r = await c.zadd(k + 'z', [{ score: 3, value: 'a' }, { score: 5, value: 'b' }, { score: 1, value: 'c' }], { ch: true })
        expect(r).toBe(2) // b changed, c added, a unchanged
      },
    },
    {
      name: 'zadd nx, xx, gt, lt',
      uses: ['ZADD', 'ZSCORE'],
      run: async (c, k) => {
        await c.zadd(k + 'z', { score: 5, value: 'a' })
        expect(await c.zadd(k + 'z', [{ score: 1, value: 'a' }, { score: 2, value: 'n' }], { nx: true })).toBe(1)
        expect(await c.zscore(k + 'z', 'a')).toBe(5)
        expect(await c.zadd(k + 'z', [{ score: 6, value: 'a' }, { score: 1, value: 'x' }], { xx: true })).toBe(0)
        expect(await c.zscore(k + 'z', 'a')).toBe(6)
        expect(await c.zscore(k + 'z', 'x')).toBeNull()
        expect(await c.zadd(k + 'z', { score: 4, value: 'a' }, { gt: true, ch: true })).toBe(0)
        expect(await c.zadd(k + 'z', { score: 7, value: 'a' }, { gt: true, ch: true })).toBe(1)
        expect(await c.zscore(k + 'z', 'a')).toBe(7)
        expect(await c.zadd(k + 'z', { score: 3, value: 'a' }, { lt: true })).toBe(0)
        expect(await c.zscore(k + 'z', 'a')).toBe(3)
        expect(await c.zadd(k + 'z', { score: 9, value: 'g' }, { gt: true })).toBe(1) // GT still adds new members
      },
    },
    {
      name: 'zadd incr resolves the new score, or null when a condition prevented it',
      uses: ['ZADD'],
      run: async (c, k) => {
        expect(await c.zadd(k + 'z', { score: 2, value: 'a' }, { incr: true })).toBe(2)
        expect(await c.zadd(k + 'z', { score: 2.5, value: 'a' }, { incr: true })).toBe(4.5)
        expect(await c.zadd(k + 'z', { score: 1, value: 'a' }, { incr: true, nx: true })).toBeNull()
        expect(await c.zadd(k + 'z', { score: 1, value: 'new' }, { incr: true, xx: true })).toBeNull()
        expect(await c.zadd(k + 'z', { score: -10, value: 'a' }, { incr: true, gt: true })).toBeNull()
      },
    },
    {
      name: 'zrem, zscore (infinity included), zincrBy, zcard, zcount',
      uses: ['ZADD', 'ZREM', 'ZSCORE', 'ZINCRBY', 'ZCARD', 'ZCOUNT'],
      run: async (c, k) => {
        await c.zadd(k + 'z', [{ score: 1, value: 'a' }, { score: 2, value: 'b' }, { score: 3, value: 'c' }, { score: Infinity, value: 'd' }])
        expect(await c.zscore(k + 'z', 'd')).toBe(Infinity)
        expect(await c.zscore(k + 'z', 'zz')).toBeNull()
        expect(await c.zincrBy(k + 'z', 2.5, 'a')).toBe(3.5)
        expect(await c.zincrBy(k + 'z', -1, 'new')).toBe(-1)
        expect(await c.zcard(k + 'z')).toBe(5)
        expect(await c.zcard(k + 'missing')).toBe(0)
        expect(await c.zcount(k + 'z', 2, 3)).toBe(2)
        expect(await c.zcount(k + 'z', '(2', '+inf')).toBe(3)
        expect(await c.zcount(k + 'z', -Infinity, Infinity)).toBe(5)
        expect(await c.zrem(k + 'z', 'a', 'zz')).toBe(1)
        expect(await c.zrem(k + 'z', ['b', 'c'])).toBe(2)
        expect(await c.zcard(k + 'z')).toBe(2)
      },
    },
    {
      name: 'zrange by rank: reversed, with scores',
      uses: ['ZADD', 'ZRANGE'],
      run: async (c, k) => {
        await c.zadd(k + 'z', [1, 2, 3, 4].map((score, i) => ({ score, value: 'abcd'[i] })))
        expect(await c.zrange(k + 'z', 0, -1)).toEqual(['a', 'b', 'c', 'd'])
        expect(await c.zrange(k + 'z', 0, 1, { rev: true })).toEqual(['d', 'c'])
        expect(await c.zrange(k + 'z', 0, 1, { withScores: true })).toEqual([['a', 1], ['b', 2]])
        expect(await c.zrange(k + 'z', 0, 0, { rev: true, withScores: true })).toEqual([['d', 4]])
        expect(await c.zrange(k + 'missing', 0, -1)).toEqual([])
      },
    },
    {
      name: 'zrange by score: exclusive bounds, infinities, limit, rev',
      uses: ['ZADD', 'ZRANGE'],
      run: async (c, k) => {
        await c.zadd(k + 'z', [1, 2, 3, 4].map((score, i) => ({ score, value: 'abcd'[i] })))
        expect(await c.zrange(k + 'z', 2, '+inf', { by: 'score' })).toEqual(['b', 'c', 'd'])
        expect(await c.zrange(k + 'z', '(2', 4, { by: 'score' })).toEqual(['c', 'd'])
        expect(await c.zrange(k + 'z', -Infinity, Infinity, { by: 'score', limit: { offset: 1, count: 2 } })).toEqual(['b', 'c'])
        expect(await c.zrange(k + 'z', 4, 2, { by: 'score', rev: true })).toEqual(['d', 'c', 'b'])
        expect(await c.zrange(k + 'z', 3, 3, { by: 'score', withScores: true })).toEqual([['c', 3]])
      },
    },
    {
      name: 'zrange by lex',
      uses: ['ZADD', 'ZRANGE BYLEX'],
      run: async (c, k) => {
        await c.zadd(k + 'z', ['a', 'b', 'c', 'd'].map((value) => ({ score: 0, value })))
        expect(await c.zrange(k + 'z', '[b', '(d', { by: 'lex' })).toEqual(['b', 'c'])
        expect(await c.zrange(k + 'z', '-', '+', { by: 'lex', limit: { offset: 2, count: 5 } })).toEqual(['c', 'd'])
        expect(await c.zrange(k + 'z', '+', '-', { by: 'lex', rev: true })).toEqual(['d', 'c', 'b', 'a'])
      },
    },
    {
      name: 'zrank and zrevrank',
      uses: ['ZADD', 'ZRANK', 'ZREVRANK'],
      run: async (c, k) => {
        await c.zadd(k + 'z', [{ score: 1, value: 'a' }, { score: 2, value: 'b' }, { score: 3, value: 'c' }])
        expect(await c.zrank(k + 'z', 'a')).toBe(0)
        expect(await c.zrevrank(k + 'z', 'a')).toBe(2)
        expect(await c.zrank(k + 'z', 'b')).toBe(1)
        expect(await c.zrank(k + 'z', 'zz')).toBeNull()
        expect(await c.zrevrank(k + 'missing', 'a')).toBeNull()
      },
    },
    {
      name: 'zpopmin and zpopmax resolve [member, score] pairs',
      uses: ['ZADD', 'ZPOPMIN', 'ZPOPMAX'],
      run: async (c, k) => {
        await c.zadd(k + 'z', [1, 2, 3, 4].map((score, i) => ({ score, value: 'abcd'[i] })))
        expect(await c.zpopmin(k + 'z')).toEqual(['a', 1])
        expect(await c.zpopmax(k + 'z')).toEqual(['d', 4])
        expect(await c.zpopmin(k + 'z', 5)).toEqual([['b', 2], ['c', 3]])
        expect(await c.zpopmin(k + 'z')).toBeNull()
        expect(await c.zpopmax(k + 'z', 2)).toEqual([])
        await c.zadd(k + 'z', [{ score: 1.5, value: 'x' }, { score: -Infinity, value: 'y' }])
        expect(await c.zpopmax(k + 'z', 2)).toEqual([['x', 1.5], ['y', -Infinity]])
      },
    },
    {
      name: 'zscan iterates over every [member, score] pair',
      uses: ['ZADD', 'ZSCAN'],
      run: async (c, k) => {
        await c.zadd(k + 'z', Array.from({ length: 30 }, (_, i) => ({ score: i / 2, value: `m${i}` })))
        await c.zadd(k + 'z', { score: Infinity, value: 'top' })
        const all = new Map(await collect(c.zscan(k + 'z', { count: 4 })))
        expect(all.size).toBe(31)
        for (let i = 0; i < 30; i++) expect(all.get(`m${i}`)).toBe(i / 2)
        expect(all.get('top')).toBe(Infinity)
        expect(new Map(await collect(c.zscan(k + 'z', { match: 'top' })))).toEqual(new Map([['top', Infinity]]))
      },
    },
  ],

  streams: [
    {
      name: 'xadd (object, Map, pairs), xlen, xrange, xrevrange',
      uses: ['XADD', 'XLEN', 'XRANGE', 'XREVRANGE'],
      run: async (c, k) => {
        expect(await c.xadd(k + 's', '1-1', { a: '1' })).toBe('1-1')
        const id2 = await c.xadd(k + 's', '*', new Map([['b', '2']]))
        expect(id2).toMatch(/^\d+-\d+$/)
        const id3 = (await c.xadd(k + 's', '*', [['c', '3'], ['d', '4']])) as string
        expect(await c.xlen(k + 's')).toBe(3)
        expect(await c.xrange(k + 's')).toEqual([
          { id: '1-1', fields: { a: '1' } },
          { id: id2, fields: { b: '2' } },
          { id: id3, fields: { c: '3', d: '4' } },
        ])
        expect(await c.xrange(k + 's', '-', '+', { count: 1 })).toEqual([{ id: '1-1', fields: { a: '1' } }])
        expect((await c.xrange(k + 's', '(1-1')).map((e) => e.id)).toEqual([id2, id3])
        expect((await c.xrevrange(k + 's')).map((e) => e.id)).toEqual([id3, id2, '1-1'])
        expect((await c.xrevrange(k + 's', '+', '-', { count: 2 })).map((e) => e.id)).toEqual([id3, id2])
        expect(await c.xrange(k + 'missing')).toEqual([])
        expect(await c.xlen(k + 'missing')).toBe(0)
      },
    },
    {
      name: 'xadd nomkstream and trim (MAXLEN, MINID, ~, LIMIT); xtrim; xdel',
      uses: ['XADD', 'XLEN', 'XTRIM', 'XDEL', 'EXISTS', 'XRANGE'],
      run: async (c, k) => {
        expect(await c.xadd(k + 'none', '*', { a: '1' }, { nomkstream: true })).toBeNull()
        expect(await c.exists(k + 'none')).toBe(0)
        await fill(c, k + 's', 10)
        expect(await c.xadd(k + 's', '11-1', { n: '11' }, { trim: { maxLen: 5 } })).toBe('11-1')
        expect((await c.xrange(k + 's')).map((e) => e.id)).toEqual(['7-1', '8-1', '9-1', '10-1', '11-1'])
        expect(await c.xtrim(k + 's', { minId: '9-1' })).toBe(2)
        expect(await c.xlen(k + 's')).toBe(3)
        expect(await c.xadd(k + 's', '12-1', { n: '12' }, { trim: { minId: '10-1' } })).toBe('12-1')
        expect((await c.xrange(k + 's')).map((e) => e.id)).toEqual(['10-1', '11-1', '12-1'])
        // approximate trimming removes whole macro nodes only: none while that would leave fewer than maxLen
        expect(await c.xadd(k + 's', '13-1', { n: '13' }, { trim: { maxLen: 1, approximate: true, limit: 10 } })).toBe('13-1')
        expect(await c.xtrim(k + 's', { maxLen: 1, approximate: true })).toBe(0)
        expect(await c.xlen(k + 's')).toBe(4)
        expect(await c.xdel(k + 's', '10-1', '99-1')).toBe(1)
        expect(await c.xdel(k + 's', ['11-1'])).toBe(1)
        expect(await c.xtrim(k + 's', { maxLen: 1 })).toBe(1)
        expect((await c.xrange(k + 's')).map((e) => e.id)).toEqual(['13-1'])
        expect(await c.xtrim(k + 's', { maxLen: 0, approximate: true })).toBe(1) // the whole node may go now
      },
    },
    {
      name: 'xread: [{ name, messages }] from several streams, null when nothing is new',
      uses: ['XADD', 'XREAD'],
      run: async (c, k) => {
        await c.xadd(k + '{x}1', '1-1', { a: '1' })
        await c.xadd(k + '{x}1', '2-1', { b: '2' })
        await c.xadd(k + '{x}2', '5-1', { c: '3' })
        expect(await c.xread([{ key: k + '{x}1', id: '0' }, { key: k + '{x}2', id: '0' }])).toEqual([
          { name: k + '{x}1', messages: [{ id: '1-1', fields: { a: '1' } }, { id: '2-1', fields: { b: '2' } }] },
          { name: k + '{x}2', messages: [{ id: '5-1', fields: { c: '3' } }] },
        ])
        expect(await c.xread({ key: k + '{x}1', id: '1-1' }, { count: 5 })).toEqual([{ name: k + '{x}1', messages: [{ id: '2-1', fields: { b: '2' } }] }])
        expect(await c.xread({ key: k + '{x}1', id: '0' }, { count: 1 })).toEqual([{ name: k + '{x}1', messages: [{ id: '1-1', fields: { a: '1' } }] }])
        expect(await c.xread({ key: k + '{x}1', id: '$' })).toBeNull()
        expect(await c.xread({ key: k + '{x}missing', id: '0' })).toBeNull()
        // only the stream with something new is in the reply
        expect(await c.xread([{ key: k + '{x}1', id: '2-1' }, { key: k + '{x}2', id: '0' }])).toEqual([
          { name: k + '{x}2', messages: [{ id: '5-1', fields: { c: '3' } }] },
        ])
        // block passes through; with an entry there already, the reply comes at once
        expect(await c.xread({ key: k + '{x}2', id: '0' }, { block: 1000 })).toEqual([{ name: k + '{x}2', messages: [{ id: '5-1', fields: { c: '3' } }] }])
      },
    },
    {
      name: 'consumer groups: xgroupCreate, xreadgroup, xpending (summary and range), xack',
      uses: ['XGROUP', 'XADD', 'XREADGROUP', 'XPENDING', 'XACK'],
      run: async (c, k) => {
        expect(await c.xgroupCreate(k + 's', 'g', '0', { mkstream: true })).toBeUndefined()
        expect((await rejection(c.xgroupCreate(k + 's', 'g'))).message).toMatch(/BUSYGROUP/)
        expect(await rejection(c.xgroupCreate(k + 'missing', 'g'))).toMatchObject({ code: 'ERR_REPLY' })
        await c.xadd(k + 's', '1-1', { a: '1' })
        await c.xadd(k + 's', '2-1', { b: '2' })
        expect(await c.xreadgroup('g', 'c1', { key: k + 's', id: '>' })).toEqual([
          { name: k + 's', messages: [{ id: '1-1', fields: { a: '1' } }, { id: '2-1', fields: { b: '2' } }] },
        ])
        expect(await c.xreadgroup('g', 'c1', [{ key: k + 's', id: '>' }])).toBeNull()
        expect(await c.xpending(k + 's', 'g')).toEqual({ pending: 2, firstId: '1-1', lastId: '2-1', consumers: [{ name: 'c1', pending: 2 }] })
        const range = await c.xpending(k + 's', 'g', { start: '-', end: '+', count: 10 })
        expect(range).toEqual([
          { id: '1-1', consumer: 'c1', idleMs: expect.any(Number), deliveries: 1 },
          { id: '2-1', consumer: 'c1', idleMs: expect.any(Number), deliveries: 1 },
        ])
        expect(await c.xpending(k + 's', 'g', { start: '-', end: '+', count: 10, consumer: 'c2' })).toEqual([])
        expect(await c.xpending(k + 's', 'g', { start: '-', end: '+', count: 10, minIdleMs: 3_600_000 })).toEqual([])
        expect(await c.xack(k + 's', 'g', '1-1')).toBe(1)
        expect(await c.xack(k + 's', 'g', ['1-1', '2-1'])).toBe(1)
        expect(await c.xpending(k + 's', 'g')).toEqual({ pending: 0, firstId: null, lastId: null, consumers: [] })
        // noack: delivered, never pending
        await c.xadd(k + 's', '3-1', { c: '3' })
        expect(await c.xreadgroup('g', 'c1', { key: k + 's', id: '>' }, { noack: true, count: 10 })).toHaveLength(1)
        expect((await c.xpending(k + 's', 'g')).pending).toBe(0)
      },
    },
    {
      name: "xreadgroup of a consumer's history: an entry deleted since has fields null",
      uses: ['XGROUP', 'XADD', 'XREADGROUP', 'XDEL'],
      run: async (c, k) => {
        await c.xgroupCreate(k + 's', 'g', '$', { mkstream: true })
        await fill(c, k + 's', 2)
        await c.xreadgroup('g', 'c1', { key: k + 's', id: '>' })
        await c.xdel(k + 's', '1-1')
        expect(await c.xreadgroup('g', 'c1', { key: k + 's', id: '0' })).toEqual([
          { name: k + 's', messages: [{ id: '1-1', fields: null }, { id: '2-1', fields: { n: '2' } }] },
        ])
      },
    },
    {
      name: 'xclaim (options, justId) and xautoclaim (cursor, deleted IDs, justId)',
      uses: ['XGROUP', 'XADD', 'XREADGROUP', 'XCLAIM', 'XPENDING', 'XAUTOCLAIM', 'XDEL'],
      run: async (c, k) => {
        await c.xgroupCreate(k + 's', 'g', '0', { mkstream: true })
        await fill(c, k + 's', 3)
        await c.xreadgroup('g', 'c1', { key: k + 's', id: '>' })
        expect(await c.xclaim(k + 's', 'g', 'c2', 0, ['1-1'])).toEqual([{ id: '1-1', fields: { n: '1' } }])
        expect(await c.xclaim(k + 's', 'g', 'c2', 0, '2-1', { justId: true })).toEqual(['2-1'])
        expect(await c.xclaim(k + 's', 'g', 'c2', 3_600_000, '3-1')).toEqual([]) // not idle long enough
        expect(await c.xclaim(k + 's', 'g', 'c3', 0, '3-1', { idleMs: 5000, retryCount: 7 })).toHaveLength(1)
        const pending = await c.xpending(k + 's', 'g', { start: '-', end: '+', count: 10 })
        expect(pending.map((p) => [p.id, p.consumer, p.deliveries])).toEqual([['1-1', 'c2', 2], ['2-1', 'c2', 1], ['3-1', 'c3', 7]])
        expect(pending[2].idleMs).toBeGreaterThanOrEqual(5000)
        expect(await c.xautoclaim(k + 's', 'g', 'c4', 0, '0-0', { count: 2 })).toEqual({
          nextId: '3-1',
          entries: [{ id: '1-1', fields: { n: '1' } }, { id: '2-1', fields: { n: '2' } }],
          deletedIds: [],
        })
        await c.xdel(k + 's', '2-1')
        expect(await c.xautoclaim(k + 's', 'g', 'c5', 0, '0-0')).toEqual({
          nextId: '0-0',
          entries: [{ id: '1-1', fields: { n: '1' } }, { id: '3-1', fields: { n: '3' } }],
          deletedIds: ['2-1'],
        })
        expect(await c.xautoclaim(k + 's', 'g', 'c6', 0, '0-0', { justId: true })).toEqual({ nextId: '0-0', ids: ['1-1', '3-1'], deletedIds: [] })
      },
    },
    {
      name: 'a field named __proto__ is kept in the entries of xrange, xrevrange, xread, xreadgroup, xclaim, xautoclaim',
      uses: ['XADD', 'XRANGE', 'XREVRANGE', 'XREAD', 'XGROUP', 'XREADGROUP', 'XCLAIM', 'XAUTOCLAIM'],
      run: async (c, k) => {
        const fields = Object.defineProperty({ a: '1' } as Record<string, string>, '__proto__', { value: 'p', enumerable: true })
        await c.xgroupCreate(k + 's', 'g', '0', { mkstream: true })
        await c.xadd(k + 's', '1-1', fields)
        await c.xadd(k + 's', '2-1', [['__proto__', '{"polluted":true}']])
        const check = (entries: StreamEntry[]) => {
          const byId = new Map(entries.map((e) => [e.id, e.fields]))
          expectProtoField(byId.get('1-1')!, 'p')
          expect(byId.get('1-1')!.a).toBe('1')
          expectProtoField(byId.get('2-1')!, '{"polluted":true}')
          expect((byId.get('2-1') as Record<string, unknown>).polluted).toBeUndefined()
        }
        check(await c.xrange(k + 's'))
        check(await c.xrevrange(k + 's'))
        check((await c.xread({ key: k + 's', id: '0' }))![0].messages)
        check((await c.xreadgroup('g', 'c1', { key: k + 's', id: '>' }))![0].messages as StreamEntry[])
        check(await c.xclaim(k + 's', 'g', 'c2', 0, ['1-1', '2-1']))
        check((await c.xautoclaim(k + 's', 'g', 'c3', 0, '0-0')).entries)
        expect(({} as Record<string, unknown>).polluted).toBeUndefined()
      },
    },
  ],

  keys: [
    {
      name: 'type names every kind of value',
      uses: ['SET', 'HSET', 'RPUSH', 'SADD', 'ZADD', 'TYPE'],
      run: async (c, k) => {
        await c.set(k + 'str', 'v')
        await c.hset(k + 'h', 'f', 'v')
        await c.rpush(k + 'l', 'v')
        await c.sadd(k + 's', 'v')
        await c.zadd(k + 'z', { score: 1, value: 'v' })
        const types = await Promise.all(['missing', 'str', 'h', 'l', 's', 'z'].map((n) => c.type(k + n)))
        expect(types).toEqual(['none', 'string', 'hash', 'list', 'set', 'zset'])
      },
    },
    {
      name: 'type of a stream',
      uses: ['XADD', 'TYPE'],
      run: async (c, k) => {
        await c.xadd(k + 'x', '*', { a: '1' })
        expect(await c.type(k + 'x')).toBe('stream')
      },
    },
    {
      name: 'rename and persist',
      uses: ['SET', 'RENAME', 'GET', 'EXISTS', 'PERSIST', 'TTL'],
      run: async (c, k) => {
        await c.set(k + 'a', 'v', 100)
        expect(await c.rename(k + 'a', k + 'b')).toBeUndefined()
        expect(await c.get(k + 'b')).toBe('v')
        expect(await c.exists(k + 'a')).toBe(0)
        expect(await rejection(c.rename(k + 'missing', k + 'x'))).toMatchObject({ code: 'ERR_REPLY' })
        expect(await c.ttl(k + 'b')).toBeGreaterThan(90)
        expect(await c.persist(k + 'b')).toBe(true)
        expect(await c.ttl(k + 'b')).toBe(-1)
        expect(await c.persist(k + 'b')).toBe(false)
        expect(await c.persist(k + 'missing')).toBe(false)
      },
    },
    {
      name: 'expireAt: a Unix time, a Date, a condition',
      uses: ['SET', 'EXPIREAT', 'PEXPIREAT', 'TTL', 'PTTL', 'EXISTS'],
      run: async (c, k) => {
        const now = Math.floor(Date.now() / 1000)
        await c.set(k + 'a', 'v')
        expect(await c.expireAt(k + 'a', now + 100)).toBe(true)
        expect(await c.ttl(k + 'a')).toBeGreaterThan(95)
        expect(await c.expireAt(k + 'a', new Date(Date.now() + 50_000))).toBe(true)
        const pttl = await c.pttl(k + 'a')
        expect(pttl).toBeGreaterThan(45_000)
        expect(pttl).toBeLessThanOrEqual(50_000)
        expect(await c.expireAt(k + 'missing', now + 100)).toBe(false)
        expect(await c.expireAt(k + 'a', now + 200, 'NX')).toBe(false) // it has a TTL
        expect(await c.expireAt(k + 'a', now + 10, 'GT')).toBe(false)
        expect(await c.expireAt(k + 'a', now + 200, 'GT')).toBe(true)
        expect(await c.ttl(k + 'a')).toBeGreaterThan(190)
        await c.set(k + 'b', 'v')
        expect(await c.expireAt(k + 'b', now + 100, 'XX')).toBe(false) // it has none
        expect(await c.expireAt(k + 'b', now - 10)).toBe(true) // in the past: deleted
        expect(await c.exists(k + 'b')).toBe(0)
      },
    },
    {
      name: 'copy, with replace and to another database',
      uses: ['SET', 'COPY', 'GET'],
      run: async (c, k) => {
        await c.set(k + 'src', 'v1')
        expect(await c.copy(k + 'src', k + 'dst')).toBe(true)
        expect(await c.get(k + 'dst')).toBe('v1')
        await c.set(k + 'src', 'v2')
        expect(await c.copy(k + 'src', k + 'dst')).toBe(false)
        expect(await c.get(k + 'dst')).toBe('v1')
        expect(await c.copy(k + 'src', k + 'dst', { replace: true })).toBe(true)
        expect(await c.get(k + 'dst')).toBe('v2')
        expect(await c.copy(k + 'src', k + 'other', { db: 1 })).toBe(true)
        expect(await c.get(k + 'other')).toBeNull()
        const db1 = await connect({ url: srv.url, db: 1 })
        expect(await db1.get(k + 'other')).toBe('v2')
        await db1.close()
      },
    },
    {
      name: 'unlink',
      uses: ['SET', 'UNLINK', 'EXISTS'],
      run: async (c, k) => {
        await c.set(k + 'a', '1')
        await c.set(k + 'b', '2')
        expect(await c.unlink(k + 'a', k + 'zz')).toBe(1)
        expect(await c.unlink([k + 'b'])).toBe(1)
        expect(await c.exists(k + 'a', k + 'b')).toBe(0)
      },
    },
    {
      name: 'touch',
      uses: ['SET', 'TOUCH'],
      run: async (c, k) => {
        await c.set(k + 'a', '1')
        await c.set(k + 'b', '2')
        expect(await c.touch(k + 'a', k + 'b', k + 'zz')).toBe(2)
        expect(await c.touch([k + 'zz'])).toBe(0)
      },
    },
  ],
}

/** RESP2, and RESP3 (which client-side caching switches on). */
const PROTOCOLS: Array<{ name: string; options: ConnectOptions }> = [
  { name: 'RESP2', options: {} },
  { name: 'RESP3', options: { clientCache: { prefixes: ['not-cached:'] } } },
]

for (const protocol of PROTOCOLS) {
  describe(protocol.name, () => {
    let c: RedisClient
    beforeAll(async () => {
      c = await connect({ url: srv.url, ...protocol.options })
    })

    test(`the client speaks ${protocol.name}: ZSCORE answers ${protocol.name === 'RESP3' ? 'a double' : 'text'}`, async () => {
      const k = ns('proto')
      await c.command('ZADD', k, 1.5, 'm')
      expect(await c.command('ZSCORE', k, 'm')).toBe(protocol.name === 'RESP3' ? 1.5 : '1.5')
    })

    for (const [group, cases] of Object.entries(GROUPS)) {
      const here = cases.filter((cs) => runsHere(cs.uses))
      if (here.length === 0) continue
      describe(group, () => {
        for (const cs of here) test(cs.name, () => cs.run(c, ns(group)))
      })
    }
  })
}

// ---- keyPrefix ------------------------------------------------------------------------------

/** A test on a client with keyPrefix `pfx:`; `raw` has none and sees the prefixed keys as `P(key)`. */
interface PrefixCase {
  name: string
  uses: string[]
  run: (app: RedisClient, raw: RedisClient, k: string, P: (key: string) => string) => Promise<void>
}

const PREFIX = 'pfx:'

const PREFIX_CASES: PrefixCase[] = [
  {
    name: 'strings',
    uses: ['INCRBYFLOAT', 'DECR', 'DECRBY', 'APPEND', 'STRLEN', 'GETRANGE', 'MSETNX', 'MGET'],
    run: async (app, raw, k, P) => {
      await app.incrByFloat(k + 'f', 1.5)
      await app.decr(k + 'd')
      await app.decrBy(k + 'd', 2)
      await app.append(k + 's', 'ab')
      expect(await app.msetnx({ [k + 'm1']: '1', [k + 'm2']: '2' })).toBe(true)
      expect(await raw.mget(P(k + 'f'), P(k + 'd'), P(k + 's'), P(k + 'm1'), P(k + 'm2'))).toEqual(['1.5', '-3', 'ab', '1', '2'])
      await raw.set(P(k + 'r'), 'read me')
      expect(await app.strlen(k + 'r')).toBe(7)
      expect(await app.getRange(k + 'r', 0, 3)).toBe('read')
    },
  },
  {
    name: 'setRange',
    uses: ['SETRANGE'],
    run: async (app, raw, k, P) => {
      await app.setRange(k + 's', 1, 'x')
      expect(await raw.getBuffer(P(k + 's'))).toEqual(Buffer.from([0, 0x78]))
    },
  },
  {
    name: 'hashes',
    uses: ['HMGET', 'HINCRBY', 'HINCRBYFLOAT', 'HEXISTS', 'HLEN', 'HKEYS', 'HVALS', 'HSETNX', 'HGETALL'],
    run: async (app, raw, k, P) => {
      await raw.hset(P(k + 'h'), { a: '1' })
      expect(await app.hmget(k + 'h', 'a')).toEqual(['1'])
      expect(await app.hexists(k + 'h', 'a')).toBe(true)
      expect(await app.hlen(k + 'h')).toBe(1)
      expect(await app.hkeys(k + 'h')).toEqual(['a'])
      expect(await app.hvals(k + 'h')).toEqual(['1'])
      await app.hincrBy(k + 'h', 'n', 2)
      await app.hincrByFloat(k + 'h', 'f', 0.5)
      expect(await app.hsetnx(k + 'h', 'x', 'y')).toBe(true)
      expect(await raw.hgetall(P(k + 'h'))).toEqual({ a: '1', n: '2', f: '0.5', x: 'y' })
    },
  },
  {
    name: 'hscan',
    uses: ['HSCAN'],
    run: async (app, raw, k, P) => {
      await raw.hset(P(k + 'h'), { a: '1', b: '2' })
      expect(new Map(await collect(app.hscan(k + 'h')))).toEqual(new Map([['a', '1'], ['b', '2']]))
    },
  },
  {
    name: 'lists',
    uses: ['LPUSH', 'RPUSH', 'LPOP', 'RPOP', 'LRANGE', 'LLEN', 'LREM', 'LTRIM', 'LINDEX', 'LSET'],
    run: async (app, raw, k, P) => {
      await app.rpush(k + 'l', 'a', 'b', 'c', 'd', 'e', 'f')
      await app.lpush(k + 'l', 'z')
      expect(await app.lpop(k + 'l')).toBe('z')
      expect(await app.rpop(k + 'l', 1)).toEqual(['f'])
      await app.lset(k + 'l', 0, 'A')
      expect(await app.lindex(k + 'l', 0)).toBe('A')
      expect(await app.lrem(k + 'l', 0, 'b')).toBe(1)
      await app.ltrim(k + 'l', 0, 2)
      expect(await app.llen(k + 'l')).toBe(3)
      expect(await app.lrange(k + 'l', 0, -1)).toEqual(['A', 'c', 'd'])
      expect(await raw.command('LRANGE', P(k + 'l'), 0, -1)).toEqual(['A', 'c', 'd'])
    },
  },
  {
    name: 'lmove (both keys)',
    uses: ['LMOVE'],
    run: async (app, raw, k, P) => {
      await raw.command('RPUSH', P(k + 'src'), 'a')
      expect(await app.lmove(k + 'src', k + 'dst', 'LEFT', 'LEFT')).toBe('a')
      expect(await raw.command('LRANGE', P(k + 'dst'), 0, -1)).toEqual(['a'])
    },
  },
  {
    name: 'sets',
    uses: ['SISMEMBER', 'SMISMEMBER', 'SCARD'],
    run: async (app, raw, k, P) => {
      await raw.sadd(P(k + 's'), 'a', 'b')
      expect(await app.sismember(k + 's', 'a')).toBe(true)
      expect(await app.smismember(k + 's', 'a', 'b', 'c')).toEqual([true, true, false])
      expect(await app.scard(k + 's')).toBe(2)
    },
  },
  {
    name: 'spop, srandmember, sinter, sunion, sdiff, sscan (every key)',
    uses: ['SPOP', 'SRANDMEMBER', 'SINTER', 'SUNION', 'SDIFF', 'SSCAN'],
    run: async (app, raw, k, P) => {
      await raw.sadd(P(k + '1'), 'a', 'b')
      await raw.sadd(P(k + '2'), 'b', 'c')
      expect(sorted(await app.sinter(k + '1', k + '2'))).toEqual(['b'])
      expect(sorted(await app.sunion(k + '1', k + '2'))).toEqual(['a', 'b', 'c'])
      expect(sorted(await app.sdiff(k + '1', k + '2'))).toEqual(['a'])
      expect(sorted(await collect(app.sscan(k + '1')))).toEqual(['a', 'b'])
      expect(['a', 'b']).toContain(await app.srandmember(k + '1'))
      expect(sorted(await app.spop(k + '1', 5))).toEqual(['a', 'b'])
      expect(await raw.exists(P(k + '1'))).toBe(0)
    },
  },
  {
    name: 'sorted sets',
    uses: ['ZADD', 'ZREM', 'ZSCORE', 'ZINCRBY', 'ZCARD', 'ZCOUNT', 'ZRANGE'],
    run: async (app, raw, k, P) => {
      await app.zadd(k + 'z', [{ score: 1, value: 'a' }, { score: 2, value: 'b' }, { score: 3, value: 'c' }])
      await app.zincrBy(k + 'z', 10, 'a')
      await app.zrem(k + 'z', 'b')
      expect(await raw.command('ZRANGE', P(k + 'z'), 0, -1, 'WITHSCORES')).toEqual(['c', '3', 'a', '11'])
      expect(await app.zscore(k + 'z', 'a')).toBe(11)
      expect(await app.zcard(k + 'z')).toBe(2)
      expect(await app.zcount(k + 'z', 0, 5)).toBe(1)
      expect(await app.zrange(k + 'z', 0, -1, { withScores: true })).toEqual([['c', 3], ['a', 11]])
    },
  },
  {
    name: 'zrank, zrevrank, zpopmin, zpopmax, zscan',
    uses: ['ZRANK', 'ZREVRANK', 'ZPOPMIN', 'ZPOPMAX', 'ZSCAN'],
    run: async (app, raw, k, P) => {
      await raw.command('ZADD', P(k + 'z'), 1, 'a', 2, 'b', 3, 'c')
      expect(await app.zrank(k + 'z', 'b')).toBe(1)
      expect(await app.zrevrank(k + 'z', 'c')).toBe(0)
      expect(await collect(app.zscan(k + 'z', { match: 'a' }))).toEqual([['a', 1]])
      expect(await app.zpopmin(k + 'z')).toEqual(['a', 1])
      expect(await app.zpopmax(k + 'z')).toEqual(['c', 3])
      expect(await raw.command('ZRANGE', P(k + 'z'), 0, -1)).toEqual(['b'])
    },
  },
  {
    name: 'streams (but xread and xreadgroup)',
    uses: ['XADD', 'XLEN', 'XRANGE', 'XREVRANGE', 'XGROUP', 'XACK', 'XPENDING', 'XCLAIM', 'XAUTOCLAIM', 'XTRIM', 'XDEL', 'XREADGROUP'],
    run: async (app, raw, k, P) => {
      await app.xadd(k + 's', '1-1', { a: '1' })
      await app.xadd(k + 's', '2-1', { b: '2' }, { trim: { maxLen: 10 } })
      expect(await raw.command('XLEN', P(k + 's'))).toBe(2)
      expect(await app.xlen(k + 's')).toBe(2)
      expect((await app.xrange(k + 's')).map((e) => e.id)).toEqual(['1-1', '2-1'])
      expect((await app.xrevrange(k + 's')).map((e) => e.id)).toEqual(['2-1', '1-1'])
      await app.xgroupCreate(k + 's', 'g', '0')
      expect(await raw.command('XINFO', 'GROUPS', P(k + 's'))).toHaveLength(1)
      // deliver through the unprefixed client, so that the group has pending entries
      await raw.command('XREADGROUP', 'GROUP', 'g', 'c1', 'STREAMS', P(k + 's'), '>')
      expect((await app.xpending(k + 's', 'g')).pending).toBe(2)
      expect(await app.xpending(k + 's', 'g', { start: '-', end: '+', count: 5 })).toHaveLength(2)
      expect(await app.xclaim(k + 's', 'g', 'c2', 0, '1-1', { justId: true })).toEqual(['1-1'])
      expect((await app.xautoclaim(k + 's', 'g', 'c3', 0, '0-0', { justId: true })).ids).toEqual(['1-1', '2-1'])
      expect(await app.xack(k + 's', 'g', '1-1')).toBe(1)
      expect(await app.xdel(k + 's', '1-1')).toBe(1)
      expect(await app.xtrim(k + 's', { maxLen: 0 })).toBe(1)
      expect(await raw.command('XLEN', P(k + 's'))).toBe(0)
    },
  },
  {
    name: 'keys',
    uses: ['TYPE', 'RENAME', 'PERSIST', 'EXPIREAT', 'PEXPIREAT', 'UNLINK'],
    run: async (app, raw, k, P) => {
      await raw.set(P(k + 'a'), 'v', 100)
      expect(await app.type(k + 'a')).toBe('string')
      await app.rename(k + 'a', k + 'b')
      expect(await raw.get(P(k + 'b'))).toBe('v')
      expect(await app.persist(k + 'b')).toBe(true)
      expect(await app.expireAt(k + 'b', Math.floor(Date.now() / 1000) + 100)).toBe(true)
      expect(await raw.ttl(P(k + 'b'))).toBeGreaterThan(90)
      expect(await app.expireAt(k + 'b', new Date(Date.now() + 200_000))).toBe(true)
      expect(await raw.ttl(P(k + 'b'))).toBeGreaterThan(190)
      expect(await app.unlink(k + 'b')).toBe(1)
      expect(await raw.exists(P(k + 'b'))).toBe(0)
    },
  },
  {
    name: 'copy and touch (every key)',
    uses: ['COPY', 'TOUCH'],
    run: async (app, raw, k, P) => {
      await raw.set(P(k + 'a'), 'v')
      expect(await app.copy(k + 'a', k + 'b')).toBe(true)
      expect(await raw.get(P(k + 'b'))).toBe('v')
      expect(await app.touch(k + 'a', k + 'b')).toBe(2)
    },
  },
  {
    name: 'xread and xreadgroup never read the unprefixed stream: they read the prefixed one, or refuse',
    uses: ['XADD', 'XREAD', 'XGROUP', 'XREADGROUP'],
    run: async (app, raw, k, P) => {
      await raw.xadd(P(k + 's'), '1-1', { at: 'prefixed' })
      await raw.xadd(k + 's', '1-1', { at: 'unprefixed' })
      await raw.xgroupCreate(P(k + 's'), 'g', '0')
      await raw.xgroupCreate(k + 's', 'g', '0')
      const reads = [app.xread({ key: k + 's', id: '0' }), app.xreadgroup('g', 'c', { key: k + 's', id: '>' })]
      for (const r of await Promise.allSettled(reads)) {
        if (r.status === 'fulfilled') expect(r.value).toEqual([{ name: k + 's', messages: [{ id: '1-1', fields: { at: 'prefixed' } }] }])
        else expect(r.reason).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      }
      // nothing was delivered from the unprefixed stream's group
      expect(await raw.xpending(k + 's', 'g')).toMatchObject({ pending: 0 })
      await raw.del(k + 's') // this case's own unprefixed key, out of the leak check's way
    },
  },
]

describe('keyPrefix applies to every key of every command', () => {
  let app: RedisClient
  let raw: RedisClient
  beforeAll(async () => {
    app = await connect({ url: srv.url, keyPrefix: PREFIX })
    raw = await connect(srv.url)
  })

  for (const cs of PREFIX_CASES.filter((p) => runsHere(p.uses))) {
    test(cs.name, async () => {
      const k = ns('prefix')
      await cs.run(app, raw, k, (key) => PREFIX + key)
      // and no key outside the prefix was made
      const leaked = await collect(raw.scan({ match: `${k}*` }))
      expect(leaked).toEqual([])
    })
  }
})

// ---- argument checks ---------------------------------------------------------------------------

describe('bad input rejects with ERR_INVALID_ARGUMENT before anything is sent', () => {
  let c: RedisClient
  beforeAll(async () => {
    c = await connect(srv.url)
  })

  const k = 'never-written'
  const z = (score: number, value = 'm') => ({ score, value })
  // `any`: these are the calls a JavaScript caller (or a cast) can make.
  const BAD: Array<[string, (c: any) => Promise<unknown>]> = [
    ['zadd without members', (c) => c.zadd(k, [])],
    ['zadd nx + xx', (c) => c.zadd(k, z(1), { nx: true, xx: true })],
    ['zadd gt + lt', (c) => c.zadd(k, z(1), { gt: true, lt: true })],
    ['zadd nx + gt', (c) => c.zadd(k, z(1), { nx: true, gt: true })],
    ['zadd incr with two members', (c) => c.zadd(k, [z(1, 'a'), z(2, 'b')], { incr: true })],
    ['zadd with an unknown option', (c) => c.zadd(k, z(1), { upsert: true })],
    ['zadd with a member that is not { score, value }', (c) => c.zadd(k, [1, 'a'])],
    ['zadd with a NaN score', (c) => c.zadd(k, z(NaN))],
    ['zadd with a text score', (c) => c.zadd(k, { score: '(1', value: 'a' })],
    ['zincrBy with a NaN increment', (c) => c.zincrBy(k, NaN, 'm')],
    ['zcount with a NaN bound', (c) => c.zcount(k, NaN, 1)],
    ['zrange limit without by', (c) => c.zrange(k, 0, 10, { limit: { offset: 0, count: 1 } })],
    ['zrange by an unknown order', (c) => c.zrange(k, 0, 10, { by: 'rank' })],
    ['zrange by lex with number bounds', (c) => c.zrange(k, 0, 10, { by: 'lex' })],
    ['zrange by lex with scores', (c) => c.zrange(k, '-', '+', { by: 'lex', withScores: true })],
    ['zrange by rank with a fractional index', (c) => c.zrange(k, 0.5, 1)],
    ['zrange with a negative limit offset', (c) => c.zrange(k, 0, 1, { by: 'score', limit: { offset: -1, count: 1 } })],
    ['zrange with options that are an array', (c) => c.zrange(k, 0, 1, [])],
    ['zpopmin with a negative count', (c) => c.zpopmin(k, -1)],
    ['lpop with a negative count', (c) => c.lpop(k, -1)],
    ['rpop with a fractional count', (c) => c.rpop(k, 1.5)],
    ['spop with a negative count', (c) => c.spop(k, -2)],
    ['srandmember with a fractional count', (c) => c.srandmember(k, 0.5)],
    ['lmove with an unknown side', (c) => c.lmove(k, k, 'UP', 'LEFT')],
    ['msetnx with nothing', (c) => c.msetnx({})],
    ['msetnx with a string', (c) => c.msetnx('a=1')],
    ['msetnx with a bad pair', (c) => c.msetnx([['a']])],
    ['incrByFloat with NaN', (c) => c.incrByFloat(k, NaN)],
    ['xadd with no fields', (c) => c.xadd(k, '*', {})],
    ['xadd with an empty id', (c) => c.xadd(k, '', { a: '1' })],
    ['xadd trimming by maxLen and minId', (c) => c.xadd(k, '*', { a: '1' }, { trim: { maxLen: 1, minId: '0-1' } })],
    ['xadd trimming by neither', (c) => c.xadd(k, '*', { a: '1' }, { trim: {} })],
    ['xadd trim limit without approximate', (c) => c.xadd(k, '*', { a: '1' }, { trim: { maxLen: 1, limit: 10 } })],
    ['xadd with an unknown option', (c) => c.xadd(k, '*', { a: '1' }, { maxLen: 1 })],
    ['xtrim with a negative maxLen', (c) => c.xtrim(k, { maxLen: -1 })],
    ['xrange with a fractional count', (c) => c.xrange(k, '-', '+', { count: 1.5 })],
    ['xread of no streams', (c) => c.xread([])],
    ['xread of a stream without an id', (c) => c.xread({ key: k })],
    ['xread with count 0', (c) => c.xread({ key: k, id: '0' }, { count: 0 })],
    ['xread with a negative block', (c) => c.xread({ key: k, id: '0' }, { block: -1 })],
    ['xreadgroup with an unknown option', (c) => c.xreadgroup('g', 'c', { key: k, id: '>' }, { ack: false })],
    ['xgroupCreate with an unknown option', (c) => c.xgroupCreate(k, 'g', '$', { create: true })],
    ['xpending with a range without count', (c) => c.xpending(k, 'g', { start: '-', end: '+' })],
    ['xclaim of no ids', (c) => c.xclaim(k, 'g', 'c', 0, [])],
    ['xclaim with a negative minIdleMs', (c) => c.xclaim(k, 'g', 'c', -5, '1-1')],
    ['xautoclaim with count 0', (c) => c.xautoclaim(k, 'g', 'c', 0, '0-0', { count: 0 })],
    ['expireAt with an invalid Date', (c) => c.expireAt(k, new Date('nope'))],
    ['expireAt with a fractional time', (c) => c.expireAt(k, 1.5)],
    ['expireAt with an unknown condition', (c) => c.expireAt(k, 100, 'ZZ')],
    ['copy to a negative db', (c) => c.copy(k, k + '2', { db: -1 })],
    ['copy with an unknown option', (c) => c.copy(k, k + '2', { overwrite: true })],
    ['hscan with count 0', (c) => c.hscan(k, { count: 0 }).next()],
    ['sscan with an unknown option', (c) => c.sscan(k, { type: 'set' }).next()],
    ['zscan with a number pattern', (c) => c.zscan(k, { match: 5 }).next()],
  ]

  for (const [name, call] of BAD) {
    test(name, async () => {
      const before = c.stats().commands
      const e = await rejection(call(c))
      expect(e).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      expect(e.message.length).toBeGreaterThan(20)
      expect(c.stats().commands).toBe(before)
    })
  }
})

// ---- Redis Cluster -------------------------------------------------------------------------------

if (!onMemoryBackend) {
  describe("Redis Cluster: each typed command goes straight to its key's master", () => {
    let cluster: RedisCluster
    let c: RedisClient
    beforeAll(async () => {
      cluster = await startCluster({ masters: 3 })
      c = await connect({ cluster: { nodes: [cluster.nodes[0]] } })
    }, 60_000)
    afterAll(async () => {
      await c?.close()
      await cluster?.stop()
    })

    /** Nine keys: spread over the three masters. */
    const keys = (group: string) => Array.from({ length: 9 }, (_, i) => `${ns(group)}${i}`)

    /** Runs `body` for every key; no call may be redirected (MOVED/ASK) or retried. */
    async function straight(group: string, body: (k: string) => Promise<void>): Promise<void> {
      const before = c.stats().cluster!
      for (const k of keys(group)) await body(k)
      const after = c.stats().cluster!
      expect([after.moved - before.moved, after.ask - before.ask, after.retries - before.retries]).toEqual([0, 0, 0])
    }

    test('strings', () =>
      straight('strings', async (k) => {
        expect(await c.incrByFloat(k, 1.5)).toBe(1.5)
        expect(await c.decrBy(k + 'd', 2)).toBe(-2)
        expect(await c.append(k + 's', 'ab')).toBe(2)
        expect(await c.setRange(k + 's', 2, 'c')).toBe(3)
        expect([await c.strlen(k + 's'), await c.getRange(k + 's', 1, 2)]).toEqual([3, 'bc'])
        expect(await c.msetnx({ [`{${k}}a`]: '1', [`{${k}}b`]: '2' })).toBe(true)
      }))

    test('hashes', () =>
      straight('hashes', async (k) => {
        await c.hset(k, { a: '1' })
        expect(await c.hsetnx(k, 'b', '2')).toBe(true)
        expect(await c.hmget(k, 'a', 'b')).toEqual(['1', '2'])
        expect([await c.hincrBy(k, 'n', 2), await c.hincrByFloat(k, 'f', 0.5), await c.hexists(k, 'a'), await c.hlen(k)]).toEqual([2, 0.5, true, 4])
        expect(sorted(await c.hkeys(k))).toEqual(['a', 'b', 'f', 'n'])
        expect((await c.hvals(k)).length).toBe(4)
        expect((await collect(c.hscan(k))).length).toBe(4)
      }))

    test('lists', () =>
      straight('lists', async (k) => {
        await c.rpush(k, 'a', 'b', 'c', 'd')
        await c.lpush(k, 'z')
        expect([await c.lpop(k), await c.rpop(k, 1), await c.llen(k), await c.lindex(k, 0)]).toEqual(['z', ['d'], 3, 'a'])
        await c.lset(k, 0, 'A')
        expect(await c.lrem(k, 0, 'b')).toBe(1)
        await c.ltrim(k, 0, 5)
        expect(await c.lmove(k, `{${k}}dst`, 'LEFT', 'RIGHT')).toBe('A')
        expect(await c.lrange(k, 0, -1)).toEqual(['c'])
      }))

    test('sets; sets in different slots are refused by the server (CROSSSLOT)', async () => {
      await straight('sets', async (k) => {
        await c.sadd(`{${k}}1`, 'a', 'b')
        await c.sadd(`{${k}}2`, 'b', 'c')
        expect([await c.sismember(`{${k}}1`, 'a'), await c.smismember(`{${k}}1`, 'a', 'c'), await c.scard(`{${k}}1`)]).toEqual([true, [true, false], 2])
        expect([await c.sinter(`{${k}}1`, `{${k}}2`), sorted(await c.sunion(`{${k}}1`, `{${k}}2`)), await c.sdiff(`{${k}}1`, `{${k}}2`)]).toEqual([['b'], ['a', 'b', 'c'], ['a']])
        expect(sorted(await collect(c.sscan(`{${k}}1`)))).toEqual(['a', 'b'])
        expect(['a', 'b']).toContain(await c.srandmember(`{${k}}1`))
        expect(await c.spop(`{${k}}1`, 2)).toHaveLength(2)
      })
      const [a, b] = keys('cross')
      const e = await rejection(c.sinter(a + 'x', b + 'yy'))
      expect(e).toMatchObject({ code: 'ERR_REPLY' })
      expect(e.message).toMatch(/CROSSSLOT/)
    })

    test('sorted sets', () =>
      straight('zsets', async (k) => {
        await c.zadd(k, [{ score: 1, value: 'a' }, { score: 2, value: 'b' }, { score: 3, value: 'c' }])
        expect([await c.zincrBy(k, 1, 'a'), await c.zscore(k, 'a'), await c.zcard(k), await c.zcount(k, 2, 3)]).toEqual([2, 2, 3, 3])
        expect([await c.zrank(k, 'c'), await c.zrevrank(k, 'c'), await c.zrem(k, 'b')]).toEqual([2, 0, 1])
        expect(await c.zrange(k, 0, -1, { withScores: true })).toEqual([['a', 2], ['c', 3]])
        expect(await collect(c.zscan(k))).toHaveLength(2)
        expect([await c.zpopmin(k), await c.zpopmax(k)]).toEqual([['a', 2], ['c', 3]])
      }))

    test('streams, xread and xreadgroup included', () =>
      straight('streams', async (k) => {
        await c.xadd(k, '1-1', { a: '1' })
        await c.xadd(`{${k}}2`, '1-1', { b: '2' })
        expect([await c.xlen(k), (await c.xrange(k)).length, (await c.xrevrange(k)).length]).toEqual([1, 1, 1])
        expect((await c.xread([{ key: k, id: '0' }, { key: `{${k}}2`, id: '0' }]))!.map((s) => s.name)).toEqual([k, `{${k}}2`])
        await c.xgroupCreate(k, 'g', '0')
        expect((await c.xreadgroup('g', 'c1', { key: k, id: '>' }, { count: 10 }))![0].messages).toHaveLength(1)
        expect((await c.xpending(k, 'g')).pending).toBe(1)
        expect(await c.xpending(k, 'g', { start: '-', end: '+', count: 5 })).toHaveLength(1)
        expect(await c.xclaim(k, 'g', 'c2', 0, '1-1', { justId: true })).toEqual(['1-1'])
        expect((await c.xautoclaim(k, 'g', 'c3', 0, '0-0')).entries).toHaveLength(1)
        expect(await c.xack(k, 'g', '1-1')).toBe(1)
        expect(await c.xadd(k, '2-1', { c: '3' }, { trim: { maxLen: 1 } })).toBe('2-1')
        expect([await c.xdel(k, '2-1'), await c.xtrim(k, { maxLen: 0 })]).toEqual([1, 0])
      }))

    test('keys; unlink and touch over several slots are split by slot', async () => {
      await straight('keys', async (k) => {
        await c.set(k, 'v', 100)
        expect(await c.type(k)).toBe('string')
        expect(await c.copy(k, `{${k}}copy`)).toBe(true)
        await c.rename(k, `{${k}}renamed`)
        expect(await c.persist(`{${k}}renamed`)).toBe(true)
        expect(await c.expireAt(`{${k}}renamed`, new Date(Date.now() + 100_000))).toBe(true)
      })
      const ks = keys('split')
      for (const k of ks) await c.set(k, 'v')
      expect(await c.touch(ks)).toBe(9)
      expect(await c.unlink(...ks, 'missing')).toBe(9)
    })
  })
}

// ---- the declared types (checked by `tsc -p __test__`, never run) -------------------------------

/** Overloads resolve the precise result type; a wrong one fails the type check. */
export async function declaredTypes(c: RedisClient): Promise<void> {
  const members: string[] = await c.zrange('k', 0, -1)
  const pairs: ZMemberScore[] = await c.zrange('k', 0, -1, { withScores: true })
  // @ts-expect-error: withScores gives pairs, not strings
  const notStrings: string[] = await c.zrange('k', 0, -1, { withScores: true })
  const added: number = await c.zadd('k', { score: 1, value: 'm' })
  const score: number | null = await c.zadd('k', { score: 1, value: 'm' }, { incr: true })
  // @ts-expect-error: with incr the score may be null
  const notNull: number = await c.zadd('k', { score: 1, value: 'm' }, { incr: true })
  const one: string | null = await c.lpop('k')
  const some: string[] | null = await c.lpop('k', 2)
  const popped: ZMemberScore | null = await c.zpopmin('k')
  const poppedMany: ZMemberScore[] = await c.zpopmax('k', 2)
  const flags: boolean[] = await c.smismember('k', 'a', 'b')
  const read: StreamMessages[] | null = await c.xread({ key: 'k', id: '0' })
  const grouped: Array<StreamMessages<StreamEntry | DeletedStreamEntry>> | null = await c.xreadgroup('g', 'c', { key: 'k', id: '>' })
  const summary: XPendingSummary = await c.xpending('k', 'g')
  const range: XPendingEntry[] = await c.xpending('k', 'g', { start: '-', end: '+', count: 1 })
  const claimed: StreamEntry[] = await c.xclaim('k', 'g', 'c', 0, '1-1')
  const ids: string[] = await c.xclaim('k', 'g', 'c', 0, '1-1', { justId: true })
  const auto: XAutoClaimResult = await c.xautoclaim('k', 'g', 'c', 0, '0-0')
  const autoIds: XAutoClaimIdsResult = await c.xautoclaim('k', 'g', 'c', 0, '0-0', { justId: true })
  // @ts-expect-error: sides are 'LEFT' or 'RIGHT'
  await c.lmove('a', 'b', 'left', 'RIGHT')
  void [members, pairs, notStrings, added, score, notNull, one, some, popped, poppedMany, flags, read, grouped, summary, range, claimed, ids, auto, autoIds]
}

// ---- what memory:// lacks ------------------------------------------------------------------------

if (onMemoryBackend) {
  describe('memory:// lacks: each such typed command rejects with ERR_REPLY naming the command', () => {
    let c: RedisClient
    beforeAll(async () => {
      c = await connect(srv.url)
    })
    const k = 'k'
    const PROBES: Array<[string, (c: RedisClient) => Promise<unknown>]> = [
      ['SETRANGE', (c) => c.setRange(k, 0, 'x')],
      ['HSCAN', (c) => c.hscan(k).next()],
      ['LMOVE', (c) => c.lmove(k, 'k2', 'LEFT', 'LEFT')],
      ['SPOP', (c) => c.spop(k)],
      ['SRANDMEMBER', (c) => c.srandmember(k)],
      ['SINTER', (c) => c.sinter(k, 'k2')],
      ['SUNION', (c) => c.sunion(k, 'k2')],
      ['SDIFF', (c) => c.sdiff(k, 'k2')],
      ['SSCAN', (c) => c.sscan(k).next()],
      ['ZRANK', (c) => c.zrank(k, 'm')],
      ['ZREVRANK', (c) => c.zrevrank(k, 'm')],
      ['ZPOPMIN', (c) => c.zpopmin(k)],
      ['ZPOPMAX', (c) => c.zpopmax(k, 2)],
      ['ZSCAN', (c) => c.zscan(k).next()],
      ['XADD', (c) => c.xadd(k, '*', { a: '1' })],
      ['XLEN', (c) => c.xlen(k)],
      ['XRANGE', (c) => c.xrange(k)],
      ['XREVRANGE', (c) => c.xrevrange(k)],
      ['XREAD', (c) => c.xread({ key: k, id: '0' })],
      ['XGROUP', (c) => c.xgroupCreate(k, 'g')],
      ['XREADGROUP', (c) => c.xreadgroup('g', 'c', { key: k, id: '>' })],
      ['XACK', (c) => c.xack(k, 'g', '1-1')],
      ['XPENDING', (c) => c.xpending(k, 'g')],
      ['XCLAIM', (c) => c.xclaim(k, 'g', 'c', 0, '1-1')],
      ['XAUTOCLAIM', (c) => c.xautoclaim(k, 'g', 'c', 0, '0-0')],
      ['XTRIM', (c) => c.xtrim(k, { maxLen: 1 })],
      ['XDEL', (c) => c.xdel(k, '1-1')],
      ['COPY', (c) => c.copy(k, 'k2')],
      ['TOUCH', (c) => c.touch(k)],
    ]

    test('the probes cover the list', () => {
      expect(new Set([...PROBES.map(([n]) => n), 'ZRANGE BYLEX'])).toEqual(MEMORY_LACKS)
    })
    for (const [name, call] of PROBES) {
      test(name, async () => {
        const e = await rejection(call(c))
        expect(e).toMatchObject({ code: 'ERR_REPLY' })
        expect(e.message).toContain(`unknown command '${name}'`)
      })
    }
    test('ZRANGE BYLEX', async () => {
      const e = await rejection(c.zrange(k, '-', '+', { by: 'lex' }))
      expect(e).toMatchObject({ code: 'ERR_REPLY' })
      expect(e.message).toMatch(/syntax error/)
    })
  })
}
