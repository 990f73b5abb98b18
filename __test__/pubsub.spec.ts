// Pub/sub against real redis-server processes: subscribe / psubscribe / ssubscribe with
// listeners, strings and Buffers, unsubscribe, many channels, a subscribing client that
// keeps serving its other calls, resubscription after the server restarts on the same
// port ('reconnecting', then 'resubscribed'), ACL refusals, TLS, keyPrefix, sharded
// channels on a 3-master cluster through a reshard, and close() letting the process exit.
import { spawn } from 'child_process'
import * as path from 'path'
import { RedisClient } from '../lib'
import { startCluster, startRedis, startSentinel, stopAll, type RedisCluster, type RedisServer, type SentinelTopology } from './harness'
import { keySlot } from './harness/slot'
import { closeAll, connect, eventually, ns, rejection, sleep, track, withTimeout } from './helpers'

jest.setTimeout(60_000)

const DIST = path.resolve(__dirname, '..', 'dist')

let srv: RedisServer
let pub: RedisClient

beforeAll(async () => {
  srv = await startRedis()
  pub = await connect(srv.url)
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

/** A listener that records what it hears, and waits for it. */
function inbox<T extends unknown[]>() {
  const got: T[] = []
  let wake: (() => void) | undefined
  const listener = (...args: T) => {
    got.push(args)
    wake?.()
  }
  /** Resolves once `n` messages were heard in all (fails after 5 s). */
  const until = async (n: number): Promise<T[]> => {
    const deadline = Date.now() + 5000
    while (got.length < n) {
      if (Date.now() > deadline) throw new Error(`heard ${got.length} of ${n} messages: ${JSON.stringify(got.slice(-3))}`)
      await new Promise<void>((r) => {
        wake = r
        setTimeout(r, 50)
      })
    }
    return got
  }
  return { got, listener, until }
}

describe('standalone', () => {
  test('a subscriber hears what another client publishes, and keeps serving its other calls', async () => {
    const sub = await connect(srv.url)
    const ch = ns('news')
    const box = inbox<[string, string]>()
    await sub.subscribe(ch, box.listener)
    // the command connection is not the subscribed one: GET/SET go on, interleaved with messages
    const k = ns('k')
    const [n] = await Promise.all([pub.publish(ch, 'hello'), sub.set(k, 'v')])
    expect(n).toBe(1)
    expect(await sub.get(k)).toBe('v')
    expect(await box.until(1)).toEqual([['hello', ch]])
    expect(typeof box.got[0][0]).toBe('string')
    // the server sees two connections of that client: one of them subscribed
    expect(await srv.cli('PUBSUB', 'NUMSUB', ch)).toBe(`${ch}\n1`)
  })

  test('Buffers when asked ({ buffers: true } or true), bytes intact; strings for the others on the same channel', async () => {
    const sub = await connect(srv.url)
    const ch = ns('bin')
    const bytes = Buffer.from([0, 1, 0xfe, 0xff, 0x80, 10, 13])
    const asBuffers = inbox<[Buffer, Buffer]>()
    const asTrue = inbox<[Buffer, Buffer]>()
    const asStrings = inbox<[string, string]>()
    await sub.subscribe(ch, asBuffers.listener, { buffers: true })
    await sub.subscribe(Buffer.from(ch), asTrue.listener, true)
    await sub.subscribe(ch, asStrings.listener)
    expect(await pub.publish(ch, bytes)).toBe(1) // one subscription, three listeners
    const [[message, channel]] = await asBuffers.until(1)
    expect(Buffer.isBuffer(message) && Buffer.isBuffer(channel)).toBe(true)
    expect(message.equals(bytes)).toBe(true)
    expect(channel.toString()).toBe(ch)
    expect((await asTrue.until(1))[0][0].equals(bytes)).toBe(true)
    const [[text, name]] = await asStrings.until(1)
    expect(typeof text).toBe('string')
    expect(name).toBe(ch)
    expect(text).toBe(bytes.toString())
    // UTF-8 text arrives as the same text
    await pub.publish(ch, 'żółć ✓')
    expect((await asStrings.until(2))[1][0]).toBe('żółć ✓')
  })

  test('patterns: the listener gets (message, channel, pattern)', async () => {
    const sub = await connect(srv.url)
    const base = ns('orders')
    const box = inbox<[string, string, string]>()
    await sub.psubscribe(`${base}*`, box.listener)
    expect(await pub.publish(`${base}eu`, 'a')).toBe(1)
    expect(await pub.publish(`${base}us`, 'b')).toBe(1)
    expect(await pub.publish(`${ns('other')}x`, 'c')).toBe(0)
    expect(await box.until(2)).toEqual([
      ['a', `${base}eu`, `${base}*`],
      ['b', `${base}us`, `${base}*`],
    ])
    const bufs = inbox<[Buffer, Buffer, Buffer]>()
    await sub.psubscribe(`${base}*`, bufs.listener, { buffers: true })
    await pub.publish(`${base}eu`, 'c')
    const [[m, c, p]] = await bufs.until(1)
    expect([m, c, p].map((b) => Buffer.isBuffer(b) && b.toString())).toEqual(['c', `${base}eu`, `${base}*`])
    await sub.punsubscribe(`${base}*`)
    expect(await pub.publish(`${base}eu`, 'd')).toBe(0)
  })

  test('unsubscribe stops delivery at once; removing one listener leaves the others', async () => {
    const sub = await connect(srv.url)
    const [a, b] = [ns('a'), ns('b')]
    const one = inbox<[string, string]>()
    const two = inbox<[string, string]>()
    await sub.subscribe([a, b], one.listener)
    await sub.subscribe(a, two.listener)
    await sub.unsubscribe(a, one.listener)
    await pub.publish(a, '1')
    await two.until(1)
    expect(one.got).toEqual([])
    // published, then unsubscribed in the same tick: the message may reach the process but no listener
    const sent = pub.publish(b, 'late')
    await sub.unsubscribe(b)
    await sent
    await pub.publish(a, '2')
    await two.until(2)
    expect(one.got).toEqual([])
    expect(await pub.publish(b, 'after')).toBe(0)
    // no channel given: every channel goes
    await sub.unsubscribe()
    expect(await pub.publish(a, '3')).toBe(0)
    await sleep(50)
    expect(two.got.map((m) => m[0])).toEqual(['1', '2'])
    // unsubscribing what is not subscribed is fine
    await sub.unsubscribe(ns('never'))
    await sub.punsubscribe()
  })

  test('many channels: 2,000 in one call, and 20,000 messages heard in order', async () => {
    const sub = await connect(srv.url)
    const base = ns('many')
    const channels = Array.from({ length: 2000 }, (_, i) => `${base}${i}`)
    const box = inbox<[string, string]>()
    let start = process.hrtime.bigint()
    await sub.subscribe(channels, box.listener)
    const subscribeMs = Number(process.hrtime.bigint() - start) / 1e6
    expect(await srv.cli('PUBSUB', 'NUMSUB', channels[0], channels[1999])).toBe(`${channels[0]}\n1\n${channels[1999]}\n1`)
    start = process.hrtime.bigint()
    const sends: Array<Promise<number>> = []
    for (let i = 0; i < 20_000; i++) sends.push(pub.publish(channels[i % 2000], String(i)))
    expect((await Promise.all(sends)).every((n) => n === 1)).toBe(true)
    const got = await box.until(20_000)
    const ms = Number(process.hrtime.bigint() - start) / 1e6
    expect(got.map((m) => Number(m[0]))).toEqual(Array.from({ length: 20_000 }, (_, i) => i))
    expect(got.every(([m, c]) => c === channels[Number(m) % 2000])).toBe(true)
    console.log(`2,000 channels subscribed in ${subscribeMs.toFixed(0)} ms; 20,000 messages published and heard in ${ms.toFixed(0)} ms`)
    await sub.unsubscribe(channels)
    expect(await srv.cli('PUBSUB', 'NUMSUB', channels[7])).toBe(`${channels[7]}\n0`)
  })

  test('bad input is refused before anything is sent', async () => {
    const sub = await connect(srv.url)
    const bad = [
      sub.subscribe([], () => {}),
      sub.subscribe(ns('c'), 'nope' as any),
      sub.subscribe([ns('c'), 7 as any], () => {}),
      sub.subscribe(ns('c'), () => {}, { buffer: true } as any),
      sub.psubscribe(ns('c'), () => {}, { buffers: 'yes' } as any),
      sub.unsubscribe(ns('c'), 42 as any),
    ]
    for (const p of bad) expect(await rejection(p)).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(await srv.cli('PUBSUB', 'NUMSUB', 'c')).toBe('c\n0')
  })

  test('keyPrefix applies to keys, not to channels (as with ioredis)', async () => {
    const prefix = ns('app')
    const sub = await connect({ url: srv.url, keyPrefix: prefix })
    const ch = ns('events')
    const box = inbox<[string, string]>()
    await sub.subscribe(ch, box.listener)
    expect(await pub.publish(ch, 'x')).toBe(1)
    expect(await sub.publish(ch, 'y')).toBe(1)
    expect(await box.until(2)).toEqual([
      ['x', ch],
      ['y', ch],
    ])
    // shard channels too (SSUBSCRIBE works on a standalone Redis 7)
    const shard = inbox<[string, string]>()
    await sub.ssubscribe(ch, shard.listener)
    expect(await sub.spublish(ch, 's')).toBe(1)
    expect(await srv.cli('PUBSUB', 'SHARDNUMSUB', ch)).toBe(`${ch}\n1`)
    expect(await shard.until(1)).toEqual([['s', ch]])
  })

  test('after the server restarts on the same port: reconnecting, resubscribed, and the listener hears a new publish', async () => {
    const own = await startRedis()
    const sub = await connect({ url: own.url, reconnect: { minDelayMs: 20, maxDelayMs: 200 } })
    const other = await connect(own.url)
    const ch = ns('restart')
    const box = inbox<[string, string]>()
    const pbox = inbox<[string, string, string]>()
    await sub.subscribe(ch, box.listener)
    await sub.psubscribe(`${ch}*`, pbox.listener)
    const events: string[] = []
    const errors: unknown[] = []
    sub.on('reconnecting', (e) => events.push(`reconnecting:${e.code}`))
    sub.on('error', (e) => errors.push(e))
    const resubscribed = new Promise<void>((r) => sub.once('resubscribed', () => (events.push('resubscribed'), r())))
    await own.restart()
    await withTimeout(resubscribed, 10_000, 'no resubscribed event')
    // one 'reconnecting' for the command connection, one for the subscriber's
    expect(events.filter((e) => e === 'reconnecting:ERR_CONNECTION')).toHaveLength(2)
    expect(events[events.length - 1]).toBe('resubscribed')
    expect(errors.length).toBeGreaterThanOrEqual(2)
    // a fresh server with nothing of the old one: the subscriptions were made again
    expect(await eventually(() => other.publish(ch, 'again'), 5000)).toBe(2)
    expect(await box.until(1)).toEqual([['again', ch]])
    expect(await pbox.until(1)).toEqual([['again', ch, `${ch}*`]])
    await sub.close()
    await other.close()
    await own.stop()
  })

  test('the subscriber connection alone is lost (CLIENT KILL TYPE pubsub): reconnecting, resubscribed, heard again', async () => {
    const sub = await connect({ url: srv.url, reconnect: { minDelayMs: 20, maxDelayMs: 200 } })
    const ch = ns('killed')
    const box = inbox<[string, string]>()
    await sub.subscribe(ch, box.listener)
    const events: string[] = []
    sub.on('reconnecting', (e) => events.push(`reconnecting:${e.code}`))
    const back = new Promise<void>((r) => sub.once('resubscribed', r))
    await srv.cli('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await withTimeout(back, 5000, 'no resubscribed event')
    expect(events).toEqual(['reconnecting:ERR_CONNECTION'])
    expect(sub.status).toBe('ready') // the command connection was not touched
    expect(await pub.publish(ch, 'again')).toBe(1)
    expect(await box.until(1)).toEqual([['again', ch]])
  })

  test('a subscribe made while the server is down waits for it; one that waits past connectTimeoutMs rejects and is dropped', async () => {
    const own = await startRedis()
    const sub = await connect({ url: own.url, connectTimeoutMs: 1500, commandTimeoutMs: 500, reconnect: { minDelayMs: 20, maxDelayMs: 100 } })
    const [early, late] = [ns('early'), ns('late')]
    const box = inbox<[string, string]>()
    await sub.subscribe(early, box.listener)
    sub.on('error', () => {})
    await own.kill()
    // made while down: confirmed once the server is back (within connectTimeoutMs + commandTimeoutMs)
    const waiting = sub.subscribe(late, box.listener)
    await sleep(300)
    await own.restart()
    await withTimeout(waiting, 5000, 'the subscribe made while down did not resolve')
    expect(await own.cli('PUBLISH', late, 'x')).toBe('1')
    expect(await own.cli('PUBLISH', early, 'y')).toBe('1')
    await box.until(2)
    // and when the server does not come back in time
    await own.kill()
    const never = ns('never')
    const t0 = Date.now()
    const e = await rejection(sub.subscribe(never, box.listener))
    expect(e).toMatchObject({ code: 'ERR_CONNECTION' })
    expect(e.message).toMatch(/not subscribed within 2000 ms/)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900)
    await own.restart()
    await eventually(async () => expect(await own.cli('PUBSUB', 'NUMSUB', early)).toBe(`${early}\n1`), 5000)
    // the dropped one was not made again
    expect(await own.cli('PUBSUB', 'NUMSUB', never)).toBe(`${never}\n0`)
    await sub.close()
    await own.stop()
  })

  test('memory:// refuses subscriptions with ERR_INVALID_ARGUMENT', async () => {
    const mem = await connect('memory://pubsub-spec')
    const e = await rejection(mem.subscribe('ch', () => {}))
    expect(e).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(e.message).toContain('memory://')
    expect(await mem.set('k', 'still works')).toBeUndefined()
    // nothing is held: unsubscribing is a no-op
    await mem.unsubscribe()
  })

  test('a subscription the server refuses (ACL) rejects with ERR_AUTH (NOPERM); the others of the call stay', async () => {
    const acl = await startRedis({ users: [{ name: 'app', password: 'app-pw', rules: '~* resetchannels &allowed:* +@all' }] })
    const sub = await connect({ url: acl.url, username: 'app', password: 'app-pw' })
    const admin = await connect(acl.url)
    const ok = inbox<[string, string]>()
    const e = await rejection(sub.subscribe(['allowed:1', 'secret:1'], ok.listener))
    expect(e).toMatchObject({ code: 'ERR_AUTH', serverCode: 'NOPERM' })
    expect(e.message).toContain('secret:1')
    expect(e.message).not.toContain('app-pw')
    expect(await admin.publish('allowed:1', 'yes')).toBe(1)
    expect(await admin.publish('secret:1', 'no')).toBe(0)
    expect(await ok.until(1)).toEqual([['yes', 'allowed:1']])
    await sub.close()
    await admin.close()
    await acl.stop()
  })

  test('over TLS', async () => {
    const tls = await startRedis({ tls: true })
    const opts = { url: tls.url, tls: { ca: tls.certs!.ca } }
    const sub = await connect(opts)
    const box = inbox<[string, string]>()
    await sub.subscribe('tls-ch', box.listener)
    expect(await sub.publish('tls-ch', 'sealed')).toBe(1)
    expect(await box.until(1)).toEqual([['sealed', 'tls-ch']])
    await sub.close()
    await tls.stop()
  })

  test('close(): subscriptions end on the server, and later calls reject with ERR_CLOSED', async () => {
    const sub = track(await RedisClient.connect(srv.url))
    const ch = ns('closing')
    await sub.subscribe(ch, () => {})
    expect(await pub.publish(ch, 'x')).toBe(1)
    await sub.close()
    // close() drops the connection; the server ends its subscriptions once it reads the close
    await eventually(async () => expect(await pub.publish(ch, 'y')).toBe(0), 2000, 10)
    expect(await rejection(sub.subscribe(ch, () => {}))).toMatchObject({ code: 'ERR_CLOSED' })
    expect(await rejection(sub.unsubscribe(ch))).toMatchObject({ code: 'ERR_CLOSED' })
    // closing while a subscribe is on its way
    const other = track(await RedisClient.connect(srv.url))
    const pending = other.subscribe(ns('x'), () => {})
    const closed = other.close()
    const r = await pending.then(() => 'subscribed', (e) => e.code)
    expect(['subscribed', 'ERR_CLOSED']).toContain(r)
    await closed
  })
})

describe('Sentinel', () => {
  let t: SentinelTopology
  afterAll(() => t?.stop())

  test('subscriptions live on the master the sentinels name, and follow it through a failover', async () => {
    t = await startSentinel({ replicas: 1, sentinels: 3 })
    const options = { sentinel: { masterName: t.masterName, sentinels: t.sentinelAddrs }, reconnect: { minDelayMs: 50, maxDelayMs: 500 } }
    const sub = await connect(options)
    sub.on('error', () => {})
    const ch = ns('sentinel')
    const box = inbox<[string, string]>()
    await sub.subscribe(ch, box.listener)
    const old = await t.master()
    expect(await old.cli('PUBLISH', ch, 'first')).toBe('1')
    await box.until(1)
    const back = new Promise<void>((r) => sub.once('resubscribed', r))
    await t.failover()
    const next = await t.waitForNewMaster(old)
    await withTimeout(back, 20_000, 'no resubscribed event after the failover')
    await eventually(async () => expect(await next.cli('PUBSUB', 'NUMSUB', ch)).toBe(`${ch}\n1`), 10_000)
    expect(await sub.publish(ch, 'second')).toBeGreaterThanOrEqual(1)
    expect((await box.until(2)).map((m) => m[0])).toContain('second')
  })
})

describe('process lifetime (child processes on dist/)', () => {
  /** Runs `script` in a fresh node; `@name` lines on stdout call `onMarker`. */
  function runChild(script: string, onMarker: (m: string) => void = () => {}) {
    return new Promise<{ code: number | null; stdout: string; stderr: string; exitAt: number; markers: Record<string, number> }>((resolve) => {
      const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, ATLAS_DIST: DIST }, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      const markers: Record<string, number> = {}
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d
        for (const m of d.matchAll(/^@(\w+)/gm)) {
          markers[m[1]] = Date.now()
          onMarker(m[1])
        }
      })
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      child.on('close', (code) => {
        clearTimeout(killer)
        resolve({ code, stdout, stderr, exitAt: Date.now(), markers })
      })
    })
  }

  test('a subscribed client keeps the process running; close() from its listener lets it exit at once', async () => {
    const ch = ns('quit')
    let publishedAt = 0
    const r = await runChild(
      `
      const { RedisClient } = require(process.env.ATLAS_DIST)
      ;(async () => {
        const c = await RedisClient.connect(${JSON.stringify(srv.url)})
        await c.subscribe(${JSON.stringify(ch)}, (m) => {
          console.log('got=' + m)
          c.close().then(() => console.log('@closed'))
        })
        console.log('@subscribed')
      })().catch((e) => { console.error(e); process.exitCode = 1 })
      `,
      (m) => {
        // nothing else holds the process: only the subscription keeps it alive this long
        if (m === 'subscribed') setTimeout(() => ((publishedAt = Date.now()), void pub.publish(ch, 'bye')), 700)
      },
    )
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('got=bye')
    expect(publishedAt).toBeGreaterThan(0)
    expect(r.exitAt - r.markers.closed).toBeLessThan(1000)
    await eventually(async () => expect(await pub.publish(ch, 'nobody')).toBe(0), 2000, 10)
  })

  test('unsubscribing everything releases the process too', async () => {
    const r = await runChild(`
      const { RedisClient } = require(process.env.ATLAS_DIST)
      ;(async () => {
        const c = await RedisClient.connect(${JSON.stringify(srv.url)})
        await c.subscribe(['a', 'b'], () => {})
        await c.psubscribe('p*', () => {})
        await c.unsubscribe()
        await c.punsubscribe()
        console.log('@idle')
      })().catch((e) => { console.error(e); process.exitCode = 1 })
    `)
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' })
    expect(r.exitAt - r.markers.idle).toBeLessThan(1000)
  })
})

describe('cluster (3 masters, 1 replica each)', () => {
  let cluster: RedisCluster

  beforeAll(async () => {
    cluster = await startCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 1000 })
  })
  afterAll(async () => {
    await closeAll()
    await cluster?.stop()
  })

  /** A channel name under `base` whose slot is owned by `owner`, or by another master than `not`. */
  async function channelOn(base: string, pick: (owner: RedisServer) => boolean): Promise<string> {
    for (let i = 0; ; i++) {
      const name = `${base}${i}`
      if (pick((await cluster.ownerOf(keySlot(name)))!)) return name
    }
  }

  test('subscribe and psubscribe: a PUBLISH through any node reaches the listener', async () => {
    const sub = await connect({ cluster: { nodes: [cluster.nodes[0]] } })
    const ch = ns('cl')
    const box = inbox<[string, string]>()
    const pbox = inbox<[string, string, string]>()
    await sub.subscribe(ch, box.listener)
    await sub.psubscribe(`${ch}*`, pbox.listener)
    const masters = await cluster.masters()
    for (const m of masters) await m.cli('PUBLISH', ch, `via ${m.port}`)
    await sub.publish(ch, 'via the client')
    const heard = (await box.until(4)).map((m) => m[0])
    expect(heard.sort()).toEqual([...masters.map((m) => `via ${m.port}`), 'via the client'].sort())
    expect((await pbox.until(4)).every(([, c, p]) => c === ch && p === `${ch}*`)).toBe(true)
  })

  test('ssubscribe: shard channels of every master, each heard through SPUBLISH', async () => {
    const sub = await connect({ cluster: { nodes: [cluster.nodes[1]] } })
    const masters = await cluster.masters()
    const base = ns('sh')
    const channels: string[] = []
    for (const m of masters) channels.push(await channelOn(`${base}${m.port}:`, (o) => o === m))
    const box = inbox<[string, string]>()
    await sub.ssubscribe(channels, box.listener)
    for (const [i, m] of masters.entries()) expect(await m.cli('PUBSUB', 'SHARDNUMSUB', channels[i])).toBe(`${channels[i]}\n1`)
    for (const c of channels) expect(await sub.spublish(c, `to ${c}`)).toBe(1)
    expect((await box.until(3)).map((m) => m[1]).sort()).toEqual([...channels].sort())
    await sub.sunsubscribe(channels[0])
    expect(await sub.spublish(channels[0], 'gone')).toBe(0)
    expect(await sub.spublish(channels[1], 'still')).toBe(1)
  })

  test('a sharded subscription follows its slot through a reshard', async () => {
    const sub = await connect({ cluster: { nodes: cluster.nodes }, reconnect: { minDelayMs: 20, maxDelayMs: 200 } })
    const publisher = await connect({ cluster: { nodes: cluster.nodes } })
    const ch = ns('moving')
    const slot = keySlot(ch)
    const from = (await cluster.ownerOf(slot))!
    const to = (await cluster.masters()).find((m) => m !== from)!
    const box = inbox<[string, string]>()
    await sub.ssubscribe(ch, box.listener)
    expect(await publisher.spublish(ch, 'before')).toBe(1)
    await box.until(1)
    // move the slot (it holds no key) as redis-cli --cluster reshard does: the old owner
    // unsubscribes its shard channel subscribers (an sunsubscribe push)
    const fromId = await from.cli('CLUSTER', 'MYID')
    const toId = await to.cli('CLUSTER', 'MYID')
    await to.cli('CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId)
    await from.cli('CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId)
    await to.cli('CLUSTER', 'SETSLOT', slot, 'NODE', toId)
    await from.cli('CLUSTER', 'SETSLOT', slot, 'NODE', toId)
    for (const m of await cluster.masters()) if (m !== from && m !== to) await m.cli('CLUSTER', 'SETSLOT', slot, 'NODE', toId)
    expect((await cluster.ownerOf(slot))!.port).toBe(to.port)
    // the subscription is made again at the new owner
    await eventually(async () => expect(await to.cli('PUBSUB', 'SHARDNUMSUB', ch)).toBe(`${ch}\n1`), 10_000)
    expect(await from.cli('PUBSUB', 'SHARDNUMSUB', ch)).toBe(`${ch}\n0`)
    expect(await eventually(async () => {
      const n = await publisher.spublish(ch, 'after')
      if (n !== 1) throw new Error(`spublish reached ${n}`)
      return n
    }, 10_000)).toBe(1)
    expect((await box.until(2)).map((m) => m[0])).toEqual(['before', 'after'])
  })

  // Last: it changes which nodes are masters.
  test('a master killed: its replica takes over, and what that master held is subscribed again there', async () => {
    const sub = await connect({ cluster: { nodes: cluster.nodes }, connectTimeoutMs: 1000, reconnect: { minDelayMs: 50, maxDelayMs: 500 } })
    sub.on('error', () => {})
    const events: string[] = []
    sub.on('reconnecting', () => events.push('reconnecting'))
    // plain channels and patterns live on the master of slot 0; kill that one, which also owns `shard`
    const home = (await cluster.ownerOf(0))!
    const ch = ns('fo')
    const shard = await channelOn(ns('fo-shard'), (o) => o === home)
    const box = inbox<[string, string]>()
    const sbox = inbox<[string, string]>()
    await sub.subscribe(ch, box.listener)
    await sub.ssubscribe(shard, sbox.listener)
    expect(await home.cli('PUBSUB', 'NUMSUB', ch)).toBe(`${ch}\n1`)
    const back = new Promise<void>((r) => sub.once('resubscribed', r))
    await home.kill()
    await cluster.waitHealthy()
    await withTimeout(back, 20_000, 'no resubscribed event after the failover')
    expect(events.length).toBeGreaterThanOrEqual(1)
    const publisher = await connect({ cluster: { nodes: cluster.nodes.filter((n) => !n.endsWith(`:${home.port}`)) } })
    expect(await eventually(async () => {
      const n = await publisher.spublish(shard, 'after')
      if (n !== 1) throw new Error(`spublish reached ${n}`)
      return n
    }, 10_000)).toBe(1)
    // (a cluster's PUBLISH counts the subscribers of the node that took it only)
    const masters = await cluster.masters()
    for (const m of masters) await m.cli('PUBLISH', ch, 'after')
    expect(await sbox.until(1)).toEqual([['after', shard]])
    expect(await box.until(masters.length)).toEqual(masters.map(() => ['after', ch]))
    await sleep(100)
    expect(box.got).toHaveLength(masters.length) // heard once each: subscribed on one node
  })
})
