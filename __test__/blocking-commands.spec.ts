// Issue 16, point 3: blocking commands (blpop, brpop, blmove, bzpopmin, bzpopmax, xread /
// xreadgroup with block, and the same through command()) each wait on a dedicated
// connection of their client and never hold up its other calls; their deadline is their
// block time plus commandTimeoutMs; close() ends them with ERR_CLOSED; the dedicated
// connections are reused, closed when idle, capped, and made with the client's settings
// (ACL user, db, TLS, Sentinel's master, the cluster node of the key's slot).
import { spawn } from 'child_process'
import path from 'path'
import type { RedisClient } from '../lib'
import { startCluster, startRedis, startSentinel, stopAll, type RedisCluster, type RedisServer } from './harness'
import { keySlot } from './harness/slot'
import { closeAll, connect, eventually, ns, rejection, sleep, timed } from './helpers'

jest.setTimeout(60_000)

let srv: RedisServer
let other: RedisClient // pushes what the blocked calls wait for

beforeAll(async () => {
  srv = await startRedis()
  other = await connect({ port: srv.port })
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

/** The server's clients named `name` (CLIENT LIST), with their flags and last command. */
async function clientsNamed(server: RedisServer, name: string): Promise<Array<{ id: string; flags: string; cmd: string }>> {
  const list = await server.cli('CLIENT', 'LIST')
  return list
    .split('\n')
    .filter((l) => l.includes(` name=${name} `))
    .map((l) => ({ id: /id=(\d+)/.exec(l)![1], flags: /flags=(\S*)/.exec(l)![1], cmd: /cmd=(\S*)/.exec(l)![1] }))
}

/** Until the server holds `n` clients named `name`. */
async function expectClients(server: RedisServer, name: string, n: number, ms = 3000): Promise<void> {
  await eventually(async () => expect(await clientsNamed(server, name)).toHaveLength(n), ms, 25)
}

/** Whether `p` is still pending after `ms`. */
async function stillPending(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false
  p.then(
    () => (settled = true),
    () => (settled = true),
  )
  await sleep(ms)
  return !settled
}

test("command('BLPOP', k, '0') waits on its own connection: 200 GETs of the same client all answer at once, then the pop resolves", async () => {
  const c = await connect({ port: srv.port, commandTimeoutMs: 500 })
  const k = ns('blpop-cmd')
  await c.set(k + 'probe', 'here')
  const popped = c.command('BLPOP', k + 'q', '0')
  await sleep(50)
  const gets = await Promise.all(Array.from({ length: 200 }, () => timed(c.get(k + 'probe'))))
  expect(gets.filter((g) => g.value !== 'here')).toEqual([])
  // Well under commandTimeoutMs (500), where a GET queued behind the BLPOP would fail.
  expect(Math.max(...gets.map((g) => g.ms))).toBeLessThan(400)
  // And one at a time, while it still waits.
  for (let i = 0; i < 20; i++) {
    const g = await timed(c.get(k + 'probe'))
    expect(g.ms).toBeLessThan(200)
  }
  expect(await stillPending(popped, 600)).toBe(true) // past commandTimeoutMs: BLPOP 0 has no deadline
  await other.rpush(k + 'q', 'job-1')
  expect(await popped).toEqual([k + 'q', 'job-1'])
})

test('the typed blocking commands: blpop, brpop, blmove, bzpopmin, bzpopmax resolve ioredis-like shapes, null when the time runs out', async () => {
  const c = await connect({ port: srv.port, keyPrefix: 'pfx:' })
  const k = ns('typed')
  const pushed = other
  await pushed.rpush('pfx:' + k + 'b', 'b1', 'b2')
  // The first non-empty list of the keys; the key comes back as given (without the prefix).
  expect(await c.blpop([k + 'a', k + 'b'], 1)).toEqual([k + 'b', 'b1'])
  expect(await c.brpop(k + 'b', 1)).toEqual([k + 'b', 'b2'])
  const t = await timed(c.blpop(k + 'a', 0.2))
  expect(t.value).toBeNull()
  expect(t.ms).toBeGreaterThanOrEqual(150)
  expect(await c.brpop([k + 'a'], 0.1)).toBeNull()

  // blmove waits for the source, then moves the element.
  const moved = c.blmove(k + 'src', k + 'dst', 'LEFT', 'RIGHT', 0)
  await sleep(50)
  await pushed.rpush('pfx:' + k + 'src', 'm1')
  expect(await moved).toBe('m1')
  expect(await pushed.lrange('pfx:' + k + 'dst', 0, -1)).toEqual(['m1'])
  expect(await c.blmove(k + 'src', k + 'dst', 'RIGHT', 'LEFT', 0.1)).toBeNull()

  await pushed.zadd('pfx:' + k + 'z', [
    { score: 1.5, value: 'low' },
    { score: 7, value: 'high' },
    { score: 3, value: 'mid' },
  ])
  expect(await c.bzpopmin([k + 'none', k + 'z'], 1)).toEqual([k + 'z', 'low', 1.5])
  expect(await c.bzpopmax(k + 'z', 1)).toEqual([k + 'z', 'high', 7])
  const waiting = c.bzpopmin(k + 'empty', 0)
  await sleep(50)
  await pushed.zadd('pfx:' + k + 'empty', [{ score: -2, value: 'neg' }])
  expect(await waiting).toEqual([k + 'empty', 'neg', -2])
  expect(await c.bzpopmax(k + 'empty', 0.1)).toBeNull()

  // Bad input is refused before anything is sent.
  expect(await rejection(c.blpop([], 1))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('blpop(): keys') })
  expect(await rejection(c.bzpopmin(k, -1))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('timeoutSeconds') })
  expect(await rejection(c.brpop(k, NaN))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  expect(await rejection(c.blmove(k, k, 'UP' as never, 'LEFT', 1))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('blmove(): from') })
})

test('xread and xreadgroup with block (typed and through command()) wait on a dedicated connection', async () => {
  const c = await connect({ port: srv.port, commandTimeoutMs: 400 })
  const k = ns('xread')
  await c.set(k + 'probe', 'here')
  const typed = c.xread({ key: k + 's', id: '$' }, { block: 0 })
  const raw = c.command('XREAD', 'BLOCK', '0', 'STREAMS', k + 's', '$')
  await c.xgroupCreate(k + 'g', 'grp', '$', { mkstream: true })
  const grouped = c.xreadgroup('grp', 'w1', { key: k + 'g', id: '>' }, { block: 0, count: 1 })
  await sleep(600) // past commandTimeoutMs
  for (let i = 0; i < 10; i++) expect(await c.get(k + 'probe')).toBe('here')
  const id = await other.xadd(k + 's', '*', { n: '1' })
  const gid = await other.xadd(k + 'g', '*', { job: 'a' })
  expect(await typed).toEqual([{ name: k + 's', messages: [{ id, fields: { n: '1' } }] }])
  expect(await raw).toEqual([[k + 's', [[id, ['n', '1']]]]])
  expect(await grouped).toEqual([{ name: k + 'g', messages: [{ id: gid, fields: { job: 'a' } }] }])
  // A block that runs out: null, after the block time.
  const t = await timed(c.xread({ key: k + 's', id: '$' }, { block: 200 }))
  expect(t.value).toBeNull()
  expect(t.ms).toBeGreaterThanOrEqual(150)
})

test('a blocking call times out at its block time plus commandTimeoutMs (a block of 0 never does)', async () => {
  const server = await startRedis()
  const c = await connect({ port: server.port, commandTimeoutMs: 300 })
  const k = ns('deadline')
  // Open two dedicated connections while the server answers; they stay for the next calls.
  expect(await Promise.all([c.blpop(k, 0.05), c.blpop(k, 0.05)])).toEqual([null, null])
  server.pause() // answers nothing from now on
  try {
    const forever = c.blpop(k + 'forever', 0)
    const foreverEnd = rejection(forever)
    const t = await timed(c.blpop(k, 1))
    expect(t.error).toMatchObject({ code: 'ERR_TIMEOUT', message: expect.stringContaining('block time plus commandTimeoutMs') })
    expect(t.ms).toBeGreaterThanOrEqual(1250)
    expect(t.ms).toBeLessThan(2500)
    expect(await stillPending(forever, 500)).toBe(true)
    const closing = timed(c.close())
    expect(await foreverEnd).toMatchObject({ code: 'ERR_CLOSED' })
    expect((await closing).ms).toBeLessThan(2000)
  } finally {
    server.resume()
  }
  expect(await server.cli('PING')).toBe('PONG')
})

test('close() rejects the blocked calls with ERR_CLOSED at once and their connections go', async () => {
  const c = await connect({ port: srv.port, connectionName: 'blk-close' })
  const k = ns('close')
  const calls = [c.blpop(k + 'a', 0), c.command('BZPOPMIN', k + 'z', '0'), c.xread({ key: k + 's', id: '$' }, { block: 0 })].map(rejection)
  await expectClients(srv, 'blk-close', 4)
  const t = await timed(c.close())
  expect(t.ms).toBeLessThan(500)
  for (const call of calls) expect(await call).toMatchObject({ code: 'ERR_CLOSED' })
  await expectClients(srv, 'blk-close', 0)
  expect(await rejection(c.blpop(k, 0))).toMatchObject({ code: 'ERR_CLOSED' })
})

test('a process whose client was closed with a BLPOP 0 pending exits by itself (no open handle)', async () => {
  const dist = path.resolve(__dirname, '..', 'dist')
  const script = `
    const { RedisClient } = require(${JSON.stringify(dist)})
    ;(async () => {
      const c = await RedisClient.connect({ port: ${srv.port} })
      const p = c.blpop('exit:q', 0).catch((e) => console.log('rejected', e.code))
      await new Promise((r) => setTimeout(r, 100))
      await c.close()
      await p
      console.log('closed')
    })()`
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const start = Date.now()
  const code = await new Promise<number | null>((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.on('close', (c) => {
      clearTimeout(kill)
      resolve(c)
    })
  })
  expect({ code, out: out.trim() }).toEqual({ code: 0, out: 'rejected ERR_CLOSED\nclosed' })
  expect(Date.now() - start).toBeLessThan(5000)
})

test('dedicated connections are reused, opened for calls at once, and closed after blocking.idleMs', async () => {
  const name = 'blk-pool'
  const c = await connect({ port: srv.port, connectionName: name, blocking: { idleMs: 600 } })
  const k = ns('pool')
  await expectClients(srv, name, 1)
  // One after the other: one dedicated connection, reused.
  for (let i = 0; i < 3; i++) expect(await c.blpop(k, 0.05)).toBeNull()
  await expectClients(srv, name, 2)
  // Three at once: three.
  const three = [c.blpop(k + 'a', 0), c.blpop(k + 'b', 0), c.brpop(k + 'c', 0)]
  await expectClients(srv, name, 4)
  const blocked = await clientsNamed(srv, name)
  expect(blocked.filter((x) => x.flags.includes('b'))).toHaveLength(3)
  await other.rpush(k + 'a', '1')
  await other.rpush(k + 'b', '2')
  await other.rpush(k + 'c', '3')
  expect(await Promise.all(three)).toEqual([
    [k + 'a', '1'],
    [k + 'b', '2'],
    [k + 'c', '3'],
  ])
  // Idle now; still there, then closed after idleMs.
  expect(await clientsNamed(srv, name)).toHaveLength(4)
  await expectClients(srv, name, 1, 3000)
  // The shared connection was never one of them.
  expect(await c.get(k)).toBeNull()
  expect(await c.blpop(k, 0.05)).toBeNull()
  await expectClients(srv, name, 2)
  // One the server closed while idle is not used again: the next call gets a new one.
  const dedicated = (await clientsNamed(srv, name)).find((x) => x.cmd === 'blpop')!
  await srv.cli('CLIENT', 'KILL', 'ID', dedicated.id)
  await expectClients(srv, name, 1)
  await sleep(50)
  expect(await c.blpop(k, 0.05)).toBeNull()
  const now = await clientsNamed(srv, name)
  expect(now).toHaveLength(2)
  expect(now.map((x) => x.id)).not.toContain(dedicated.id)
})

test('past blocking.maxConnections, one more blocking call fails at once (ERR_CONNECTION, nothing sent); the others go on', async () => {
  const c = await connect({ port: srv.port, blocking: { maxConnections: 2 } })
  const k = ns('cap')
  const a = c.blpop(k + 'a', 0)
  const b = rejection(c.blpop(k + 'b', 0))
  const t = await timed(c.command('BLPOP', k + 'c', '0'))
  expect(t.error).toMatchObject({ code: 'ERR_CONNECTION', message: expect.stringContaining('blocking.maxConnections') })
  expect(t.ms).toBeLessThan(100)
  expect(await c.set(k + 'x', '1')).toBeUndefined()
  expect(await c.get(k + 'x')).toBe('1')
  await other.rpush(k + 'a', 'A')
  expect(await a).toEqual([k + 'a', 'A'])
  // A place is free again.
  const c2 = c.blpop(k + 'c', 0)
  await other.rpush(k + 'c', 'C')
  expect(await c2).toEqual([k + 'c', 'C'])
  await c.close()
  expect(await b).toMatchObject({ code: 'ERR_CLOSED' })
})

test('blocking.maxConnections and blocking.idleMs are checked', async () => {
  for (const blocking of [{ maxConnections: 0 }, { idleMs: -1 }, { maxConnections: 1.5 }, { wrong: 1 }]) {
    expect(await rejection(connect({ port: srv.port, blocking: blocking as never }))).toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: expect.stringMatching(/blocking|wrong/),
    })
  }
})

test('inside multi() a blocking command does not block (Redis runs it at once) and stays on the shared connection', async () => {
  const c = await connect({ port: srv.port })
  const k = ns('multi')
  const t = await timed(c.multi().blpop(k, 0).rpush(k, 'x').blpop(k, 0).exec())
  expect(t.value).toEqual([null, 1, [k, 'x']])
  expect(t.ms).toBeLessThan(500)
})

test('dedicated connections are made with the client settings: ACL user, password, db, TLS', async () => {
  const server = await startRedis({ password: 'top-secret', users: [{ name: 'worker', password: 'w-pass' }] })
  const admin = await connect({ port: server.port, password: 'top-secret', db: 3 })
  const c = await connect({ port: server.port, username: 'worker', password: 'w-pass', db: 3 })
  const k = ns('acl')
  const popped = c.blpop(k, 0)
  await sleep(50)
  await admin.rpush(k, 'in-db-3')
  expect(await popped).toEqual([k, 'in-db-3'])
  const tls = await startRedis({ tls: true })
  const overTls = await connect({ host: '127.0.0.1', port: tls.port, tls: { ca: tls.certs!.ca } })
  const waiting = overTls.bzpopmax(k + 'z', 0)
  await sleep(50)
  await overTls.zadd(k + 'z', [{ score: 2, value: 'tls' }])
  expect(await waiting).toEqual([k + 'z', 'tls', 2])
})

test('Sentinel mode: blocking calls go to the master the sentinels name', async () => {
  const topo = await startSentinel({ replicas: 1, sentinels: 1, quorum: 1 })
  try {
    const c = await connect({ sentinel: { masterName: topo.masterName, sentinels: topo.sentinelAddrs } })
    const k = ns('sentinel')
    const popped = c.blpop(k, 0)
    await sleep(100)
    await c.rpush(k, 'from-master')
    expect(await popped).toEqual([k, 'from-master'])
    await c.close()
  } finally {
    await topo.stop()
  }
})

describe('on a cluster', () => {
  let cluster: RedisCluster
  beforeAll(async () => {
    cluster = await startCluster({ masters: 3 })
  })
  afterAll(async () => {
    await closeAll()
    await cluster?.stop()
  })

  test('each blocking call waits on a connection to the node of its key (MOVED followed), and the client keeps serving', async () => {
    const seed = cluster.nodes[0]
    const c = await connect({ cluster: { nodes: [seed] }, connectionName: 'blk-cl', commandTimeoutMs: 500 })
    const pusher = await connect({ cluster: { nodes: [seed] } })
    // Keys on every master (the seed's and others': those start with a MOVED).
    const keys: string[] = []
    const owners = new Set<number>()
    for (let i = 0; owners.size < 3; i++) {
      const key = `blk:cl:${i}`
      const owner = (await cluster.ownerOf(keySlot(key)))!
      if (!owners.has(owner.port)) {
        owners.add(owner.port)
        keys.push(key)
      }
    }
    const pops = keys.map((key) => c.blpop(key, 0))
    const zpop = c.bzpopmin('{blk:cl:0}:z', 0)
    const xread = c.command('XREAD', 'BLOCK', '0', 'STREAMS', '{blk:cl:1}:s', '$')
    await sleep(700) // past commandTimeoutMs
    for (let i = 0; i < 20; i++) expect(await c.get(`blk:cl:probe${i}`)).toBeNull()
    // Each waits blocked on the owner of its slot.
    for (const key of [...keys, '{blk:cl:0}:z', '{blk:cl:1}:s']) {
      const owner = (await cluster.ownerOf(keySlot(key)))!
      const blocked = (await clientsNamed(owner, 'blk-cl')).filter((x) => x.flags.includes('b'))
      expect(blocked.length).toBeGreaterThanOrEqual(1)
    }
    for (const key of keys) await pusher.rpush(key, `v-${key}`)
    expect(await Promise.all(pops)).toEqual(keys.map((key) => [key, `v-${key}`]))
    await pusher.zadd('{blk:cl:0}:z', [{ score: 4, value: 'm' }])
    expect(await zpop).toEqual(['{blk:cl:0}:z', 'm', 4])
    const id = await pusher.xadd('{blk:cl:1}:s', '*', { f: 'v' })
    expect(await xread).toEqual([['{blk:cl:1}:s', [[id, ['f', 'v']]]]])
    // Timeouts and keys of several slots behave as on one server.
    expect(await c.brpop(keys[1], 0.05)).toBeNull()
    expect(await rejection(c.blpop([keys[0], keys[1]], 0.05))).toMatchObject({ code: 'ERR_REPLY', serverCode: 'CROSSSLOT' })
    const pending = rejection(c.blpop(keys[2], 0))
    await sleep(50)
    await c.close()
    expect(await pending).toMatchObject({ code: 'ERR_CLOSED' })
  })
})
