// Issue 18, point 5: hset(k, '__proto__', v) then hgetall(k) lost the field. A hash's
// fields are data: a field named like a property of Object.prototype must come back as
// an own, enumerable field of the object hgetall resolves, with its value, and must
// not change that object's prototype (nor any other object's).
import { RedisClient } from '../../lib'
import { startRedis, stopAll, RedisServer } from '../harness'
import { closeAll, connect, ns } from '../helpers'

let srv: RedisServer
let c: RedisClient
beforeAll(async () => {
  srv = await startRedis()
  c = await connect({ port: srv.port })
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

const SPECIAL = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'then']

/** What hgetall resolved, checked field by field as own properties. */
function ownFields(h: Record<string, string>): Array<[string, unknown]> {
  return Object.keys(h)
    .sort()
    .map((k) => [k, Object.getOwnPropertyDescriptor(h, k)?.value])
}

test("hset(k, '__proto__', v): hgetall keeps the field, as an own field with its value", async () => {
  const k = ns('proto') + 'h'
  expect(await c.hset(k, '__proto__', 'polluted?')).toBe(1)
  expect(await c.hget(k, '__proto__')).toBe('polluted?')
  const h = await c.hgetall(k)
  expect(ownFields(h)).toEqual([['__proto__', 'polluted?']])
  expect(Object.prototype.hasOwnProperty.call(h, '__proto__')).toBe(true)
  // the field did not become the object's prototype: that is still an Object.prototype
  // (the native layer's realm's, which under jest is not the test's own Object.prototype)
  const proto = Object.getPrototypeOf(h)
  expect(proto === null || (typeof proto.hasOwnProperty === 'function' && Object.getPrototypeOf(proto) === null)).toBe(true)
  expect(({} as any).polluted).toBeUndefined()
})

test('every field named like an Object.prototype property comes back, set one by one', async () => {
  const k = ns('special') + 'h'
  for (const f of SPECIAL) await c.hset(k, f, `v:${f}`)
  expect(await srv.cli('HLEN', k)).toBe(String(SPECIAL.length))
  const h = await c.hgetall(k)
  expect(ownFields(h)).toEqual(SPECIAL.map((f) => [f, `v:${f}`]).sort((a, b) => (a[0] < b[0] ? -1 : 1)))
})

test("hset(k, { ['__proto__']: v }) (an own field, as JSON.parse makes it) and a Map write the field, and hgetall returns it", async () => {
  const k1 = ns('record') + 'h'
  const record = JSON.parse('{"__proto__": "from-json", "a": "1"}') as Record<string, string>
  expect(Object.prototype.hasOwnProperty.call(record, '__proto__')).toBe(true)
  expect(await c.hset(k1, record)).toBe(2)
  expect(await srv.cli('HGET', k1, '__proto__')).toBe('from-json')
  expect(ownFields(await c.hgetall(k1))).toEqual([['__proto__', 'from-json'], ['a', '1']])

  const k2 = ns('map') + 'h'
  expect(await c.hset(k2, new Map([['__proto__', 'from-map'], ['constructor', 'c']]))).toBe(2)
  expect(ownFields(await c.hgetall(k2))).toEqual([['__proto__', 'from-map'], ['constructor', 'c']])
})

test('a hash written by another client (redis-cli) with a __proto__ field reads back whole', async () => {
  const k = ns('cli') + 'h'
  await srv.cli('HSET', k, '__proto__', 'x', 'b', 'y')
  expect(ownFields(await c.hgetall(k))).toEqual([['__proto__', 'x'], ['b', 'y']])
})

test("mset({ ['__proto__']: v }) writes the key", async () => {
  const p = ns('mset')
  const entries = JSON.parse(`{"${p}__proto__": "a", "__proto__": "b"}`) as Record<string, string>
  await c.mset(entries)
  expect(await c.mget(`${p}__proto__`, '__proto__')).toEqual(['a', 'b'])
  await c.del('__proto__')
})
