// Bad input, property-based (issue #10, point 2): fast-check generates calls of
// every public method of RedisClient (with its cache and sessions) and of
// RedisThrottlerStorage.increment, with arbitrary JavaScript values where the
// arguments go — anything fc.anything() makes, strings with control characters,
// quotes, braces and Lua code, NaN, ±Infinity, -0, huge numbers, bigints,
// symbols, functions, Buffers, Dates, Maps, null and undefined — mixed with
// plausible arguments so that the calls also get past the first check.
//
// 10,000 calls (FUZZ_RUNS × 50), 50 per tick, so they travel in one native batch
// together with a set/get pair of sentinel keys. Every call must resolve or
// reject with ERR_INVALID_ARGUMENT or ERR_REPLY; never throw synchronously,
// never another code, never hang, never crash the process; the sentinels of
// each batch must get their own values; afterwards the client still serves and
// stats() is sane. The seed is fixed (FUZZ_SEED overrides it) so a failure
// replays; fast-check prints the seed and the shrunk counterexample.
//
// validation.spec.ts checks the exact messages of known-bad arguments; this file
// looks for whatever it did not think of. It also covers the adapters (Keyv store,
// Better Auth storage and verifier, rateLimitHeaders), hostile objects (throwing
// getters, Proxies), and command()s that would change the shared connection's state.
import * as fc from 'fast-check'
import path from 'path'
import { RedisClient, rateLimitHeaders } from '../lib'
import { RedisThrottlerStorage } from '../lib/ratelimit/throttler'
import { KeyvRedisStore } from '../lib/caching/keyv'
import { redisSecondaryStorage, sessionVerifier } from '../lib/sessions/better-auth'
import { startRedis, stopAll, RedisServer } from './harness'
import { closeAll, connect, eventually, ns, withTimeout } from './helpers'
import { death, runChild } from './reliability/child'

const SEED = Number(process.env.FUZZ_SEED ?? 0x10a7)
/** Batches of CALLS_PER_RUN calls; the default makes the 10,000 calls of the issue. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 200)
const CALLS_PER_RUN = 50
/** A call still pending after this is reported as hung. */
const CALL_LIMIT_MS = 8000

let srv: RedisServer
let plain: RedisClient
let prefixed: RedisClient // keyPrefix 'fz:'

beforeAll(async () => {
  srv = await startRedis()
  plain = await connect({ port: srv.port, commandTimeoutMs: 3000 })
  prefixed = await connect({ port: srv.port, commandTimeoutMs: 3000, keyPrefix: 'fz:' })
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

// ---- values ---------------------------------------------------------------------------------

/** Text that has broken parsers, escapers and script splicers before. */
const INJECTIONS = [
  '', ' ', "'", '"', '`', '\\', '\n', '\r\n', '\r', '\t', '\0', '\x7f', '{', '}', '{}', '{a}', '}{', '[', ']', ']]', '[[', '[=[', ']=]',
  '--', '--[[', '*', '?', '%', '$', '#', ':', '::', '~', '~a', 'a:*', '*\r\n$4\r\nPING\r\n', '$-1\r\n', '+OK\r\n', '-ERR x\r\n',
  "redis.call('FLUSHALL')", "')); redis.call('FLUSHALL') --", "\"]] redis.call('FLUSHALL') --[[", 'return 1', 'KEYS[1]', 'ARGV[1]',
  'FLUSHALL', 'flushdb', 'SHUTDOWN', 'DEL *', '😀', 'é', '\u202e', '\ud800', '\udc00', '\uffff', 'a'.repeat(1000),
]
const nastyString = fc.oneof(
  fc.constantFrom(...INJECTIONS),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: fc.constantFrom('{', '}', '"', "'", '\n', '\r', '\\', '*', '?', '[', ']', '-', ' ', ':', '\0', 'a', '~'), maxLength: 10 }),
)
const nastyNumber = fc.oneof(
  fc.constantFrom(NaN, Infinity, -Infinity, -0, 0, 1, -1, 0.5, 1.5, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e21, 1e308, Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON),
  fc.integer(),
  fc.double(),
)
const weird = fc.constantFrom<unknown>(
  Symbol('s'), Symbol.iterator, () => 1, async () => 1, function* gen() {}, class K {}, 10n, -1n, 2n ** 70n,
  new Date(0), new Date(NaN), /re/g, new Map([['k', 'v']]), new Map(), new Set(['x']), new WeakMap(), Promise.resolve(1),
  new Error('e'), [, 1], [[]], new String('boxed'), new Number(5), new Boolean(false), Object.create(null),
  Buffer.alloc(0), Buffer.from([0, 0xff, 0xfe]), new Uint8Array([1, 2]), new Float64Array([NaN]), new ArrayBuffer(4),
  new DataView(new ArrayBuffer(2)), { toString: () => 'k' }, { valueOf: () => 5 }, { length: 2, 0: 'a', 1: 'b' },
  process.env, globalThis.Math, true, false, null, undefined,
)
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.anything({ withBigInt: true, withBoxedValues: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true, withObjectString: true, withSparseArray: true, withTypedArray: true, maxDepth: 2, maxKeys: 4 }) },
  { weight: 3, arbitrary: nastyString },
  { weight: 2, arbitrary: nastyNumber },
  { weight: 2, arbitrary: weird },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.array(nastyString, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.dictionary(nastyString, nastyString, { maxKeys: 3 }) },
)

// Plausible arguments, so that the generated calls also reach the later checks and the server.
const key = fc.oneof(nastyString.filter((s) => s.length > 0), fc.constantFrom('k', 'h', 's', 'n', 'w:1'), fc.uint8Array({ minLength: 1, maxLength: 8 }).map((a) => Buffer.from(a)))
const value = fc.oneof(nastyString, fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)))
const posInt = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 100_000 }) }, { weight: 1, arbitrary: nastyNumber })
const smallInt = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: -1000, max: 1000 }) }, { weight: 1, arbitrary: nastyNumber })
/** Mostly absent: an options bag with every field set is rarely valid. */
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { freq: 3, nil: undefined })
const bool = fc.oneof(fc.boolean(), fc.constant(undefined))
const setOptions = fc.record({ ttlSeconds: posInt, ttlMs: posInt, nx: bool, xx: bool, keepTtl: bool }, { requiredKeys: [] })
const getExOptions = fc.record({ ttlSeconds: posInt, ttlMs: posInt, persist: bool }, { requiredKeys: [] })
const scanOptions = fc.record({ match: nastyString, count: posInt, type: fc.constantFrom('string', 'hash', 'set', 'zset', 'list', 'stream', 'nonsense') }, { requiredKeys: [] })
const rule = fc
  .record({
    limit: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 50 }) }, { weight: 1, arbitrary: nastyNumber }),
    windowMs: posInt,
    algorithm: maybe(fc.constantFrom('gcra', 'fixed-window', 'sliding-window', 'token-bucket')),
    burst: maybe(posInt),
    cost: maybe(fc.oneof(fc.integer({ min: 0, max: 2 }), nastyNumber)),
    blockMs: maybe(fc.oneof(fc.integer({ min: 0, max: 5000 }), nastyNumber)),
    name: maybe(nastyString),
    onUnavailable: maybe(fc.constantFrom('allow', 'deny', 'retry')),
  })
  // absent fields are left out, not set to undefined
  .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)))
/** Commands that cannot block, take the server down, allocate hundreds of MB or change the connection. */
const SAFE_COMMANDS = [
  'GET', 'SET', 'DEL', 'UNLINK', 'EXISTS', 'INCR', 'INCRBY', 'DECR', 'APPEND', 'STRLEN', 'GETRANGE', 'MGET', 'MSET', 'TYPE',
  'EXPIRE', 'PEXPIRE', 'TTL', 'PTTL', 'PERSIST', 'HSET', 'HGET', 'HGETALL', 'HDEL', 'HINCRBY', 'LPUSH', 'RPUSH', 'LPOP', 'LRANGE',
  'LLEN', 'SADD', 'SREM', 'SMEMBERS', 'SCARD', 'ZADD', 'ZRANGE', 'ZSCORE', 'ZCARD', 'PFADD', 'PFCOUNT', 'ECHO', 'PING', 'TIME',
  'DBSIZE', 'OBJECT', 'GETDEL', 'GETEX', 'COPY', 'RENAME', 'SORT', 'XADD', 'XLEN', 'XRANGE', 'GEOADD', 'SCAN', 'KEYS', 'RANDOMKEY',
  'EVAL', 'EVALSHA', 'INFO', 'COMMAND', 'nosuchcommand', 'get', 'Set',
]
/** Never generated: blocking, dangerous, or changing the shared connection's state (tested on their own below). */
const DENIED_COMMANDS = new Set([
  'WAIT', 'WAITAOF', 'BLPOP', 'BRPOP', 'BLMOVE', 'BLMPOP', 'BRPOPLPUSH', 'BZPOPMIN', 'BZPOPMAX', 'BZMPOP', 'XREAD', 'XREADGROUP',
  'SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE', 'MONITOR', 'MULTI', 'EXEC', 'WATCH', 'RESET', 'HELLO', 'AUTH', 'SELECT', 'SWAPDB',
  'QUIT', 'CLIENT', 'CONFIG', 'DEBUG', 'SHUTDOWN', 'FLUSHALL', 'FLUSHDB', 'SAVE', 'BGSAVE', 'BGREWRITEAOF', 'REPLICAOF', 'SLAVEOF',
  'SYNC', 'PSYNC', 'FAILOVER', 'MIGRATE', 'SETRANGE', 'SETBIT', 'BITFIELD', 'SCRIPT', 'FUNCTION', 'FCALL', 'ACL', 'MODULE', 'CLUSTER',
  'READONLY', 'LATENCY', 'SLOWLOG', 'MEMORY', 'OBJECT', 'RESTORE', 'DUMP', 'LASTSAVE',
])
const commandName = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...SAFE_COMMANDS.filter((c) => !DENIED_COMMANDS.has(c.toUpperCase()))) },
  { weight: 1, arbitrary: nastyString.filter((s) => !DENIED_COMMANDS.has(s.trim().toUpperCase())) },
)
/** EVAL's script text is generated too: never something that could loop. */
const commandArgs = fc.array(fc.oneof(nastyString, nastyNumber, anyValue), { maxLength: 5 }).map((args) =>
  args.map((a) => (typeof a === 'string' && /while|repeat|for |goto|function/.test(a) ? 'x' : a)),
)
const loader = fc.oneof(
  fc.func(anyValue),
  fc.func(anyValue).map((f) => async () => f()),
  anyValue,
)
const wrapOptions = fc.option(
  fc.record({ refreshAheadMs: fc.oneof(fc.integer({ min: 0, max: 100 }), nastyNumber), lockMs: fc.oneof(fc.integer({ min: 1, max: 2000 }), nastyNumber), waitMs: fc.oneof(fc.integer({ min: 0, max: 200 }), nastyNumber), other: anyValue }, { requiredKeys: [] }),
  { freq: 2, nil: undefined },
)
const token = fc.oneof(nastyString, fc.constantFrom('a'.repeat(43), 'A'.repeat(42) + 'A', `${'_'.repeat(42)}w`))
const throttlerNumber = fc.oneof(fc.integer({ min: -10, max: 100_000 }), nastyNumber)

// ---- the calls ------------------------------------------------------------------------------

interface Ctx {
  c: RedisClient
  storage: RedisThrottlerStorage
}

/** One public method: how to call it, and its arguments (plausible or anything, per position). */
interface Target {
  name: string
  args: Array<fc.Arbitrary<unknown>>
  call: (ctx: Ctx, args: any[]) => unknown
}

const drain = async (it: AsyncIterable<unknown>) => {
  const got: unknown[] = []
  for await (const k of it) {
    got.push(k)
    if (got.length >= 50) break
  }
  return got
}

/** The generated argument list as a list; one the test itself cannot spread (a hostile object) is passed as one argument. */
function spreadable(args: unknown): unknown[] {
  try {
    return Array.isArray(args) ? [...args] : [args]
  } catch {
    return [args]
  }
}

const TARGETS: Target[] = [
  { name: 'get', args: [key], call: ({ c }, a) => c.get(...(a as [any])) },
  { name: 'getBuffer', args: [key], call: ({ c }, a) => c.getBuffer(...(a as [any])) },
  { name: 'set', args: [key, value, posInt], call: ({ c }, a) => (c.set as any)(...a) },
  { name: 'set(options)', args: [key, value, setOptions], call: ({ c }, a) => (c.set as any)(...a) },
  { name: 'del', args: [key, key], call: ({ c }, a) => (c.del as any)(...a) },
  { name: 'del([])', args: [fc.array(key, { maxLength: 3 })], call: ({ c }, a) => (c.del as any)(...a) },
  { name: 'exists', args: [key, key], call: ({ c }, a) => (c.exists as any)(...a) },
  { name: 'expire', args: [key, posInt], call: ({ c }, a) => (c.expire as any)(...a) },
  { name: 'pexpire', args: [key, posInt], call: ({ c }, a) => (c.pexpire as any)(...a) },
  { name: 'ttl', args: [key], call: ({ c }, a) => (c.ttl as any)(...a) },
  { name: 'pttl', args: [key], call: ({ c }, a) => (c.pttl as any)(...a) },
  { name: 'incr', args: [key], call: ({ c }, a) => (c.incr as any)(...a) },
  { name: 'incrBy', args: [key, smallInt], call: ({ c }, a) => (c.incrBy as any)(...a) },
  { name: 'mget', args: [key, key, key], call: ({ c }, a) => (c.mget as any)(...a) },
  { name: 'mset', args: [fc.oneof(fc.dictionary(nastyString, value, { maxKeys: 3 }), fc.array(fc.tuple(key, value), { maxLength: 3 }), fc.array(fc.tuple(key, value), { maxLength: 3 }).map((e) => new Map(e)))], call: ({ c }, a) => (c.mset as any)(...a) },
  { name: 'hget', args: [key, value], call: ({ c }, a) => (c.hget as any)(...a) },
  { name: 'hset', args: [key, value, value], call: ({ c }, a) => (c.hset as any)(...a) },
  { name: 'hset(record)', args: [key, fc.oneof(fc.dictionary(nastyString, value, { maxKeys: 3 }), fc.array(fc.tuple(value, value), { maxLength: 3 }).map((e) => new Map(e)))], call: ({ c }, a) => (c.hset as any)(...a) },
  { name: 'hgetall', args: [key], call: ({ c }, a) => (c.hgetall as any)(...a) },
  { name: 'hdel', args: [key, value, value], call: ({ c }, a) => (c.hdel as any)(...a) },
  { name: 'sadd', args: [key, value, value], call: ({ c }, a) => (c.sadd as any)(...a) },
  { name: 'srem', args: [key, value], call: ({ c }, a) => (c.srem as any)(...a) },
  { name: 'smembers', args: [key], call: ({ c }, a) => (c.smembers as any)(...a) },
  { name: 'getDel', args: [key], call: ({ c }, a) => (c.getDel as any)(...a) },
  { name: 'getEx', args: [key, getExOptions], call: ({ c }, a) => (c.getEx as any)(...a) },
  { name: 'scan', args: [scanOptions], call: ({ c }, a) => drain((c.scan as any)(...a)) },
  // command(name, ...args): the arguments are generated as one list and spread
  { name: 'command', args: [commandName, commandArgs], call: ({ c }, [name, args, ...extra]) => (c.command as any)(name, ...spreadable(args), ...extra) },
  { name: 'ping', args: [], call: ({ c }) => c.ping() },
  { name: 'rateLimit', args: [key, rule], call: ({ c }, a) => (c.rateLimit as any)(...a) },
  { name: 'rateLimitAll', args: [key, fc.array(rule, { maxLength: 3 })], call: ({ c }, a) => (c.rateLimitAll as any)(...a) },
  { name: 'cache.wrap', args: [key, posInt, loader, wrapOptions], call: ({ c }, a) => (c.cache.wrap as any)(...a) },
  { name: 'cache.invalidate', args: [key], call: ({ c }, a) => (c.cache.invalidate as any)(...a) },
  { name: 'sessions.create', args: [key, anyValue, posInt], call: ({ c }, a) => (c.sessions.create as any)(...a) },
  { name: 'sessions.check', args: [token, fc.record({ slideSeconds: posInt }, { requiredKeys: [] })], call: ({ c }, a) => (c.sessions.check as any)(...a) },
  { name: 'sessions.touch', args: [token, posInt], call: ({ c }, a) => (c.sessions.touch as any)(...a) },
  { name: 'sessions.revoke', args: [token], call: ({ c }, a) => (c.sessions.revoke as any)(...a) },
  { name: 'sessions.revokeById', args: [key, token], call: ({ c }, a) => (c.sessions.revokeById as any)(...a) },
  { name: 'sessions.revokeAll', args: [key], call: ({ c }, a) => (c.sessions.revokeAll as any)(...a) },
  { name: 'sessions.list', args: [key], call: ({ c }, a) => (c.sessions.list as any)(...a) },
  { name: 'throttler.increment', args: [key, throttlerNumber, throttlerNumber, throttlerNumber, nastyString], call: ({ storage }, a) => (storage.increment as any)(...a) },
]

/**
 * Generated calls of `targets`: the method's name, its arguments (each plausible or
 * anything), maybe extra ones, and which client. (The name, not the target: a
 * counterexample then prints as the call it is.)
 */
function callsOf(targets: Target[]) {
  return fc.oneof(
    ...targets.map((t) =>
      fc
        .tuple(
          fc.constant(t.name),
          fc.tuple(...t.args.map((a) => fc.oneof({ weight: 3, arbitrary: a }, { weight: 1, arbitrary: anyValue }))),
          fc.oneof({ weight: 4, arbitrary: fc.constant<unknown[]>([]) }, { weight: 1, arbitrary: fc.array(anyValue, { minLength: 1, maxLength: 2 }) }),
          fc.boolean(),
        )
        .map(([method, args, extra, usePrefixed]): Call => ({ method, args, extra: [...extra], usePrefixed })),
    ),
  )
}
interface Call {
  method: string
  args: unknown[]
  extra: unknown[]
  usePrefixed: boolean
}
const byName = (targets: Target[]) => new Map(targets.map((t) => [t.name, t]))
const TARGET = byName(TARGETS)

function label(v: unknown): string {
  try {
    if (typeof v === 'bigint') return `${v}n`
    if (typeof v === 'symbol' || typeof v === 'function') return String(v).slice(0, 40)
    if (Buffer.isBuffer(v)) return `Buffer<${v.toString('hex')}>`
    return fc.stringify(v).slice(0, 120)
  } catch {
    return typeof v
  }
}

const ALLOWED = new Set(['ERR_INVALID_ARGUMENT', 'ERR_REPLY'])

interface Seen {
  calls: number
  byTarget: Map<string, { calls: number; resolved: number; codes: Record<string, number> }>
}

/** Runs one generated call and says what is wrong with its outcome, if anything. */
async function runCall(ctx: Ctx, target: Target, call: Call, seen: Seen): Promise<string | undefined> {
  const { args, extra } = call
  const what = `${target.name}(${[...args, ...extra].map(label).join(', ')})`
  const stat = seen.byTarget.get(target.name) ?? { calls: 0, resolved: 0, codes: {} }
  seen.byTarget.set(target.name, stat)
  stat.calls++
  seen.calls++
  let p: unknown
  try {
    p = target.call(ctx, [...args, ...extra])
  } catch (e: any) {
    return `${what}: threw synchronously ${e?.constructor?.name}: ${e?.message}`
  }
  if (!(p instanceof Promise)) return `${what}: returned ${label(p)}, not a promise`
  try {
    await withTimeout(p, CALL_LIMIT_MS, 'HUNG')
    stat.resolved++
    return undefined
  } catch (e: any) {
    if (e?.message === 'HUNG') return `${what}: still pending after ${CALL_LIMIT_MS} ms`
    const code = e?.code
    stat.codes[code ?? e?.constructor?.name] = (stat.codes[code ?? e?.constructor?.name] ?? 0) + 1
    if (!ALLOWED.has(code)) return `${what}: rejected with ${code ?? `a ${e?.constructor?.name} without code`}: ${e?.message}`
    if (!(e instanceof Error)) return `${what}: rejected with a non-Error`
    return undefined
  }
}

function expectSaneStats(c: RedisClient) {
  const s = c.stats()
  for (const k of ['commands', 'batches', 'replies', 'errors', 'timeouts', 'reconnects', 'inFlight', 'rateLimitCacheHits'] as const) {
    expect(Number.isSafeInteger(s[k])).toBe(true)
    expect(s[k]).toBeGreaterThanOrEqual(0)
  }
  expect(s.replies).toBeLessThanOrEqual(s.commands)
  expect(s.batches).toBeLessThanOrEqual(s.commands)
  expect(s.timeouts).toBe(0)
  expect(s.reconnects).toBe(0)
  expect(s.inFlight).toBe(0)
  expect(s.latency.p50Ms).toBeLessThanOrEqual(s.latency.p99Ms)
  expect(s.latency.p99Ms).toBeLessThanOrEqual(s.latency.maxMs)
}

let sentinelSeq = 0

test(`${RUNS * CALLS_PER_RUN} generated calls of every public method: only ERR_INVALID_ARGUMENT or ERR_REPLY, each in its own batch with good calls`, async () => {
  const ctxs = {
    plain: { c: plain, storage: new RedisThrottlerStorage(plain) },
    prefixed: { c: prefixed, storage: new RedisThrottlerStorage(prefixed, { prefix: 'th:' }) },
  }
  const seen: Seen = { calls: 0, byTarget: new Map() }
  const canary = ns('canary') + 'k'
  await plain.set(canary, 'still here')
  await fc.assert(
    fc.asyncProperty(fc.array(callsOf(TARGETS), { minLength: CALLS_PER_RUN, maxLength: CALLS_PER_RUN }), async (calls) => {
      // A set/get pair before and after the generated calls, in the same tick (one batch):
      // a bad call must fail alone.
      const n = ++sentinelSeq
      const sk = `sentinel:${n}`
      const reconnectsBefore = plain.stats().reconnects + prefixed.stats().reconnects
      const before = [plain.set(sk, `v${n}`), prefixed.set(sk, `p${n}`)]
      const problems = calls.map((call) => runCall(call.usePrefixed ? ctxs.prefixed : ctxs.plain, TARGET.get(call.method)!, call, seen))
      const after = [plain.get(sk), prefixed.get(sk)]
      const found = (await Promise.all(problems)).filter((x): x is string => x !== undefined)
      const sentinels = await Promise.allSettled([...before, ...after])
      const got = sentinels.map((s) => (s.status === 'fulfilled' ? s.value : `rejected ${(s.reason as any)?.code}: ${(s.reason as any)?.message}`))
      // nothing made the connection drop (a protocol error, a server closing it)
      const reconnects = plain.stats().reconnects + prefixed.stats().reconnects - reconnectsBefore
      if (reconnects > 0) {
        // name the culprit: a fail-open method (rateLimit, the throttler) hides the
        // ERR_CONNECTION its own call got. Replay the batch one call at a time.
        for (const call of calls) {
          const ctx = call.usePrefixed ? ctxs.prefixed : ctxs.plain
          await eventually(() => ctx.c.ping(), 5000, 20)
          const r0 = ctx.c.stats().reconnects
          await runCall(ctx, TARGET.get(call.method)!, call, { calls: 0, byTarget: new Map() })
          await eventually(() => ctx.c.ping(), 5000, 20)
          if (ctx.c.stats().reconnects > r0) found.push(`${call.method}(${[...call.args, ...call.extra].map(label).join(', ')}): the connection dropped (stats().reconnects went up)`)
        }
      }
      expect({ problems: found.slice(0, 5), sentinels: got, reconnects }).toEqual({ problems: [], sentinels: [undefined, undefined, `v${n}`, `p${n}`], reconnects: 0 })
    }),
    { seed: SEED, numRuns: RUNS, endOnFailure: false },
  )
  // every method was called, and got past the argument checks at least once
  const summary = Object.fromEntries([...seen.byTarget].map(([k, v]) => [k, v]))
  for (const t of TARGETS) {
    expect(seen.byTarget.get(t.name)?.calls ?? 0).toBeGreaterThan(0)
  }
  const reachedServer = TARGETS.filter((t) => (seen.byTarget.get(t.name)?.resolved ?? 0) + (seen.byTarget.get(t.name)?.codes.ERR_REPLY ?? 0) > 0).map((t) => t.name)
  expect(reachedServer.length).toBeGreaterThan(TARGETS.length - 4)
  expect(seen.calls).toBeGreaterThanOrEqual(RUNS * CALLS_PER_RUN)
  // eslint-disable-next-line no-console
  console.log(`fuzz: ${seen.calls} calls\n${Object.entries(summary).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`).join('\n')}`)

  // afterwards: both clients serve, their counters are sane, the canary survived
  for (const c of [plain, prefixed]) {
    const k = ns('after') + 'k'
    await c.set(k, 'after the storm', 60)
    expect(await c.get(k)).toBe('after the storm')
    expect(await c.mget(k, k)).toEqual(['after the storm', 'after the storm'])
    expect(await c.incr(k + ':n')).toBe(1)
    expectSaneStats(c)
  }
  expect(await plain.get(canary)).toBe('still here')
  expect(await srv.cli('PING')).toBe('PONG')
}, 120_000)

// ---- connect -----------------------------------------------------------------------------------

test('RedisClient.connect() with generated options: refused with a code, never a throw, a hang or the default server', async () => {
  // Whatever else is generated, the address is pinned to this file's server (or a path
  // under its URL): the fuzz must never reach 127.0.0.1:6379, and random host names
  // would only wait for DNS.
  const fields = fc.record(
    {
      url: fc.oneof(nastyString, fc.constant(`redis://127.0.0.1:${srv.port}/1`)),
      username: fc.oneof(nastyString, anyValue),
      password: fc.oneof(nastyString, anyValue),
      db: fc.oneof(fc.integer({ min: 0, max: 20 }), nastyNumber, anyValue),
      tls: fc.oneof(fc.boolean(), fc.record({ ca: nastyString, servername: nastyString, rejectUnauthorized: fc.boolean(), cert: nastyString, key: nastyString }, { requiredKeys: [] }), anyValue),
      keyPrefix: fc.oneof(nastyString, anyValue),
      connectTimeoutMs: fc.oneof(fc.integer({ min: 1, max: 500 }), nastyNumber, anyValue),
      commandTimeoutMs: fc.oneof(fc.integer({ min: 1, max: 5000 }), nastyNumber, anyValue),
      reconnect: fc.oneof(fc.record({ minDelayMs: posInt, maxDelayMs: posInt }, { requiredKeys: [] }), anyValue),
      clientCache: fc.oneof(fc.record({ prefixes: fc.array(nastyString, { maxLength: 2 }), maxEntries: posInt, ttlMs: posInt }, { requiredKeys: [] }), anyValue),
      other: anyValue,
    },
    { requiredKeys: [] },
  )
  const options = fc.oneof(
    fields.map((o) => ({ ...o, host: '127.0.0.1', port: srv.port, connectTimeoutMs: typeof o.connectTimeoutMs === 'number' && o.connectTimeoutMs > 500 ? 500 : o.connectTimeoutMs })),
    nastyString.map((suffix) => `redis://127.0.0.1:${srv.port}/${suffix}`),
    anyValue.filter((v) => v !== undefined && typeof v !== 'string' && !(v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) && !(v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === null)),
  )
  const problems: string[] = []
  const codes: Record<string, number> = {}
  await fc.assert(
    fc.asyncProperty(options, async (o) => {
      let p: Promise<RedisClient>
      try {
        p = RedisClient.connect(o as any)
      } catch (e: any) {
        problems.push(`connect(${label(o)}): threw synchronously ${e?.constructor?.name}: ${e?.message}`)
        return
      }
      try {
        const c = await withTimeout(p, CALL_LIMIT_MS, 'HUNG')
        codes.connected = (codes.connected ?? 0) + 1
        await c.ping().catch(() => undefined)
        await c.close()
      } catch (e: any) {
        codes[e?.code ?? e?.message] = (codes[e?.code ?? e?.message] ?? 0) + 1
        if (!['ERR_INVALID_ARGUMENT', 'ERR_AUTH', 'ERR_TLS', 'ERR_CONNECTION', 'ERR_REPLY'].includes(e?.code)) {
          problems.push(`connect(${label(o)}): ${e?.message === 'HUNG' ? 'still pending' : `rejected with ${e?.code ?? e?.constructor?.name}: ${e?.message}`}`)
        }
      }
    }),
    { seed: SEED, numRuns: 400 },
  )
  expect(problems.slice(0, 10)).toEqual([])
  expect(codes.connected).toBeGreaterThan(0)
  expect(codes.ERR_INVALID_ARGUMENT).toBeGreaterThan(0)
}, 60_000)

// ---- adapters and hostile objects -------------------------------------------------------------

const ADAPTER_RUNS = Number(process.env.FUZZ_ADAPTER_RUNS ?? 60)

/**
 * Objects that fight back when read: a revoked Proxy (every operation on it throws,
 * even Array.isArray), a Proxy whose every trap throws, throwing getters on an
 * options bag and on an array element, throwing conversions. Made once, reused.
 */
function hostileObjects(): unknown[] {
  const boom = (): never => {
    throw new Error('hostile')
  }
  const revokedObject = Proxy.revocable({}, {})
  revokedObject.revoke()
  const revokedArray = Proxy.revocable(['k'], {})
  revokedArray.revoke()
  const traps = { get: boom, has: boom, ownKeys: boom, getPrototypeOf: boom, getOwnPropertyDescriptor: boom }
  const fields = ['ttlMs', 'ttlSeconds', 'nx', 'limit', 'windowMs', 'match', 'count', 'slideSeconds', 'key', 'value', 'ttl', 'allowed', 'name']
  const getters = Object.defineProperties({}, Object.fromEntries(fields.map((f) => [f, { get: boom, enumerable: true }])))
  return [
    revokedObject.proxy,
    revokedArray.proxy,
    new Proxy({}, traps),
    new Proxy([], traps),
    getters,
    Object.defineProperty(['a', 'b'], 0, { get: boom, enumerable: true }),
    { toString: boom, valueOf: boom },
    { [Symbol.toPrimitive]: boom },
    { [Symbol.iterator]: boom },
    { get then() { return boom() } },
  ]
}
const HOSTILE = hostileObjects()
/** fast-check inspects the values it generates: it gets a stand-in, swapped just before the call. */
class Hostile {
  constructor(readonly index: number) {}
}
const hostile = fc.integer({ min: 0, max: HOSTILE.length - 1 }).map((i) => new Hostile(i))
const unwrap = (v: unknown): unknown => (v instanceof Hostile ? HOSTILE[v.index] : v)

interface AdapterCtx {
  store: KeyvRedisStore
  storage: ReturnType<typeof redisSecondaryStorage>
  verifier: ReturnType<typeof sessionVerifier>
}

const keyvEntry = fc.record({ key, value, ttl: maybe(posInt) }, { requiredKeys: ['key', 'value'] })
const rlResult = fc.record(
  {
    allowed: fc.oneof(fc.boolean(), anyValue),
    limit: fc.oneof(posInt, anyValue),
    windowMs: maybe(fc.oneof(posInt, anyValue)),
    remaining: fc.oneof(smallInt, anyValue),
    resetMs: fc.oneof(posInt, anyValue),
    retryAfterMs: fc.oneof(posInt, anyValue),
    name: maybe(fc.oneof(nastyString, anyValue)),
    reason: maybe(fc.oneof(fc.constantFrom('unavailable', 'limit', 'blocked', 'cached-deny'), anyValue)),
  },
  { requiredKeys: ['allowed', 'limit', 'remaining', 'resetMs', 'retryAfterMs'] },
)
/** A synchronous function under the same contract: a refusal is thrown as a RedisError with a code. */
const sync = (f: () => unknown): Promise<unknown> => {
  try {
    return Promise.resolve(f())
  } catch (e) {
    return Promise.reject(e)
  }
}

const ADAPTER_TARGETS: Array<{ name: string; args: Array<fc.Arbitrary<unknown>>; call: (ctx: AdapterCtx, args: any[]) => unknown }> = [
  { name: 'keyv.get', args: [key], call: ({ store }, a) => (store.get as any)(...a) },
  { name: 'keyv.getMany', args: [fc.array(key, { maxLength: 3 })], call: ({ store }, a) => (store.getMany as any)(...a) },
  { name: 'keyv.set', args: [key, value, maybe(posInt)], call: ({ store }, a) => (store.set as any)(...a) },
  { name: 'keyv.setMany', args: [fc.array(keyvEntry, { maxLength: 3 })], call: ({ store }, a) => (store.setMany as any)(...a) },
  { name: 'keyv.delete', args: [key], call: ({ store }, a) => (store.delete as any)(...a) },
  { name: 'keyv.deleteMany', args: [fc.array(key, { maxLength: 3 })], call: ({ store }, a) => (store.deleteMany as any)(...a) },
  { name: 'keyv.has', args: [key], call: ({ store }, a) => (store.has as any)(...a) },
  { name: 'keyv.hasMany', args: [fc.array(key, { maxLength: 3 })], call: ({ store }, a) => (store.hasMany as any)(...a) },
  { name: 'keyv.iterator', args: [maybe(nastyString)], call: ({ store }, a) => drain((store.iterator as any)(...a)) },
  { name: 'keyv.constructor', args: [anyValue], call: ({ store }, a) => sync(() => new KeyvRedisStore(store.client, ...(a as [any]))) },
  { name: 'storage.get', args: [key], call: ({ storage }, a) => (storage.get as any)(...a) },
  { name: 'storage.set', args: [key, value, smallInt], call: ({ storage }, a) => (storage.set as any)(...a) },
  { name: 'storage.delete', args: [key], call: ({ storage }, a) => (storage.delete as any)(...a) },
  { name: 'storage.getAndDelete', args: [key], call: ({ storage }, a) => (storage.getAndDelete as any)(...a) },
  { name: 'storage.increment', args: [key, smallInt], call: ({ storage }, a) => (storage.increment as any)(...a) },
  { name: 'verifier.verify', args: [fc.oneof(token, token.map((t) => `better-auth.session_token=${t}.sig`))], call: ({ verifier }, a) => (verifier.verify as any)(...a) },
  { name: 'rateLimitHeaders', args: [fc.oneof(rlResult, fc.array(rlResult, { maxLength: 3 })), maybe(fc.oneof(rule, fc.array(rule, { maxLength: 3 })))], call: (_ctx, a) => sync(() => (rateLimitHeaders as any)(...a)) },
]

test(`${ADAPTER_RUNS * CALLS_PER_RUN} generated calls of the adapters, and hostile objects (revoked Proxies, throwing getters) given to every method`, async () => {
  const all = [
    ...TARGETS.map((t) => ({ name: t.name, args: t.args, call: (x: Ctx & AdapterCtx, a: any[]) => t.call(x, a) })),
    ...ADAPTER_TARGETS.map((t) => ({ name: t.name, args: t.args, call: (x: Ctx & AdapterCtx, a: any[]) => t.call(x, a) })),
  ]
  const ctxOf = (c: RedisClient) => {
    const store = new KeyvRedisStore(c)
    store.namespace = 'fz-keyv'
    return {
      c,
      storage: new RedisThrottlerStorage(c),
      store,
      verifier: sessionVerifier(c, { secret: 'fuzz-secret-fuzz-secret-fuzz-secret' }),
    }
  }
  const ctxs = { plain: ctxOf(plain), prefixed: ctxOf(prefixed) }
  const auth = { plain: redisSecondaryStorage(plain), prefixed: redisSecondaryStorage(prefixed) }
  const targets = new Map(all.map((t) => [t.name, t]))
  const seen: Seen = { calls: 0, byTarget: new Map() }
  const call = fc.oneof(
    ...all.map((t) =>
      fc
        .tuple(
          fc.constant(t.name),
          fc.tuple(...t.args.map((a) => fc.oneof({ weight: 3, arbitrary: a }, { weight: 1, arbitrary: anyValue }, { weight: 1, arbitrary: hostile }))),
          fc.boolean(),
        )
        .map(([method, args, usePrefixed]): Call => ({ method, args, extra: [], usePrefixed })),
    ),
  )
  await fc.assert(
    fc.asyncProperty(fc.array(call, { minLength: CALLS_PER_RUN, maxLength: CALLS_PER_RUN }), async (calls) => {
      const n = ++sentinelSeq
      const sk = `sentinel:${n}`
      const before = plain.set(sk, `v${n}`)
      const problems = calls.map((x) => {
        const which = x.usePrefixed ? 'prefixed' : 'plain'
        const t = targets.get(x.method)!
        const ctx = x.method.startsWith('storage.') ? { ...ctxs[which], storage: auth[which] } : ctxs[which]
        return runCall(ctx as any, t as Target, { ...x, args: x.args.map(unwrap) }, seen)
      })
      const after = plain.get(sk)
      const found = (await Promise.all(problems)).filter((x): x is string => x !== undefined)
      expect({ problems: found.slice(0, 5), sentinel: [await before, await after] }).toEqual({ problems: [], sentinel: [undefined, `v${n}`] })
    }),
    { seed: SEED, numRuns: ADAPTER_RUNS, endOnFailure: false },
  )
  for (const t of all) expect(seen.byTarget.get(t.name)?.calls ?? 0).toBeGreaterThan(0)
  // the hostile objects reached the methods, and were refused with a code
  expect([...seen.byTarget.values()].reduce((n, v) => n + (v.codes.ERR_INVALID_ARGUMENT ?? 0), 0)).toBeGreaterThan(100)
  for (const c of [plain, prefixed]) {
    const k = ns('after-adapters') + 'k'
    await c.set(k, 'fine', 60)
    expect(await c.get(k)).toBe('fine')
    expectSaneStats(c)
  }
}, 120_000)

test('integer replies at the edges of the 64-bit range are read, and do not drop the connection', async () => {
  // Redis answers any signed 64-bit integer: INCRBY down to -2^63, or a script whose
  // number falls outside the range (converted to LLONG_MIN / LLONG_MAX).
  const c = await connect({ port: srv.port, commandTimeoutMs: 1000 })
  const p = ns('edge')
  const other = c.get(p + 'other') // in flight on the same connection
  const results = await Promise.allSettled([
    c.command('INCRBY', p + 'min', '-9223372036854775808'),
    c.command('INCRBY', p + 'max', '9223372036854775807'),
    c.command('EVAL', 'return -2^63', '0'),
    c.command('EVAL', 'return 2^62', '0'),
  ])
  expect({
    results: results.map((r) => (r.status === 'fulfilled' ? r.value : `${(r.reason as any)?.code}: ${(r.reason as any)?.message}`)),
    other: await other.catch((e) => e?.code),
    reconnects: c.stats().reconnects,
  }).toEqual({
    // beyond 2^53 a JavaScript number cannot hold them exactly: what matters is that they arrive
    results: [-9223372036854775808, 9223372036854775807, -9223372036854775808, 4611686018427387904],
    other: null,
    reconnects: 0,
  })
})

// ---- connection state ---------------------------------------------------------------------------

describe('command() cannot change the state of the shared connection behind the other callers', () => {
  // One RedisClient multiplexes every caller of the process on one connection. A command
  // that changes what the connection answers (no replies, push messages, queued
  // transactions, a reset of its authentication) would hand other callers wrong replies
  // or break them. Either command() refuses it, or every call made with it in the same
  // tick and after it still gets its own reply.
  let auth: RedisServer
  beforeAll(async () => {
    auth = await startRedis({ password: 'conn-state-pw' })
  })

  const CASES: Array<[string, string[]]> = [
    ['CLIENT REPLY SKIP', ['CLIENT', 'REPLY', 'SKIP']],
    ['CLIENT REPLY OFF', ['CLIENT', 'REPLY', 'OFF']],
    ['SUBSCRIBE', ['SUBSCRIBE', 'some-channel']],
    ['PSUBSCRIBE', ['PSUBSCRIBE', 'some-*']],
    ['MONITOR', ['MONITOR']],
    ['MULTI', ['MULTI']],
    ['RESET (on a server with a password)', ['RESET']],
  ]
  test.each(CASES)('%s', async (_name, cmd) => {
    const c = await connect({ port: auth.port, password: 'conn-state-pw', commandTimeoutMs: 500 })
    const p = ns('state')
    await c.mset({ [p + 'a']: 'A', [p + 'b']: 'B', [p + 'c']: 'C' })
    const first = c.command(cmd[0], ...cmd.slice(1)).then(
      () => 'ran',
      (e) => e?.code,
    )
    // other callers, same tick
    const same = [c.get(p + 'a'), c.get(p + 'b'), c.get(p + 'c')].map((x) => x.catch((e) => e?.code))
    const command = await first // refused (ERR_INVALID_ARGUMENT) or ran: either way the others must not notice
    const sameTick = await Promise.all(same)
    const later = await Promise.all([c.get(p + 'c'), c.get(p + 'a'), c.incr(p + 'n')].map((x) => x.catch((e) => e?.code)))
    expect({ command, sameTick, later }).toEqual({ command: expect.stringMatching(/^(ran|ERR_INVALID_ARGUMENT|ERR_REPLY)$/), sameTick: ['A', 'B', 'C'], later: ['C', 'A', 1] })
  })
})

// ---- shapes that may abort the process (issue 18, point 1) ----------------------------------

const RISKY_RUNS = Number(process.env.FUZZ_RISKY_RUNS ?? 30)
const RISKY_BATCH = 20

test(`${RISKY_RUNS} batches of ${RISKY_BATCH} calls with shapes that may abort the process (sparse 2^32-1 arrays, deep nesting, detached buffers...), each batch in one tick with good calls, in a child process`, async () => {
  // The shapes and argument positions of reliability/children/shapes.js, drawn at random
  // and issued together: bad-input.spec.ts tries each pair alone; here they share native
  // batches with each other and with a sentinel SET/GET, which must get its own reply.
  // A batch that aborts the child is reported with the signal; the next child goes on
  // with the batch after it.
  const child = path.join(__dirname, 'reliability', 'children', 'bad-input.js')
  const failures: string[] = []
  let from = 0
  let done = 0
  while (from < RISKY_RUNS) {
    let current: { i: number; picked: number[] } | undefined
    const run = await runChild(child, {
      env: { ATLAS_PORT: String(srv.port), ATLAS_MODE: 'batch', ATLAS_SEED: String(SEED), ATLAS_RUNS: String(RISKY_RUNS), ATLAS_BATCH: String(RISKY_BATCH), ATLAS_FROM: String(from) },
      onMessage: (m) => {
        if (m.type === 'start') current = m
        if (m.type === 'done') {
          done++
          if (m.outcome !== 'ok' || m.after) failures.push(`batch ${m.i}: ${[m.outcome === 'ok' ? '' : m.outcome, m.after].filter(Boolean).join('; ')}`)
          current = undefined
        }
      },
    })
    if (current !== undefined) {
      failures.push(`batch ${current.i} (cases ${current.picked.join(',')} of shapes.js allCases()): ${death(run)}`)
      from = current.i + 1
    } else if (run.messages.some((m) => m.type === 'finished')) {
      from = RISKY_RUNS
    } else {
      throw new Error(`the child did not start its batches: ${death(run)}`)
    }
  }
  expect(failures.slice(0, 10)).toEqual([])
  expect(done).toBe(RISKY_RUNS)
  expect(await srv.cli('PING')).toBe('PONG')
}, 600_000)
