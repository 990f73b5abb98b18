// lib/core/slot.ts: the Redis Cluster key slot, against known values and a real
// cluster-enabled redis-server's CLUSTER KEYSLOT.
import { RedisClient } from '../lib'
import { SLOTS, crc16, keySlot } from '../lib/core/slot'
import { startRedis, stopAll } from './harness'
import { closeAll, connect, prng } from './helpers'

afterAll(async () => {
  await closeAll()
  await stopAll()
})

describe('keySlot', () => {
  test('known values', () => {
    // CRC16/XMODEM check value
    expect(crc16(Buffer.from('123456789'))).toBe(0x31c3)
    // from the Redis Cluster specification and the CLUSTER KEYSLOT documentation
    expect(keySlot('foo')).toBe(12182)
    expect(keySlot('somekey')).toBe(11058)
    expect(keySlot('foo{hash_tag}')).toBe(2515)
    expect(keySlot('bar{hash_tag}')).toBe(2515)
    expect(keySlot('{user1000}.following')).toBe(keySlot('{user1000}.followers'))
    expect(keySlot('{user1000}.following')).toBe(keySlot('user1000'))
  })

  test('hash tags: the first { and the first } after it, when not empty', () => {
    expect(keySlot('foo{}{bar}')).toBe(crc16(Buffer.from('foo{}{bar}')) % SLOTS) // empty tag: the whole key
    expect(keySlot('foo{{bar}}zap')).toBe(keySlot('{bar')) // the tag is "{bar"
    expect(keySlot('foo{bar}{zap}')).toBe(keySlot('bar'))
    expect(keySlot('foo}{bar}')).toBe(keySlot('bar'))
    expect(keySlot('foo{bar')).toBe(crc16(Buffer.from('foo{bar')) % SLOTS) // no closing brace
    expect(keySlot('')).toBe(0)
  })

  test('strings hash their UTF-8 bytes; Buffers their bytes', () => {
    for (const k of ['ünï', '{ü}x', 'a{日本}b', '😀']) {
      expect(keySlot(k)).toBe(keySlot(Buffer.from(k, 'utf8')))
    }
    expect(keySlot('{ü}x')).toBe(keySlot('ü'))
  })

  test('the same slots as CLUSTER KEYSLOT of a real server', async () => {
    const node = await startRedis({ cluster: true })
    const c: RedisClient = await connect(node.url)
    const rand = prng(16384)
    const alphabet = ['a', 'b', 'z', '0', '9', ':', '{', '}', '~', 'ü', '日', '😀', '-']
    const keys: Array<string | Buffer> = ['foo', 'throttler:{ip-1}', 'throttler:{ip-1}:default', '{}', '{', '}', '}{']
    for (let i = 0; i < 300; i++) {
      let k = ''
      const n = 1 + Math.floor(rand() * 12)
      for (let j = 0; j < n; j++) k += alphabet[Math.floor(rand() * alphabet.length)]
      keys.push(k)
    }
    for (let i = 0; i < 50; i++) keys.push(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 10) }, () => Math.floor(rand() * 256))))
    const server = await Promise.all(keys.map((k) => c.command('CLUSTER', 'KEYSLOT', k)))
    expect(keys.map((k) => keySlot(k))).toEqual(server)
    await node.stop()
  })
})
