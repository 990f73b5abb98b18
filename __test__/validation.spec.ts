// Bad input: every method refuses wrong types and values with
// ERR_INVALID_ARGUMENT naming the argument, sends nothing, and the client
// keeps serving. The cases come from a seeded generator (same on every run).
import { RedisClient } from '../lib'
import { startRedis, stopAll, RedisServer } from './harness'
import { closeAll, connect, ns, prng } from './helpers'

let srv: RedisServer
let redis: RedisClient

beforeAll(async () => {
  srv = await startRedis()
  redis = await connect({ url: srv.url })
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

interface Case {
  /** Method name as it appears in the message (`get()`). */
  method: string
  /** What the message must contain (the argument's name). */
  names: string | RegExp
  call: (c: RedisClient) => Promise<unknown>
  label: string
}

const fn = () => 1
const sym = Symbol('s')

/** Not a key: everything but non-empty strings and Buffers. */
const BAD_KEYS: unknown[] = [
  '', Buffer.alloc(0), 0, 1, -1, 1.5, NaN, Infinity, {}, { k: 'v' }, [], ['k'], null, undefined,
  sym, 10n, fn, true, false, new Date(0), new Map([['k', 'v']]), new Set(['k']), /k/,
]
/** Not a value: everything but strings and Buffers (the empty string is a value). */
const BAD_VALUES: unknown[] = [
  0, 1, -1, 1.5, NaN, Infinity, {}, { a: 1 }, [], ['v'], null, undefined, sym, 10n, fn, true, false,
  new Date(0), new Map(), new Set(),
]
/** Not a TTL (positive safe integer). Objects are left out: for set() they are the options form. */
const BAD_TTLS: unknown[] = [0, -1, -0, NaN, Infinity, -Infinity, 1.5, 0.1, '10', '', null, true, false, 10n, sym, fn, 2 ** 53 + 2]
/** Not an integer increment. */
const BAD_INTS: unknown[] = [NaN, Infinity, -Infinity, 1.5, '10', '', null, undefined, true, 10n, sym, fn, {}, [], 2 ** 53, -(2 ** 54)]
/** Not a boolean flag (undefined means false and is fine). */
const BAD_FLAGS: unknown[] = [1, 0, 'true', '', null, {}, [], sym, 10n, fn, NaN]
/** Not a scan COUNT. */
const BAD_COUNTS: unknown[] = [0, -1, 1.5, NaN, Infinity, '10', null, true, {}, 10n]
/** Not a command name. */
const BAD_NAMES: unknown[] = ['', ' ', 'GET\r\nFLUSHALL', 'GET FLUSHALL', 'GET\nX', 'bad name', 5, null, undefined, {}, [], sym, 10n, fn, Buffer.from('GET')]
/** Not a command argument. */
const BAD_ARGS: unknown[] = [{}, { a: 1 }, null, undefined, NaN, Infinity, -Infinity, true, false, sym, 10n, fn, [], ['x'], new Map()]

function label(v: unknown): string {
  if (typeof v === 'symbol') return 'symbol'
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'function') return 'function'
  if (typeof v === 'string') return JSON.stringify(v)
  if (Buffer.isBuffer(v)) return `Buffer(${v.length})`
  if (v instanceof Map) return 'Map'
  if (v instanceof Set) return 'Set'
  if (v instanceof Date) return 'Date'
  if (v instanceof RegExp) return 'RegExp'
  try {
    return JSON.stringify(v) ?? String(v)
  } catch {
    return String(v)
  }
}

const r = (c: RedisClient) => c as any

/** Makes one invalid call with the given random source. */
function makeCase(rand: () => number, k: string): Case {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]
  const key = pick(BAD_KEYS)
  const val = pick(BAD_VALUES)
  const ttl = pick(BAD_TTLS)
  const gens: Array<() => Case> = [
    ...(['get', 'getBuffer', 'getDel', 'ttl', 'pttl', 'incr', 'hgetall', 'smembers'] as const).map(
      (m) => (): Case => ({ method: m, names: 'key', label: `${m}(${label(key)})`, call: (c) => r(c)[m](key) }),
    ),
    () => ({ method: 'set', names: 'key', label: `set(${label(key)}, 'v')`, call: (c) => r(c).set(key, 'v') }),
    () => ({ method: 'set', names: 'value', label: `set(k, ${label(val)})`, call: (c) => r(c).set(k, val) }),
    () => ({ method: 'set', names: 'value', label: `set(k, ${label(val)}, 10)`, call: (c) => r(c).set(k, val, 10) }),
    () => ({ method: 'set', names: 'ttlSeconds', label: `set(k, 'v', ${label(ttl)})`, call: (c) => r(c).set(k, 'v', ttl) }),
    () => {
      const opt = pick(['ttlSeconds', 'ttlMs'])
      return { method: 'set', names: `options.${opt}`, label: `set(k, 'v', {${opt}: ${label(ttl)}})`, call: (c) => r(c).set(k, 'v', { [opt]: ttl }) }
    },
    () => {
      const opt = pick(['nx', 'xx', 'keepTtl'])
      const f = pick(BAD_FLAGS)
      return { method: 'set', names: `options.${opt}`, label: `set(k, 'v', {${opt}: ${label(f)}})`, call: (c) => r(c).set(k, 'v', { [opt]: f }) }
    },
    () => pick([
      { method: 'set', names: 'not both', label: 'set ttlSeconds+ttlMs', call: (c: RedisClient) => c.set(k, 'v', { ttlSeconds: 1, ttlMs: 1000 }) },
      { method: 'set', names: 'options.nx', label: 'set nx+xx', call: (c: RedisClient) => c.set(k, 'v', { nx: true, xx: true }) },
      { method: 'set', names: 'options.keepTtl', label: 'set keepTtl+ttl', call: (c: RedisClient) => c.set(k, 'v', { keepTtl: true, ttlMs: 5 }) },
      { method: 'set', names: 'ttl', label: 'set unknown option', call: (c: RedisClient) => r(c).set(k, 'v', { ttl: 5 }) },
      { method: 'set', names: 'EX', label: 'set unknown option EX', call: (c: RedisClient) => r(c).set(k, 'v', { EX: 5 }) },
    ]),
    ...(['del', 'exists', 'mget'] as const).map((m) => (): Case => ({
      method: m, names: 'keys', label: `${m}(k, ${label(key)})`, call: (c) => r(c)[m](k, key),
    })),
    ...(['del', 'exists', 'mget'] as const).map((m) => (): Case => ({
      method: m, names: 'keys', label: `${m}()`, call: (c) => r(c)[m](),
    })),
    ...(['expire', 'pexpire'] as const).map((m) => (): Case => ({
      method: m, names: m === 'expire' ? 'seconds' : 'milliseconds', label: `${m}(k, ${label(ttl)})`, call: (c) => r(c)[m](k, ttl),
    })),
    ...(['expire', 'pexpire'] as const).map((m) => (): Case => ({
      method: m, names: 'key', label: `${m}(${label(key)}, 10)`, call: (c) => r(c)[m](key, 10),
    })),
    () => {
      const n = pick(BAD_INTS)
      return { method: 'incrBy', names: 'increment', label: `incrBy(k, ${label(n)})`, call: (c) => r(c).incrBy(k, n) }
    },
    () => ({ method: 'incrBy', names: 'key', label: `incrBy(${label(key)}, 1)`, call: (c) => r(c).incrBy(key, 1) }),
    () => {
      const e = pick<unknown>([
        {}, { [k]: val }, { '': 'v' }, new Map(), new Map([[5, 'v']]), new Map([[k, val]]), new Map([['', 'v']]),
        [], [[k]], [[k, 'v', 'x']], [[k, val]], [[5, 'v']], [['', 'v']], 'k', null, undefined, 5, sym, 10n, fn, true,
      ])
      return { method: 'mset', names: /entries|key #\d/, label: `mset(${label(e)})`, call: (c) => r(c).mset(e) }
    },
    () => ({ method: 'hget', names: 'key', label: `hget(${label(key)}, 'f')`, call: (c) => r(c).hget(key, 'f') }),
    () => ({ method: 'hget', names: 'field', label: `hget(k, ${label(val)})`, call: (c) => r(c).hget(k, val) }),
    () => ({ method: 'hset', names: 'key', label: `hset(${label(key)}, 'f', 'v')`, call: (c) => r(c).hset(key, 'f', 'v') }),
    () => ({ method: 'hset', names: 'value', label: `hset(k, 'f', ${label(val)})`, call: (c) => r(c).hset(k, 'f', val) }),
    () => {
      const f = pick<unknown>([0, 1.5, NaN, null, sym, 10n, fn, true])
      return { method: 'hset', names: 'field', label: `hset(k, ${label(f)}, 'v')`, call: (c) => r(c).hset(k, f, 'v') }
    },
    () => {
      const f = pick<unknown>([{}, { f: val }, new Map(), new Map([[5, 'v']]), new Map([['f', val]])])
      return { method: 'hset', names: 'field', label: `hset(k, ${label(f)})`, call: (c) => r(c).hset(k, f) }
    },
    ...(['hdel', 'sadd', 'srem'] as const).map((m) => (): Case => ({
      method: m, names: m === 'hdel' ? 'fields' : 'members', label: `${m}(k, 'a', ${label(val)})`, call: (c) => r(c)[m](k, 'a', val),
    })),
    ...(['hdel', 'sadd', 'srem'] as const).map((m) => (): Case => ({
      method: m, names: m === 'hdel' ? 'fields' : 'members', label: `${m}(k)`, call: (c) => r(c)[m](k),
    })),
    ...(['hdel', 'sadd', 'srem'] as const).map((m) => (): Case => ({
      method: m, names: 'key', label: `${m}(${label(key)}, 'a')`, call: (c) => r(c)[m](key, 'a'),
    })),
    () => {
      const opt = pick(['ttlSeconds', 'ttlMs'])
      return { method: 'getEx', names: `options.${opt}`, label: `getEx(k, {${opt}: ${label(ttl)}})`, call: (c) => r(c).getEx(k, { [opt]: ttl }) }
    },
    () => {
      const f = pick(BAD_FLAGS)
      return { method: 'getEx', names: 'options.persist', label: `getEx(k, {persist: ${label(f)}})`, call: (c) => r(c).getEx(k, { persist: f }) }
    },
    () => {
      const o = pick<unknown>([null, 5, 'x', true, sym, 10n])
      return { method: 'getEx', names: 'options', label: `getEx(k, ${label(o)})`, call: (c) => r(c).getEx(k, o) }
    },
    () => pick([
      { method: 'getEx', names: 'options', label: 'getEx ttl+persist', call: (c: RedisClient) => c.getEx(k, { ttlSeconds: 5, persist: true }) },
      { method: 'getEx', names: 'ex', label: 'getEx unknown option', call: (c: RedisClient) => r(c).getEx(k, { ex: 5 }) },
    ]),
    () => ({ method: 'getEx', names: 'key', label: `getEx(${label(key)})`, call: (c) => r(c).getEx(key) }),
    () => {
      const o = pick<[unknown, string]>([
        [{ match: '' }, 'options.match'], [{ match: 5 }, 'options.match'], [{ match: null }, 'options.match'],
        [{ type: '' }, 'options.type'], [{ type: 5 }, 'options.type'],
        [{ count: pick(BAD_COUNTS) }, 'options.count'],
        [{ pattern: '*' }, 'pattern'], [{ cursor: '0' }, 'cursor'],
        [null, 'options'], [5, 'options'], ['*', 'options'], [true, 'options'],
      ])
      return {
        method: 'scan', names: o[1], label: `scan(${label(o[0])})`,
        call: (c) => r(c).scan(o[0])[Symbol.asyncIterator]().next(),
      }
    },
    () => {
      const n = pick(BAD_NAMES)
      return { method: 'command', names: 'name', label: `command(${label(n)})`, call: (c) => r(c).command(n, 'k') }
    },
    () => {
      const a = pick(BAD_ARGS)
      return { method: 'command', names: 'args[1]', label: `command('SET', k, ${label(a)})`, call: (c) => r(c).command('SET', k, a) }
    },
  ]
  return pick(gens)()
}

test('5000 generated bad calls all reject with ERR_INVALID_ARGUMENT naming the argument, sending nothing', async () => {
  const rand = prng(0x5eed)
  const p = ns('fuzz')
  const before = redis.stats()
  const failures: string[] = []
  const methods = new Set<string>()
  for (let round = 0; round < 100; round++) {
    // 50 bad calls in one tick (one native batch), with a good set/get pair among them.
    const cases = Array.from({ length: 50 }, () => makeCase(rand, `${p}k`))
    const calls: Array<Promise<unknown>> = []
    for (const c of cases) {
      methods.add(c.method)
      let p0: Promise<unknown>
      try {
        p0 = c.call(redis)
      } catch (e) {
        failures.push(`${c.label}: threw synchronously instead of rejecting: ${String(e)}`)
        continue
      }
      calls.push(
        p0.then(
          (v) => failures.push(`${c.label}: resolved ${label(v)}`),
          (e) => {
            if (e?.code !== 'ERR_INVALID_ARGUMENT') failures.push(`${c.label}: code ${e?.code} (${e?.message})`)
            else if (!String(e.message).includes(`${c.method}()`)) failures.push(`${c.label}: message does not name ${c.method}(): ${e.message}`)
            else if (!(typeof c.names === 'string' ? String(e.message).includes(c.names) : c.names.test(e.message))) failures.push(`${c.label}: message does not name ${c.names}: ${e.message}`)
          },
        ),
      )
    }
    await Promise.all(calls)
  }
  expect(failures.slice(0, 30)).toEqual([])
  // every method was exercised
  for (const m of ['get', 'getBuffer', 'set', 'del', 'exists', 'expire', 'pexpire', 'ttl', 'pttl', 'incr', 'incrBy',
    'mget', 'mset', 'hget', 'hset', 'hgetall', 'hdel', 'sadd', 'srem', 'smembers', 'getDel', 'getEx', 'scan', 'command']) {
    expect(methods).toContain(m)
  }
  // nothing reached the server, and no key was created
  expect(redis.stats().commands).toBe(before.commands)
  expect(await srv.cli('DBSIZE')).toBe('0')
})

test('bad calls mixed into the same tick as good ones: the good ones get their own replies', async () => {
  const rand = prng(42)
  const p = ns('mixed')
  for (let round = 0; round < 20; round++) {
    const ops: Array<Promise<unknown>> = []
    const expected: Array<[number, unknown]> = []
    for (let i = 0; i < 40; i++) {
      if (i % 4 === 0) {
        const k = `${p}${round}:${i}`
        ops.push(redis.set(k, `v${round}:${i}`))
        expected.push([ops.length, `v${round}:${i}`])
        ops.push(redis.get(k))
      } else {
        ops.push(makeCase(rand, `${p}bad`).call(redis).then(
          () => 'RESOLVED',
          (e) => e?.code,
        ))
      }
    }
    const results = await Promise.all(ops)
    for (const [idx, v] of expected) expect(results[idx]).toBe(v)
    expect(results.filter((x) => x === 'RESOLVED')).toEqual([])
  }
})

test('the client still serves get/set afterwards, and the process is fine', async () => {
  const p = ns('after')
  await redis.set(p + 'a', 'alpha', 60)
  expect(await redis.get(p + 'a')).toBe('alpha')
  expect(await redis.set(p + 'b', 'beta', { nx: true })).toBe(true)
  expect(await redis.mget(p + 'a', p + 'b')).toEqual(['alpha', 'beta'])
  expect(await redis.ping()).toBeGreaterThan(0)
  expect(redis.stats().inFlight).toBe(0)
  expect(process.exitCode ?? 0).toBe(0)
})

describe('specific refusals', () => {
  const k = 'spec:k'
  const refuses = (p: Promise<unknown>, text?: string | RegExp) =>
    expect(p).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      ...(text ? { message: typeof text === 'string' ? expect.stringContaining(text) : expect.stringMatching(text) } : {}),
    })

  test('TTLs 0, -1, NaN, Infinity, 1.5 and "10" are refused everywhere a TTL goes', async () => {
    for (const t of [0, -1, NaN, Infinity, 1.5, '10'] as any[]) {
      await refuses(redis.set(k, 'v', t), 'ttlSeconds')
      await refuses(redis.set(k, 'v', { ttlSeconds: t }), 'options.ttlSeconds')
      await refuses(redis.set(k, 'v', { ttlMs: t }), 'options.ttlMs')
      await refuses(redis.expire(k, t), 'seconds')
      await refuses(redis.pexpire(k, t), 'milliseconds')
      await refuses(redis.getEx(k, { ttlSeconds: t }), 'options.ttlSeconds')
      await refuses(redis.getEx(k, { ttlMs: t }), 'options.ttlMs')
    }
    expect(await redis.exists(k)).toBe(0)
  })

  test('messages say what was passed', async () => {
    await refuses(redis.get(5 as any), /key must be a non-empty string or Buffer, got number 5/)
    await refuses(redis.get('' as any), /got an empty string/)
    await refuses(redis.set(k, 5 as any), 'value must be a string or Buffer, got number')
    await refuses(redis.set(k, null as any), 'got null')
    await refuses(redis.set(k, undefined as any), 'got undefined')
    await refuses(redis.set(k, Symbol('x') as any), 'got symbol')
    await refuses(redis.set(k, 5n as any), 'got bigint')
    await refuses(redis.set(k, (() => 1) as any), 'got function')
    await refuses(redis.set(k, { a: 1 } as any), 'got object')
    await refuses(redis.set(k, 'v', NaN), 'NaN')
    await refuses(redis.set(k, 'v', Infinity), 'Infinity')
  })

  test('unknown option keys in set, getEx and scan options are refused (and nothing is written)', async () => {
    await refuses(redis.set(k, 'v', { ttl: 5 } as any), 'ttl')
    await refuses(redis.set(k, 'v', { ex: 5 } as any), 'ex')
    await refuses(redis.set(k, 'v', { nx: true, get: true } as any), 'get')
    await refuses(redis.getEx(k, { ex: 5 } as any), 'ex')
    await refuses(redis.getEx(k, { ttlSeconds: 5, px: 1 } as any), 'px')
    await refuses(redis.scan({ pattern: '*' } as any)[Symbol.asyncIterator]().next(), 'pattern')
    await refuses(redis.scan({ match: '*', limit: 5 } as any)[Symbol.asyncIterator]().next(), 'limit')
    expect(await redis.exists(k)).toBe(0)
  })

  // set(k, v, new Date(...)) (an expiry date) or set(k, v, []) is a wrong type, not "no options":
  // silently storing the value without a TTL would hide the mistake.
  test.each([
    ['set(k, v, Date)', (c: RedisClient, key: string) => c.set(key, 'v', new Date(Date.now() + 60_000) as any)],
    ['set(k, v, [])', (c: RedisClient, key: string) => c.set(key, 'v', [] as any)],
    ['getEx(k, Date)', (c: RedisClient, key: string) => c.getEx(key, new Date() as any)],
  ])('non-objects where options belong are refused: %s', async (_name, call) => {
    const key = ns('nonobj') + 'k'
    await refuses(call(redis, key) as Promise<unknown>)
    expect(await redis.exists(key)).toBe(0)
  })

  test('command(): names that could smuggle protocol are refused', async () => {
    const k = ns('smuggle') + 'k'
    for (const n of ['GET\r\nFLUSHALL', 'GET FLUSHALL', '', 'PING\n']) {
      await refuses(redis.command(n), 'name')
    }
    await refuses(redis.command('SET', k, { toString: () => 'v' } as any), 'args[1]')
    expect(await redis.exists(k)).toBe(0)
  })
})
