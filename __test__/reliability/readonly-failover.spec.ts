// Issue 18, point 3: a standalone client whose server is demoted (REPLICAOF, what an
// ElastiCache or Memorystore failover does behind one DNS name) got READONLY for every
// write and never left. On READONLY the client must reconnect, resolving its address
// again, so that it finds the primary the name now points to.
//
// The name is the harness proxy: the client connects to it, it forwards to A; A is made
// a replica of B and the proxy retargeted to B. Writes must succeed again within a
// bounded number of attempts, land on B, and keep succeeding.
import { RedisClient } from '../../lib'
import { startProxy, startRedis, stopAll, RedisServer, TcpProxy } from '../harness'
import { closeAll, connect, eventually, sleep } from '../helpers'
import { COMMAND_TIMEOUT_MS } from './limits'

/** Write attempts, one every ATTEMPT_GAP_MS, within which one must succeed. */
const MAX_ATTEMPTS = 20
const ATTEMPT_GAP_MS = 200

let a: RedisServer
let b: RedisServer
let proxy: TcpProxy
let c: RedisClient

beforeAll(async () => {
  ;[a, b] = await Promise.all([startRedis(), startRedis()])
  proxy = await startProxy(a.port)
  c = await connect({ port: proxy.port, commandTimeoutMs: COMMAND_TIMEOUT_MS, reconnect: { minDelayMs: 20, maxDelayMs: 200 } })
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

test(`after REPLICAOF on its server and the name moved to the new primary, writes succeed again within ${MAX_ATTEMPTS} attempts`, async () => {
  await c.set('ro:before', 'on-a')
  expect(await c.incr('ro:n')).toBe(1)
  expect(await a.cli('GET', 'ro:before')).toBe('on-a')

  // the failover: A follows B (and so drops its own data for B's), the name moves to B
  await b.cli('SET', 'ro:from-b', 'primary')
  expect(await a.cli('REPLICAOF', '127.0.0.1', b.port)).toBe('OK')
  await eventually(async () => expect(await a.cli('INFO', 'replication')).toMatch(/master_link_status:up/), 10_000)
  proxy.retarget(b.port)
  const acceptedBefore = proxy.accepted

  const attempts: string[] = []
  let wrote = -1
  for (let i = 0; i < MAX_ATTEMPTS && wrote < 0; i++) {
    try {
      await c.set('ro:after', `attempt-${i}`)
      wrote = i
      attempts.push('ok')
    } catch (e: any) {
      attempts.push(`${e?.code}${/READONLY/.test(e?.message) ? ' READONLY' : ''}`)
      await sleep(ATTEMPT_GAP_MS)
    }
  }
  // the scenario is the one of the issue: the old connection answered READONLY
  // (unless the client had already left A before its first write, which is fine too)
  expect({ wrote: wrote >= 0, attempts }).toEqual({ wrote: true, attempts: expect.arrayContaining(['ok']) })
  // the write went to the primary, through a new connection
  expect(await b.cli('GET', 'ro:after')).toBe(`attempt-${wrote}`)
  expect(proxy.accepted).toBeGreaterThan(acceptedBefore)
  // and the client stays there: reads see B's data, writes keep succeeding
  expect(await c.get('ro:from-b')).toBe('primary')
  for (let i = 0; i < 20; i++) expect(await c.incr('ro:later')).toBe(i + 1)
  expect(await b.cli('GET', 'ro:later')).toBe('20')
}, 60_000)

test('a READONLY reply to one write fails that write alone: the calls around it in the same tick get their own replies', async () => {
  // Before the client has moved, other calls in the burst of the READONLY write (reads)
  // still get their own answers, whatever the client then does with the connection.
  const a2 = await startRedis()
  const b2 = await startRedis()
  const p2 = await startProxy(a2.port)
  const c2 = await connect({ port: p2.port, commandTimeoutMs: COMMAND_TIMEOUT_MS, reconnect: { minDelayMs: 20, maxDelayMs: 200 } })
  await b2.cli('SET', 'ro2:k', 'b')
  await c2.set('ro2:k', 'a')
  expect(await a2.cli('REPLICAOF', '127.0.0.1', b2.port)).toBe('OK')
  await eventually(async () => expect(await a2.cli('INFO', 'replication')).toMatch(/master_link_status:up/), 10_000)
  const burst = await Promise.allSettled([c2.get('ro2:k'), c2.set('ro2:x', '1'), c2.get('ro2:k')])
  const shown = burst.map((r) => (r.status === 'fulfilled' ? r.value : `${(r.reason as any)?.code}`))
  // the replica answers reads with the primary's data; the write is refused or, if the
  // client already moved, accepted (there is no primary behind this proxy to move to)
  expect(shown[0]).toBe('b')
  expect(shown[2]).toBe('b')
  expect(['ERR_REPLY', 'ERR_CONNECTION', undefined]).toContain(shown[1])
  await c2.close()
  await p2.close()
  await Promise.all([a2.stop(), b2.stop()])
})
