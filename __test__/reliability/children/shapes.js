'use strict'
// Bad input of the shapes that have crashed or wedged native addons: arrays whose
// length is a lie (sparse, 2^32 - 1), deep nesting, getters and Proxies that throw,
// revoked Proxies, typed arrays other than Uint8Array, detached ArrayBuffers,
// symbols and bigints. Each shape is made fresh by a factory: a detached buffer or a
// revoked Proxy cannot be sent to a child process, and a value a call consumed must
// not leak into the next case.
//
// SITES are the places a caller can put one: every argument position of the public
// methods that reach the native layer, and the options objects. Every (site, shape)
// pair must reject with ERR_INVALID_ARGUMENT and leave the client serving.

const boom = () => {
  throw new Error('hostile getter')
}

/** `depth` arrays inside each other. */
function nestedArray(depth) {
  let a = ['k']
  for (let i = 0; i < depth; i++) a = [a]
  return a
}

/** `depth` objects inside each other. */
function nestedObject(depth) {
  let o = { f: 'v' }
  for (let i = 0; i < depth; i++) o = { f: o }
  return o
}

/** An ArrayBuffer whose memory was handed to another owner (byteLength 0 from then on). */
function detachedBuffer(size = 16) {
  const ab = new ArrayBuffer(size)
  structuredClone(ab, { transfer: [ab] })
  return ab
}

const SHAPES = {
  // arrays whose length promises more than they hold
  'sparse array, length 2^32-1': () => Object.assign([], { length: 2 ** 32 - 1 }),
  'sparse array, one key then length 2^32-1': () => Object.assign(['k'], { length: 2 ** 32 - 1 }),
  'sparse array, length 2^31': () => Object.assign([], { length: 2 ** 31 }),
  'new Array(2^32-1)': () => new Array(2 ** 32 - 1),
  'array-like { length: 2^32-1 }': () => ({ length: 2 ** 32 - 1 }),
  'Proxy of [] claiming length 2^32-1': () => new Proxy([], { get: (t, p) => (p === 'length' ? 2 ** 32 - 1 : Reflect.get(t, p)) }),
  // deep nesting
  'array nested 100,000 deep': () => nestedArray(100_000),
  'object nested 100,000 deep': () => nestedObject(100_000),
  'array nested 1,000 deep': () => nestedArray(1_000),
  // values that fight back when read
  'array with a throwing getter element': () => Object.defineProperty(['a', 'b'], 0, { get: boom, enumerable: true }),
  'object with throwing getters': () =>
    Object.defineProperties({}, Object.fromEntries(['f', 'ttlMs', 'ttlSeconds', 'nx', 'match', 'count', 'limit', 'windowMs'].map((k) => [k, { get: boom, enumerable: true }]))),
  'Proxy whose every trap throws': () =>
    new Proxy({}, { get: boom, has: boom, ownKeys: boom, getPrototypeOf: boom, getOwnPropertyDescriptor: boom }),
  'Proxy of an array whose every trap throws': () =>
    new Proxy(['k'], { get: boom, has: boom, ownKeys: boom, getPrototypeOf: boom, getOwnPropertyDescriptor: boom }),
  'revoked Proxy of an object': () => {
    const r = Proxy.revocable({}, {})
    r.revoke()
    return r.proxy
  },
  'revoked Proxy of an array': () => {
    const r = Proxy.revocable(['k'], {})
    r.revoke()
    return r.proxy
  },
  'object with throwing toString/valueOf/toPrimitive': () => ({ toString: boom, valueOf: boom, [Symbol.toPrimitive]: boom }),
  // typed arrays other than Uint8Array (whose bytes depend on the platform's endianness)
  Uint16Array: () => new Uint16Array([1, 2, 3]),
  Int32Array: () => new Int32Array([-1, 2]),
  Float32Array: () => new Float32Array([1.5]),
  Float64Array: () => new Float64Array([NaN, 1]),
  BigInt64Array: () => new BigInt64Array([1n, -1n]),
  Uint8ClampedArray: () => new Uint8ClampedArray([1, 255]),
  DataView: () => new DataView(new ArrayBuffer(4)),
  // detached memory
  'detached ArrayBuffer': () => detachedBuffer(),
  'Uint8Array over a detached ArrayBuffer': () => {
    const ab = new ArrayBuffer(16)
    const view = new Uint8Array(ab)
    structuredClone(ab, { transfer: [ab] })
    return view
  },
  'Buffer over a detached ArrayBuffer': () => {
    const ab = new ArrayBuffer(16)
    const view = Buffer.from(ab)
    structuredClone(ab, { transfer: [ab] })
    return view
  },
  // primitives no command takes
  symbol: () => Symbol('s'),
  bigint: () => 5n,
  'bigint 2^70': () => 2n ** 70n,
}

const RULE = { limit: 10, windowMs: 1000 }

/** Where a shape goes: `(client, shape) => promise`. Keys live under `bad:`; nothing else is touched. */
const SITES = {
  'get(key)': (c, x) => c.get(x),
  'getBuffer(key)': (c, x) => c.getBuffer(x),
  'set(key, v)': (c, x) => c.set(x, 'v'),
  'set(k, value)': (c, x) => c.set('bad:k', x),
  'set(k, v, ttlSeconds)': (c, x) => c.set('bad:k', 'v', x),
  'set(k, v, { ttlMs })': (c, x) => c.set('bad:k', 'v', { ttlMs: x }),
  'del(...keys)': (c, x) => c.del('bad:a', x),
  'del(keys[])': (c, x) => c.del(x),
  'exists(keys[])': (c, x) => c.exists(x),
  'mget(keys[])': (c, x) => c.mget(x),
  'mget(...keys)': (c, x) => c.mget('bad:a', x),
  'mset(entries)': (c, x) => c.mset(x),
  'mset({ k: value })': (c, x) => c.mset({ 'bad:m': x }),
  'mset([[k, value]])': (c, x) => c.mset([['bad:m', x]]),
  'expire(k, seconds)': (c, x) => c.expire('bad:k', x),
  'incrBy(k, n)': (c, x) => c.incrBy('bad:n', x),
  'getEx(k, options)': (c, x) => c.getEx('bad:k', x),
  'hget(k, field)': (c, x) => c.hget('bad:h', x),
  'hset(k, field, v)': (c, x) => c.hset('bad:h', x, 'v'),
  'hset(k, f, value)': (c, x) => c.hset('bad:h', 'f', x),
  'hset(k, fields)': (c, x) => c.hset('bad:h', x),
  'hset(k, { f: value })': (c, x) => c.hset('bad:h', { f: x }),
  'hdel(k, fields[])': (c, x) => c.hdel('bad:h', x),
  'sadd(k, members[])': (c, x) => c.sadd('bad:s', x),
  'sadd(k, m, member)': (c, x) => c.sadd('bad:s', 'm', x),
  'srem(k, members[])': (c, x) => c.srem('bad:s', x),
  'scan(options)': (c, x) => c.scan(x)[Symbol.asyncIterator]().next(),
  'scan({ match })': (c, x) => c.scan({ match: x })[Symbol.asyncIterator]().next(),
  'command(name)': (c, x) => c.command(x),
  'command(SET, k, arg)': (c, x) => c.command('SET', 'bad:k', x),
  'command(DEL, arg)': (c, x) => c.command('DEL', x),
  'command(EVAL, script, 1, arg)': (c, x) => c.command('EVAL', 'return 1', '1', x),
  'rateLimit(key, rule)': (c, x) => c.rateLimit(x, RULE),
  'rateLimit(k, rule)': (c, x) => c.rateLimit('bad:rl', x),
  'rateLimit(k, { limit })': (c, x) => c.rateLimit('bad:rl', { ...RULE, limit: x }),
  'rateLimitAll(k, rules)': (c, x) => c.rateLimitAll('bad:rl', x),
}

/** Every (site, shape) pair, in a fixed order: a case's index names it in every run. */
function allCases() {
  const out = []
  for (const site of Object.keys(SITES)) for (const shape of Object.keys(SHAPES)) out.push({ site, shape })
  return out
}

module.exports = { SHAPES, SITES, allCases }
