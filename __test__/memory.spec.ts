// memory://, the embedded store: what only it has (stores shared by name, no TLS),
// and a differential check: a corpus of commands, edge cases and error texts included,
// must get the same answers from memory:// as from a real redis-server, over RESP2
// and over RESP3 (a client with clientCache speaks RESP3).
import { RedisClient } from '../lib'
import { RedisServer, startRedis, stopAll } from './harness'
import { closeAll, connect, eventually, rejection, sleep } from './helpers'

let srv: RedisServer
let seq = 0
const storeName = () => `memory-spec-${process.pid}-${++seq}`

beforeAll(async () => {
  srv = await startRedis()
})
afterEach(closeAll)
afterAll(stopAll)

test('clients of one name share a store; other names and databases are separate', async () => {
  const name = storeName()
  const [a, b, other, db3] = await Promise.all([
    connect(`memory://${name}`),
    connect({ url: `memory://${name}`, keyPrefix: 'app:' }),
    connect(`memory://${storeName()}`),
    connect(`memory://${name}/3`),
  ])
  await b.set('k', 'v', { ttlMs: 60_000 })
  expect(await a.get('app:k')).toBe('v')
  expect(await a.pttl('app:k')).toBeGreaterThan(59_000)
  expect(await other.get('app:k')).toBeNull()
  expect(await db3.get('app:k')).toBeNull()
  await a.command('FLUSHALL')
})

test('options that need a server are refused or ignored sensibly', async () => {
  expect(await rejection(RedisClient.connect({ url: 'memory://', tls: true }))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  expect(await rejection(RedisClient.connect('memory://x/16'))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  expect(await rejection(RedisClient.connect('memory://user:pw@x'))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  // no users on memory://: a password is accepted, not checked
  const c = await connect({ url: `memory://${storeName()}`, password: 'anything' })
  expect(await c.command('PING')).toBe('PONG')
})

test('a key that expires on its own invalidates the copies of clients that cache it', async () => {
  const url = `memory://${storeName()}`
  const [writer, reader] = await Promise.all([connect(url), connect({ url, clientCache: { prefixes: ['exp:'] } })])
  await writer.set('exp:k', 'v', { ttlMs: 150 })
  expect(await reader.get('exp:k')).toBe('v')
  expect(await reader.get('exp:k')).toBe('v') // from the local copy
  // nobody reads it on the server: the sweep expires it and sends the invalidation
  await sleep(400)
  const before = reader.stats().commands
  expect(await reader.get('exp:k')).toBeNull()
  expect(reader.stats().commands).toBe(before + 1)
})

test('keys expire without being read: gone from DBSIZE and INFO keyspace', async () => {
  const c = await connect(`memory://${storeName()}`)
  await c.mset({ 'a:1': '1', 'a:2': '2' })
  await c.pexpire('a:1', 50)
  await c.pexpire('a:2', 50)
  await eventually(async () => expect(await c.command('INFO', 'keyspace')).not.toMatch(/db0:/), 2000, 50)
  expect(await c.command('DBSIZE')).toBe(0)
})

/** Commands whose answers must agree, in order, from an empty database. */
const CORPUS: Array<Array<string | number>> = [
  ['SET', 's', 'hello'], ['APPEND', 's', ' world'], ['GETRANGE', 's', 0, 4], ['GETRANGE', 's', -5, -1], ['STRLEN', 's'],
  ['SET', 'n', '10'], ['INCRBY', 'n', 5], ['DECRBY', 'n', 3], ['DECR', 'n'], ['INCRBYFLOAT', 'n', '1.5'], ['INCRBYFLOAT', 'n', 'abc'], ['INCR', 's'],
  ['INCRBYFLOAT', 'f', '0.1'], ['INCRBYFLOAT', 'f', '0.2'], ['INCRBYFLOAT', 'f', '-0.3'],
  ['SET', 'k', 'v', 'EX', 100, 'NX'], ['SET', 'k', 'v2', 'GET'], ['SET', 'k', 'v3', 'KEEPTTL', 'GET'], ['TTL', 'k'], ['SET', 'k', 'v', 'PX', 0],
  ['SET', 'k', 'v', 'EX', -1], ['SET', 'k', 'v', 'EX'], ['SET', 'k', 'v', 'KEEPTTL', 'EX', 10], ['SET', 'k', 'v', 'FOO'], ['SET', 'k', 'v', 'XX', 'NX'],
  ['GETEX', 'k', 'PERSIST'], ['TTL', 'k'], ['GETEX', 'k', 'EX', 0], ['GETEX', 'k', 'PX', 1000, 'EX', 1], ['GETDEL', 'k'], ['GETDEL', 'k'],
  ['GETSET', 'k', 'a'], ['SETNX', 'k', 'b'], ['MSETNX', 'x1', '1', 'k', '2'], ['MSET', 'a'], ['MGET', 'k', 's', 'nope'],
  ['EXPIRE', 'k', 100, 'XX'], ['EXPIRE', 'k', 100, 'NX'], ['EXPIRE', 'k', 200, 'GT'], ['EXPIRE', 'k', 50, 'LT'], ['EXPIRE', 'k', 10, 'FOO'],
  ['EXPIRE', 'k', 10, 'GT', 'LT'], ['EXPIRE', 'k', 10, 'NX', 'XX'], ['PTTL', 'nokey'], ['TTL', 'k'], ['PERSIST', 'k'], ['PERSIST', 'k'],
  ['EXPIRETIME', 'k'], ['EXPIRE', 'k', 'abc'], ['EXPIRE', 'k', '9223372036854775807'], ['PEXPIREAT', 'k', 1], ['EXISTS', 'k', 'k', 's'],
  ['HSET', 'h', 'a', '1', 'b', '2'], ['HSET', 'h', 'a'], ['HGET', 'h', 'a'], ['HMGET', 'h', 'a', 'z'], ['HINCRBY', 'h', 'a', 10],
  ['HINCRBY', 'h', 'a', 'x'], ['HINCRBYFLOAT', 'h', 'b', '0.5'], ['HSETNX', 'h', 'a', '9'], ['HSETNX', 'h', 'c', '9'], ['HLEN', 'h'],
  ['HEXISTS', 'h', 'c'], ['HGETALL', 'h'], ['HDEL', 'h', 'a', 'b', 'c'], ['EXISTS', 'h'], ['HMSET', 'h', 'x', '1'], ['HSTRLEN', 'h', 'x'], ['HGET', 's', 'a'],
  ['SADD', 'st', 'a', 'b', 'a'], ['SCARD', 'st'], ['SISMEMBER', 'st', 'a'], ['SMISMEMBER', 'st', 'a', 'z'], ['SREM', 'st', 'a', 'z'], ['SMEMBERS', 'st'],
  ['SREM', 'st', 'b'], ['TYPE', 'st'],
  ['ZADD', 'z', 1, 'a', 2, 'b', 3, 'c'], ['ZADD', 'z', 'XX', 'CH', 5, 'a', 1, 'd'], ['ZADD', 'z', 'NX', 'XX', 1, 'a'], ['ZADD', 'z', 'INCR', 1, 'b'],
  ['ZADD', 'z', 1], ['ZADD', 'z', 'abc', 'x'], ['ZADD', 'z', 'GT', 'CH', 1, 'b', 10, 'c'], ['ZADD', 'z', 'GT', 'NX', 1, 'b'], ['ZADD', 'z', 'INCR', 1, 'a', 2, 'b'],
  ['ZINCRBY', 'z', '2.5', 'a'], ['ZADD', 'z', '0.1', 'e'],
  ['ZRANGE', 'z', 0, -1, 'WITHSCORES'], ['ZRANGE', 'z', '(3', '+inf', 'BYSCORE', 'LIMIT', 0, 1], ['ZRANGE', 'z', '+inf', '-inf', 'BYSCORE', 'REV'],
  ['ZRANGE', 'z', 0, 1, 'LIMIT', 0, 1], ['ZREVRANGE', 'z', 0, 0, 'WITHSCORES'], ['ZRANGEBYSCORE', 'z', '-inf', 3, 'WITHSCORES'],
  ['ZREVRANGEBYSCORE', 'z', '+inf', '(3'], ['ZCOUNT', 'z', '(1', 10], ['ZCOUNT', 'z', 'x', 1], ['ZSCORE', 'z', 'a'], ['ZSCORE', 'z', 'e'], ['ZSCORE', 'z', 'nope'],
  ['ZCARD', 'z'], ['ZREMRANGEBYRANK', 'z', 0, 0], ['ZREMRANGEBYSCORE', 'z', '-inf', '(4'], ['ZREM', 'z', 'c', 'q'], ['ZRANGE', 'z', 0, -1],
  ['LPUSH', 'l', 'a', 'b'], ['RPUSH', 'l', 'c'], ['LRANGE', 'l', 0, -1], ['LRANGE', 'l', -100, 100], ['LLEN', 'l'], ['LINDEX', 'l', -1],
  ['LPOP', 'l'], ['RPOP', 'l', 5], ['LPOP', 'l'], ['LPOP', 'nolist', 2], ['LPOP', 'l', -1],
  ['RPUSH', 'l2', 1, 2, 3, 4, 5, 3], ['LINSERT', 'l2', 'BEFORE', 3, 'x'], ['LINSERT', 'l2', 'after', 5, 'y'], ['LINSERT', 'l2', 'BEFORE', 'nope', 'z'],
  ['LINSERT', 'nolist', 'BEFORE', 1, 'z'], ['LINSERT', 'l2', 'AROUND', 1, 'z'], ['LINSERT', 's', 'BEFORE', 1, 'z'], ['LRANGE', 'l2', 0, -1],
  ['LTRIM', 'l2', 1, -2], ['LRANGE', 'l2', 0, -1], ['LTRIM', 'l2', -3, 100], ['LRANGE', 'l2', 0, -1], ['LTRIM', 'nolist', 0, 1], ['LTRIM', 'l2', 'a', 1],
  ['LTRIM', 'l2', 5, 1], ['EXISTS', 'l2'], ['RPUSH', 'l3', 'a', 'b', 'a', 'c', 'a'], ['LREM', 'l3', -1, 'a'], ['LRANGE', 'l3', 0, -1],
  ['LREM', 'l3', 1, 'a'], ['LRANGE', 'l3', 0, -1], ['LREM', 'l3', 0, 'b'], ['LREM', 'l3', 'x', 'a'], ['LREM', 'nolist', 0, 'a'], ['LREM', 's', 0, 'a'],
  ['LREM', 'l3', 0, 'a'], ['LREM', 'l3', 0, 'c'], ['EXISTS', 'l3'], ['RPUSH', 'l4', 'a', 'b'], ['LSET', 'l4', 0, 'x'], ['LSET', 'l4', -1, 'y'],
  ['LSET', 'l4', 2, 'z'], ['LSET', 'l4', -3, 'z'], ['LSET', 'l4', 'i', 'z'], ['LSET', 'nolist', 0, 'z'], ['LSET', 'nolist', 'i', 'z'], ['LSET', 's', 'i', 'z'], ['LRANGE', 'l4', 0, -1],
  ['RENAME', 'nokey', 'x'], ['RENAME', 's', 's2'], ['RENAMENX', 's2', 'n'], ['TYPE', 's2'], ['DBSIZE'], ['SCAN', 'abc'], ['SCAN', 0, 'COUNT', 0],
  ['SCAN', 0, 'MATCH'], ['SELECT', 16], ['SELECT', 'x'], ['ECHO'], ['ECHO', 'hi'], ['PING', 'a', 'b'], ['PING', 'x'],
  ['EVAL', 'return ARGV[1] + 1', 0, '41'], ['EVAL', 'return "x"', -1], ['EVAL', 'return 1', 2, 'a'], ['EVAL', 'return redis.call("TYPE", KEYS[1])', 1, 'n'],
  ['EVAL', 'return {redis.call("ZADD", KEYS[1], 1.5, "m"), redis.call("ZSCORE", KEYS[1], "m")}', 1, 'zz'],
  ['EVAL', "return {struct.unpack('>dd', struct.pack('>dd', 1.5, 2))}", 0], ['EVAL', "return struct.pack('>i2Bs', -2, 255, 'ab')", 0],
  ['EVAL', "return {struct.size('!4bi'), struct.unpack('<I3', 'abc')}", 0], ['EVAL', "return struct.unpack('>d', 'abc')", 0],
  ['EVAL', "return struct.pack('q', 1)", 0],
  ['EVAL', 'return redis.call("HGETALL", KEYS[1])', 1, 'h'], ['EVAL', 'return redis.call("SET", "q", "1", "GET")', 0],
  ['EVAL', 'return redis.call("EXPIRE", "q", 0.5)', 0], ['EVAL', 'local t = {} ; t[1] = 1; t[3] = 3; return t', 0], ['EVAL', 'return tostring(0.1)', 0],
  ['EVAL', 'return {1, "x", true, false, {2, {3}}, 3.99, -2.5}', 0], ['EVAL', 'return {1, 2, nil, 4}', 0],
  ['EVAL', 'return redis.call("HGET", "h")', 0], ['EVAL', 'return {ok="x"}', 0], ['EVAL', 'return {err="My error"}', 0],
  ['EVAL', 'return redis.status_reply("fine")', 0], ['EVAL', 'return redis.error_reply("-X y")', 0], ['EVAL', 'return redis.error_reply("plain")', 0],
  ['EVAL', 'x = 1', 0], ['EVAL', 'error("boom")', 0], ['EVAL', 'error({err="TAB x"})', 0], ['EVAL', 'return redis.call("INCR", "s2")', 0],
  ['EVAL', 'return redis.pcall("INCR", "s2")', 0], ['EVAL', 'local ok, e = pcall(redis.call, "INCR", "s2"); return {tostring(ok), e}', 0],
  ['EVAL', 'return redis.call("nosuch")', 0], ['EVAL', 'return redis.call()', 0], ['EVAL', 'return redis.call("GET", {})', 0],
  ['EVAL', 'return type(redis.call("GET", "nokey"))', 0], ['EVAL', 'return redis.sha1hex("abc")', 0], ['EVAL', 'return #KEYS + #ARGV', 2, 'a', 'b', 'c'],
  ['SCRIPT', 'LOAD', 'return 7'], ['EVALSHA', 'b4c7ab0b0a5e8e8b3e0a1a74b9bd0a6e2b8f5b6c', 0], ['SCRIPT', 'EXISTS', 'abc'], ['SCRIPT', 'FOO'],
  ['EVALSHA', 'zz', 0], ['CLIENT', 'FOO'], ['HELLO', 9], ['NOSUCH', 'a', 'b'], ['NOSUCH'], ['GET'], ['DEL'],
  ['SET', 'fl', '3.0'], ['INCRBYFLOAT', 'fl', 1], ['SET', 'i', '9223372036854775807'], ['INCR', 'i'], ['INCRBY', 'i', 'abc'],
  ['DECRBY', 'i', '-9223372036854775808'], ['SET', 'i', ' 1'], ['INCR', 'i'], ['SET', 'i', '01'], ['INCR', 'i'],
  ['UNLINK', 'i', 'fl', 'nope'], ['SET', 't', '1', 'PXAT', 1], ['EXISTS', 't'], ['TIME', 'x'], ['FLUSHDB', 'x'], ['MSET', 'a', '1', 'b'],
  ['CLIENT', 'TRACKING', 'ON', 'PREFIX', 'a'], ['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'a', 'PREFIX', 'ab'],
]

async function answers(c: RedisClient): Promise<string[]> {
  const out: string[] = []
  for (const cmd of CORPUS) {
    const [name, ...args] = cmd
    out.push(
      await c.command(String(name), ...args).then(
        (v) => `${cmd.join(' ')} -> ${JSON.stringify(v)}`,
        (e) => `${cmd.join(' ')} -> ${e.code}: ${e.message}`,
      ),
    )
  }
  return out
}

for (const resp3 of [false, true]) {
  test(`the corpus gets the same answers from memory:// as from redis-server (${resp3 ? 'RESP3' : 'RESP2'})`, async () => {
    const opts = resp3 ? { clientCache: { prefixes: ['cc:'] } } : {}
    const real = await connect({ url: `${srv.url}/${resp3 ? 2 : 1}`, ...opts })
    const mem = await connect({ url: `memory://${storeName()}`, ...opts })
    await real.command('FLUSHDB')
    expect(await answers(mem)).toEqual(await answers(real))
  })
}
