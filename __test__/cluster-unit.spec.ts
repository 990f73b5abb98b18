// Cluster helpers that need no server: addresses, redirections, the CLUSTER SLOTS
// reply, command key positions, the environment, and keys placed in a given slot.
import { clusterOptionsFromEnv, keyIndices, parseAddress, parseClusterSlots, parseRedirect, tagForSlot } from '../lib/core/cluster'
import { SLOTS, keySlot } from '../lib/core/slot'

test('addresses: host:port and [v6]:port; anything else is ERR_INVALID_ARGUMENT', () => {
  expect(parseAddress('10.0.0.1:7000')).toEqual({ host: '10.0.0.1', port: 7000, addr: '10.0.0.1:7000' })
  expect(parseAddress(' redis.example:6379 ')).toMatchObject({ host: 'redis.example', port: 6379 })
  expect(parseAddress('[::1]:7001')).toEqual({ host: '::1', port: 7001, addr: '[::1]:7001' })
  for (const bad of ['host', 'host:0', 'host:70000', ':6379', 'a b:1', 42, null]) {
    expect(() => parseAddress(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  }
})

test('MOVED and ASK are read from the error message; other errors are not redirections', () => {
  expect(parseRedirect('ERR_REPLY: MOVED 3999 127.0.0.1:6381')).toMatchObject({ kind: 'MOVED', slot: 3999, to: { host: '127.0.0.1', port: 6381 } })
  expect(parseRedirect('ERR_REPLY: ASK 12 [fe80::1]:7000')).toMatchObject({ kind: 'ASK', slot: 12, to: { host: 'fe80::1', port: 7000, addr: '[fe80::1]:7000' } })
  expect(parseRedirect('ERR_REPLY: MOVED 5 :7002')).toMatchObject({ to: { host: '', port: 7002 } })
  expect(parseRedirect('ERR_REPLY: WRONGTYPE Operation against a key')).toBeUndefined()
  expect(parseRedirect('ERR_REPLY: TRYAGAIN Multiple keys request during rehashing of slot')).toBeUndefined()
})

test('CLUSTER SLOTS: ranges with master and replicas; an unknown address becomes the host asked', () => {
  const reply = [
    [0, 5460, ['10.0.0.1', 7000, 'id1', {}], ['10.0.0.4', 7003, 'id4', {}]],
    [5461, 10922, ['?', 7001, 'id2']],
    [10923, 16383, ['', 7002, 'id3']],
    ['junk'],
  ]
  const r = parseClusterSlots(reply, 'seed.example')
  expect(r).toHaveLength(3)
  expect(r[0]).toMatchObject({ from: 0, to: 5460, master: { addr: '10.0.0.1:7000' }, replicas: [{ addr: '10.0.0.4:7003' }] })
  expect(r[1].master.addr).toBe('seed.example:7001')
  expect(r[2].master.addr).toBe('seed.example:7002')
  expect(() => parseClusterSlots('nope', 'x')).toThrow()
})

test('command key positions', () => {
  expect(keyIndices('GET', ['k'])).toEqual([0])
  expect(keyIndices('LPUSH', ['k', 'a', 'b'])).toEqual([0])
  expect(keyIndices('DEL', ['a', 'b', 'c'])).toEqual([0, 1, 2])
  expect(keyIndices('MSET', ['a', '1', 'b', '2'])).toEqual([0, 2])
  expect(keyIndices('BLPOP', ['a', 'b', '5'])).toEqual([0, 1])
  expect(keyIndices('RENAME', ['a', 'b'])).toEqual([0, 1])
  expect(keyIndices('EVAL', ['return 1', '2', 'k1', 'k2', 'arg'])).toEqual([2, 3])
  expect(keyIndices('EVALSHA', ['abc', '0', 'arg'])).toEqual([])
  expect(keyIndices('OBJECT', ['ENCODING', 'k'])).toEqual([1])
  expect(keyIndices('XREAD', ['COUNT', 5, 'STREAMS', 'a', 'b', '0', '0'])).toEqual([3, 4])
  expect(keyIndices('XREAD', ['STREAMS', 'a', '$'])).toEqual([1])
  expect(keyIndices('XREADGROUP', ['GROUP', 'STREAMS', 'STREAMS', 'NOACK', 'STREAMS', 's', '>'])).toEqual([5])
  expect(keyIndices('XREAD', ['STREAMS', 'a', 'b', '0'])).toEqual([1]) // malformed: routed as Redis' key specs read it; the server answers the error
  expect(keyIndices('PING', [])).toEqual([])
  expect(keyIndices('CLUSTER', ['INFO'])).toEqual([])
  expect(keyIndices('FOO.BAR', ['k', 'x'])).toEqual([0]) // unknown: key first
})

test('REDIS_CLUSTER_NODES and the other variables make cluster options', () => {
  expect(clusterOptionsFromEnv({ REDIS_CLUSTER_NODES: 'a:1, b:2,', REDIS_PASSWORD: 'pw', REDIS_USERNAME: 'u', REDIS_TLS: 'true', REDIS_KEY_PREFIX: 'p:' })).toEqual({
    cluster: { nodes: ['a:1', 'b:2'] },
    password: 'pw',
    username: 'u',
    tls: true,
    keyPrefix: 'p:',
  })
  expect(clusterOptionsFromEnv({ REDIS_CLUSTER_NODES: 'a:1', REDIS_URL: 'rediss://x:y@a:1' })).toEqual({ cluster: { nodes: ['a:1'] }, url: 'rediss://x:y@a:1' })
  expect(() => clusterOptionsFromEnv({ REDIS_CLUSTER_NODES: 'a:1', REDIS_TLS: 'maybe' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
})

test('tagForSlot: a tag for every slot, each landing in its slot', () => {
  for (let s = 0; s < SLOTS; s++) expect(keySlot(`anything{${tagForSlot(s)}}`)).toBe(s)
})
