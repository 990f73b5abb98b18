// multi()…exec() and pipeline()…exec() against real servers: atomicity seen
// from a second client, replies shaped as the client's own methods shape them,
// a failed command's error in its place, WATCH on a duplicate(), bad input
// refused before anything is sent, keyPrefix, and a cluster's one-slot rule.
import { RedisClient } from '../lib'
import { startCluster, startRedis, stopAll, type RedisCluster, type RedisServer } from './harness'
import { closeAll, connect, ns, onMemoryBackend, realRedisTest, rejection, track } from './helpers'

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

describe('multi()', () => {
  test('resolves every reply in order, shaped as the client methods resolve them', async () => {
    const k = ns('shape')
    const out = await redis
      .multi()
      .set(k + 's', 'v')
      .set(k + 's', 'w', { nx: true })
      .get(k + 's')
      .incr(k + 'n')
      .incrByFloat(k + 'f', 1.5)
      .hset(k + 'h', JSON.parse('{"a":"1","__proto__":"2"}') as Record<string, string>)
      .hgetall(k + 'h')
      .rpush(k + 'l', 'a', 'b', 'c')
      .lpop(k + 'l', 2)
      .zadd(k + 'z', [{ score: 2, value: 'b' }, { score: 1, value: 'a' }])
      .zrange(k + 'z', 0, -1, { withScores: true })
      .expire(k + 's', 60)
      .exists(k + 's', k + 'nope')
      .getBuffer(k + 's')
      .command('STRLEN', k + 's')
      .exec()
    expect(out).toEqual([
      undefined,
      false,
      'v',
      1,
      1.5,
      2,
      { a: '1', ['__proto__']: '2' },
      3,
      ['a', 'b'],
      2,
      [
        ['a', 1],
        ['b', 2],
      ],
      true,
      1,
      Buffer.from('v'),
      1,
    ])
    expect(Object.keys(out![6] as object)).toEqual(['a', '__proto__'])
  })

  test("a failed command's error takes its place; the others ran", async () => {
    const k = ns('fail')
    await redis.set(k + 'str', 'x')
    const out = await redis
      .multi()
      .incr(k + 'n')
      .lpush(k + 'str', 'a') // WRONGTYPE at EXEC
      .incr(k + 'n')
      .exec()
    expect(out![0]).toBe(1)
    expect(out![2]).toBe(2)
    expect(out![1]).toMatchObject({ code: 'ERR_REPLY', serverCode: 'WRONGTYPE' })
    expect((out![1] as Error).message).toContain('WRONGTYPE')
    expect(await redis.get(k + 'n')).toBe('2')
  })

  test('a command the server refuses while queuing discards the transaction (EXECABORT): nothing ran', async () => {
    const k = ns('abort')
    const e = await rejection(
      redis
        .multi()
        .set(k + 'a', '1')
        .command('NOSUCHCOMMAND', 'x')
        .exec(),
    )
    expect(e).toMatchObject({ code: 'ERR_REPLY', serverCode: 'EXECABORT' })
    expect(e.message).toContain('command #2')
    expect(await redis.exists(k + 'a')).toBe(0)
  })

  // memory:// runs each batch of a connection under one lock: nothing to interleave with there
  realRedisTest('is atomic: a second client polling during 1,000 transactions never sees half of one', async () => {
    // Each transaction sets a, runs 1,000 INCRs, then sets b: ~30 KB on the
    // wire, which the server reads in several chunks. Without MULTI (the
    // pipeline control below), the reader's MGETs land between the chunks.
    const k = ns('atomic')
    const reader = await connect(srv.url)
    const run = async (mode: 'multi' | 'pipeline', n: number) => {
      await redis.mset({ [k + 'a']: '0', [k + 'b']: '0' })
      let stop = false
      let reads = 0
      let torn = 0
      const poll = (async () => {
        while (!stop) {
          const replies = await Promise.all(Array.from({ length: 20 }, () => reader.mget(k + 'a', k + 'b')))
          for (const [a, b] of replies) {
            reads++
            if (a !== b) torn++
          }
        }
      })()
      for (let i = 1; i <= n; i++) {
        const tx = redis[mode]().set(k + 'a', String(i))
        for (let j = 0; j < 1000; j++) tx.incr(k + 'filler')
        const out = await tx.command('SET', k + 'b', String(i)).exec()
        expect(out).toHaveLength(1002)
        expect(out![1001]).toBe('OK')
      }
      stop = true
      await poll
      return { reads, torn }
    }
    // Whether a read lands between two chunks is timing: a loaded machine may need more rounds.
    let control = await run('pipeline', 100)
    for (let round = 0; control.torn === 0 && round < 10; round++) control = await run('pipeline', 100)
    expect(control.torn).toBeGreaterThan(0) // the reader does get between the commands
    const tx = await run('multi', 1000)
    expect(tx.reads).toBeGreaterThan(1000)
    expect(tx.torn).toBe(0)
    expect(await redis.mget(k + 'a', k + 'b')).toEqual(['1000', '1000'])
    expect(await redis.get(k + 'filler')).toBe(String(1100 * 1000))
  })

  test('many transactions in one tick, and plain calls between them, each get their own replies', async () => {
    const k = ns('tick')
    const txs = Array.from({ length: 50 }, (_, i) =>
      redis
        .multi()
        .set(k + i, String(i))
        .get(k + i)
        .exec(),
    )
    const plain = Array.from({ length: 50 }, (_, i) => redis.incrBy(k + 'sum', i))
    const results = await Promise.all(txs)
    results.forEach((r, i) => expect(r).toEqual([undefined, String(i)]))
    expect((await Promise.all(plain)).at(-1)).toBe((49 * 50) / 2)
  })

  test('bad input rejects exec() with ERR_INVALID_ARGUMENT and nothing is sent', async () => {
    const k = ns('bad')
    const before = redis.stats().commands
    // refused by the typed method's own check
    const e1 = await rejection(
      redis
        .multi()
        .set(k + 'a', '1')
        .zadd(k + 'z', [], {})
        .exec(),
    )
    expect(e1).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    // refused by the native encoder (a key that is not a string)
    const e2 = await rejection(
      redis
        .multi()
        .set(k + 'a', '1')
        .get(42 as unknown as string)
        .incr(k + 'n')
        .exec(),
    )
    expect(e2).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(e2.message).toContain('nothing was sent')
    expect(e2.message).toContain('command #2')
    // and the same for a pipeline
    const e3 = await rejection(redis.pipeline().set(k + 'a', '1').set(k + 'b', {} as unknown as string).exec())
    expect(e3).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    // MULTI/EXEC through command() stay refused (the connection is shared)
    const e4 = await rejection(redis.multi().command('EXEC').exec())
    expect(e4).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(redis.stats().commands).toBe(before)
    expect(await redis.exists(k + 'a', k + 'n')).toBe(0)
    // a builder runs once
    const m = redis.multi().incr(k + 'once')
    await m.exec()
    await expect(m.exec()).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(() => m.incr(k + 'once')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(await redis.get(k + 'once')).toBe('1')
  })

  test('shapes the same on a RESP3 connection (clientCache on): maps, doubles, errors in place', async () => {
    const k = ns('resp3')
    const c = await connect({ url: srv.url, clientCache: { prefixes: [k + 'cached:'] } })
    await c.set(k + 'str', 'x')
    const out = await c
      .multi()
      .hset(k + 'h', { f: 'v' })
      .hgetall(k + 'h')
      .zadd(k + 'z', { score: 1.5, value: 'm' })
      .zrange(k + 'z', 0, -1, { withScores: true })
      .zscore(k + 'z', 'm')
      .incr(k + 'str')
      .get(k + 'cached:a')
      .exec()
    expect(out!.slice(0, 5)).toEqual([1, { f: 'v' }, 1, [['m', 1.5]], 1.5])
    expect(out![5]).toMatchObject({ code: 'ERR_REPLY', serverCode: 'ERR' })
    expect(out![6]).toBeNull()
  })

  test('an empty transaction resolves []', async () => {
    expect(await redis.multi().exec()).toEqual([])
    expect(await redis.pipeline().exec()).toEqual([])
  })

  test('eval() inside a transaction; the keyPrefix applies to every command and KEYS', async () => {
    const k = ns('prefix')
    const p = await connect({ url: srv.url, keyPrefix: k })
    const out = await p
      .multi()
      .set('a', '1')
      .incr('a')
      .eval("return redis.call('GET', KEYS[1])", ['a'])
      .command('RPUSH', 'l', 'x')
      .del('a', 'l')
      .exec()
    expect(out).toEqual([undefined, 2, '2', 1, 2])
    await p.set('b', 'B')
    expect(await redis.get(k + 'b')).toBe('B')
  })
})

describe('watch()', () => {
  test('exec() resolves null when another client changed a watched key, and runs when nobody did', async () => {
    const k = ns('watch')
    await redis.set(k + 'balance', '10')
    const tx = track(redis.duplicate())
    await tx.watch(k + 'balance')
    const seen = Number(await tx.get(k + 'balance'))
    await redis.set(k + 'balance', '100') // another client changes it
    const out = await tx
      .multi()
      .set(k + 'balance', String(seen - 1))
      .exec()
    expect(out).toBeNull()
    expect(await redis.get(k + 'balance')).toBe('100')

    await tx.watch(k + 'balance')
    const now = Number(await tx.get(k + 'balance'))
    expect(
      await tx
        .multi()
        .set(k + 'balance', String(now - 1))
        .exec(),
    ).toEqual([undefined])
    expect(await redis.get(k + 'balance')).toBe('99')
  })

  test('unwatch() forgets the watch; the keyPrefix applies to watched keys', async () => {
    const k = ns('unwatch')
    const tx = await connect({ url: srv.url, keyPrefix: k })
    await tx.watch('x')
    await redis.set(k + 'x', 'changed') // the prefixed key is the watched one
    expect(await tx.multi().set('x', 'mine').exec()).toBeNull()
    await tx.watch('x')
    await redis.set(k + 'x', 'again')
    await tx.unwatch()
    expect(await tx.multi().set('x', 'mine').exec()).toEqual([undefined])
    expect(await redis.get(k + 'x')).toBe('mine')
  })
})

describe('pipeline()', () => {
  test('replies in order with errors in place; not atomic', async () => {
    const k = ns('pipe')
    await redis.set(k + 'str', 'x')
    const out = await redis
      .pipeline()
      .incr(k + 'n')
      .hget(k + 'str', 'f') // WRONGTYPE
      .get(k + 'str')
      .zscore(k + 'z', 'nope')
      .exec()
    expect(out![0]).toBe(1)
    expect(out![1]).toMatchObject({ code: 'ERR_REPLY', serverCode: 'WRONGTYPE' })
    expect(out![2]).toBe('x')
    expect(out![3]).toBeNull()
  })

  test('a connection error rejects exec()', async () => {
    const c = await connect(srv.url)
    const p = c.pipeline().incr(ns('closed') + 'n')
    await c.close()
    await expect(p.exec()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })
})

const describeCluster = onMemoryBackend ? describe.skip : describe

describeCluster('on a Redis Cluster', () => {
  let cluster: RedisCluster
  let cl: RedisClient
  beforeAll(async () => {
    cluster = await startCluster({ masters: 3, replicas: 0 })
    cl = await connect({ cluster: { nodes: cluster.nodes } })
  })

  test("a transaction's keys must share a slot: ERR_INVALID_ARGUMENT naming them, nothing sent", async () => {
    const e = await rejection(cl.multi().set('alpha', '1').incr('beta').exec())
    expect(e).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(e.message).toContain('"alpha"')
    expect(e.message).toContain('"beta"')
    expect(await cl.exists('alpha', 'beta')).toBe(0)
  })

  test('keys with one hash tag run atomically on their node', async () => {
    const out = await cl
      .multi()
      .set('{user:7}:name', 'ann')
      .incr('{user:7}:visits')
      .get('{user:7}:name')
      .exec()
    expect(out).toEqual([undefined, 1, 'ann'])
    const tx = await connect({ cluster: { nodes: cluster.nodes } })
    await tx.watch('{user:7}:visits')
    await cl.incr('{user:7}:visits')
    expect(await tx.multi().incr('{user:7}:visits').exec()).toBeNull()
  })

  test('a pipeline may span slots', async () => {
    const out = await cl.pipeline().set('p1', 'a').set('p2', 'b').mget('p1', 'p2').exec()
    expect(out).toEqual([undefined, undefined, ['a', 'b']])
  })
})
