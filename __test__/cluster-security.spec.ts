// Redis Cluster with TLS and ACL: every node TLS-only (cluster bus too), a
// password for the default user and an ACL user; the client passes its TLS and
// credentials to every node connection, including nodes it only learns about
// from CLUSTER SLOTS.
import { RedisClient } from '../lib'
import { keySlot } from './harness/slot'
import { startCluster, type RedisCluster } from './harness'
import { attempt, closeAll, connect, ns } from './helpers'

jest.setTimeout(60_000)

let cluster: RedisCluster

beforeAll(async () => {
  cluster = await startCluster({
    masters: 3,
    tls: true,
    password: 'cluster-default-pw',
    users: [{ name: 'api', password: 'api-pw', rules: '~* &* +@all' }],
  })
})
afterAll(async () => {
  await closeAll()
  await cluster?.stop()
})

test('TLS + ACL user: one seed, every master reached over TLS with the same credentials', async () => {
  const { ca } = cluster.certs!
  const c = await connect({ cluster: { nodes: [cluster.nodes[0]] }, tls: { ca }, username: 'api', password: 'api-pw' })
  const b = ns('sec')
  const ks = Array.from({ length: 30 }, (_, i) => `${b}${i}`)
  await c.mset(Object.fromEntries(ks.map((k) => [k, k])))
  expect(await c.mget(ks)).toEqual(ks)
  const owners = new Set<number>()
  for (const k of ks) owners.add((await cluster.ownerOf(keySlot(k)))!.port)
  expect(owners.size).toBe(3)
  expect(c.stats().cluster!.masters).toBe(3)
  // the connections are the ACL user's
  const who = await Promise.all((await cluster.masters()).map((m) => m.cli('CLIENT', 'LIST')))
  for (const list of who) expect(list).toMatch(/user=api/)
})

test('a rediss:// URL with the default user\'s password as the only seed (the Upstash / ElastiCache shape)', async () => {
  const [first] = cluster.servers
  const c = await connect({
    url: `rediss://default:cluster-default-pw@127.0.0.1:${first.port}`,
    tls: { ca: cluster.certs!.ca },
    cluster: {},
  })
  const k = `${ns('url')}k`
  await c.set(k, 'via url')
  expect(await c.get(k)).toBe('via url')
  expect(c.stats().cluster!.masters).toBe(3)
})

test('wrong password → ERR_AUTH, no TLS → ERR_CONNECTION, unknown CA → ERR_TLS; no message holds the password', async () => {
  const seed = { nodes: [cluster.nodes[1]] }
  const bad = await attempt({ cluster: seed, tls: { ca: cluster.certs!.ca }, username: 'api', password: 'nope-secret' })
  expect(bad).toMatchObject({ code: 'ERR_AUTH' })
  expect(bad.message).not.toContain('nope-secret')
  const plain = await attempt({ cluster: seed, username: 'api', password: 'api-pw', connectTimeoutMs: 1000 })
  expect(['ERR_CONNECTION', 'ERR_TLS']).toContain(plain.code)
  const wrongCa = await attempt({ cluster: seed, tls: { ca: cluster.certs!.otherCa }, username: 'api', password: 'api-pw' })
  expect(wrongCa).toMatchObject({ code: 'ERR_TLS' })
  await expect(RedisClient.connect({ cluster: seed, tls: { ca: cluster.certs!.ca } })).rejects.toMatchObject({ code: 'ERR_AUTH' })
})
