// keyPrefix: every key the client sends is prefixed, scan strips it, and
// commands that would reach other prefixes are refused.
import { RedisClient } from '../lib'
import { startRedis, stopAll, RedisServer } from './harness'
import { closeAll, connect } from './helpers'

let srv: RedisServer
let app: RedisClient // keyPrefix 'app:'
let raw: RedisClient // no prefix

beforeAll(async () => {
  srv = await startRedis()
  app = await connect({ url: srv.url, keyPrefix: 'app:' })
  raw = await connect(srv.url)
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

test('set/get write and read the prefixed key', async () => {
  await app.set('k', 'v1')
  expect(await raw.get('app:k')).toBe('v1')
  expect(await raw.get('k')).toBeNull()
  expect(await srv.cli('GET', 'app:k')).toBe('v1')
  expect(await app.get('k')).toBe('v1')
  await raw.set('app:fromraw', 'r')
  expect(await app.get('fromraw')).toBe('r')
  // Buffer keys get the prefix too
  await app.set(Buffer.from([0xff, 0x01]), 'b')
  expect(await raw.get(Buffer.concat([Buffer.from('app:'), Buffer.from([0xff, 0x01])]))).toBe('b')
})

test('TTL, hash, set, incr and getDel/getEx commands use the prefix', async () => {
  await app.set('t', 'v', 100)
  expect(await raw.ttl('app:t')).toBeGreaterThan(98)
  await app.hset('h', 'f', 'v')
  expect(await raw.hgetall('app:h')).toEqual({ f: 'v' })
  await app.sadd('s', 'm')
  expect(await raw.smembers('app:s')).toEqual(['m'])
  expect(await app.incr('n')).toBe(1)
  expect(await raw.get('app:n')).toBe('1')
  await app.expire('n', 50)
  expect(await raw.ttl('app:n')).toBeGreaterThan(48)
  expect(await app.getEx('t', { persist: true })).toBe('v')
  expect(await raw.ttl('app:t')).toBe(-1)
  expect(await app.getDel('t')).toBe('v')
  expect(await raw.exists('app:t')).toBe(0)
})

test('mget, mset, del and exists prefix every key', async () => {
  await app.mset({ a: '1', b: '2' })
  await app.mset(new Map([['c', '3']]))
  await app.mset([['d', '4']])
  expect(await raw.mget('app:a', 'app:b', 'app:c', 'app:d', 'a')).toEqual(['1', '2', '3', '4', null])
  expect(await app.mget('a', 'b', 'c', 'd')).toEqual(['1', '2', '3', '4'])
  await raw.set('a', 'unprefixed')
  expect(await app.exists('a', 'b', 'zz')).toBe(2)
  expect(await app.del('a', 'b')).toBe(2)
  expect(await raw.exists('app:a', 'app:b', 'app:c')).toBe(1)
  // the unprefixed key of the same name is untouched
  expect(await raw.get('a')).toBe('unprefixed')
})

test('command() prefixes the keys of known commands (MSET, LPUSH, DEL) and refuses scripts', async () => {
  expect(await app.command('MSET', 'x', '1', 'y', '2')).toBe('OK')
  expect(await raw.mget('app:x', 'app:y', 'x', 'y')).toEqual(['1', '2', null, null])
  expect(await app.command('MGET', 'x', 'y')).toEqual(['1', '2'])
  await app.command('LPUSH', 'list', 'a', 'b')
  expect(await raw.command('LRANGE', 'app:list', 0, -1)).toEqual(['b', 'a'])
  // Scripts can reach any key, whatever KEYS says: refused on a prefixed client.
  await expect(app.command('EVAL', 'return KEYS[1]', 1, 'k1')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  expect(await app.command('DEL', 'x', 'y')).toBe(2)
  expect(await raw.exists('app:x', 'app:y')).toBe(0)
  // a command with no keys passes through
  expect(await app.command('PING')).toBe('PONG')
})

test('FLUSHDB and other cross-prefix commands are refused on a prefixed client', async () => {
  await raw.set('keepme', 'still here')
  // (SELECT is refused on every client: it would change the shared connection.)
  await expect(app.command('SELECT', '1')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  for (const cmd of ['FLUSHDB', 'flushall', 'KEYS', 'RANDOMKEY', 'SCAN']) {
    const args = cmd === 'KEYS' ? ['*'] : cmd === 'SCAN' ? ['0'] : []
    await expect(app.command(cmd, ...args)).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: expect.stringContaining('keyPrefix'),
    })
  }
  // commands whose key positions are unknown are refused, not sent unprefixed
  await expect(app.command('FOO.BAR', 'k')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  expect(await raw.get('keepme')).toBe('still here')
  expect(Number(await srv.cli('DBSIZE'))).toBeGreaterThan(0)
  // The client still works afterwards.
  expect(await app.get('c')).toBe('3')
})

test('scan yields keys without the prefix, and only that prefix’s keys', async () => {
  const other = await connect({ url: srv.url, keyPrefix: 'other:' })
  const glob = await connect({ url: srv.url, keyPrefix: 'g*[x]:' }) // glob characters in the prefix
  for (let i = 0; i < 300; i++) await Promise.all([other.set(`s${i}`, 'o'), app.set(`s${i}`, 'a')])
  await raw.set('app', 'no colon')
  await raw.set('appx:s1', 'lookalike')
  await raw.set('gz[x]:s1', 'glob lookalike') // matches the prefix as a glob, not literally
  await glob.set('s1', 'g')

  const seen: string[] = []
  for await (const k of app.scan({ match: 's[0-9]*', count: 50 })) seen.push(k)
  expect(seen.length).toBe(300)
  expect(new Set(seen).size).toBe(300)
  expect(seen.every((k) => /^s\d+$/.test(k))).toBe(true)

  const everything: string[] = []
  for await (const k of app.scan()) everything.push(k)
  expect(everything.every((k) => !k.startsWith('app:'))).toBe(true)
  expect(everything).toContain('c')
  expect(everything).not.toContain('keepme')
  expect(everything).not.toContain('app')

  const g: string[] = []
  for await (const k of glob.scan()) g.push(k)
  expect(g).toEqual(['s1'])

  const o: string[] = []
  for await (const k of other.scan({ count: 1000 })) o.push(k)
  expect(o.length).toBe(300)
})
