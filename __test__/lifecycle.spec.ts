// The client's life cycle against real servers: create() before the server is up,
// duplicate(), status, the EventEmitter events through a server restart on the
// same port, an 'error' nobody listens to, and connectionName after a reconnect.
import { spawn } from 'child_process'
import * as path from 'path'
import { RedisClient, type RedisError } from '../lib'
import { startRedis, stopAll, type RedisServer } from './harness'
import { closeAll, connect, eventually, ns, rejection, track, withTimeout } from './helpers'

const DIST = path.resolve(__dirname, '..', 'dist')

afterEach(closeAll)
afterAll(stopAll)

/** Resolves when `client` emits `event` (rejects after `ms`). */
function next(client: RedisClient, event: string, ms = 10_000): Promise<unknown[]> {
  return withTimeout(new Promise((resolve) => client.once(event, (...args: unknown[]) => resolve(args))), ms, `no '${event}' within ${ms} ms`)
}

/** Every event a client emits, in order. */
function record(client: RedisClient): string[] {
  const seen: string[] = []
  for (const e of ['ready', 'reconnecting', 'error', 'end']) client.on(e, () => seen.push(e))
  return seen
}

async function clientList(srv: RedisServer): Promise<string> {
  return srv.cli('CLIENT', 'LIST')
}

describe('RedisClient.create()', () => {
  test('returns at once; calls made before the server is up wait for it and then run', async () => {
    const srv = await startRedis()
    await srv.kill() // the port stays ours: restart() brings the server back there
    const c = track(RedisClient.create({ port: srv.port, connectTimeoutMs: 8000, reconnect: { minDelayMs: 20, maxDelayMs: 200 } }))
    const events = record(c)
    const errors: RedisError[] = []
    c.on('error', (e) => errors.push(e))
    expect(c.status).toBe('connecting')
    const k = ns('early')
    const set = c.set(k, 'queued before ready')
    const got = c.get(k)
    const tx = c.multi().incr(k + 'n').exec()
    await eventually(async () => expect(errors.length).toBeGreaterThan(0), 5000, 20)
    expect(errors[0]).toMatchObject({ code: 'ERR_CONNECTION' })
    expect(c.status).toBe('connecting')
    await srv.restart()
    await set
    expect(await got).toBe('queued before ready')
    expect(await tx).toEqual([1])
    expect(c.status).toBe('ready')
    expect(events.filter((e) => e === 'ready')).toEqual(['ready'])
    await c.close()
    expect(c.status).toBe('end')
    expect(events.at(-1)).toBe('end')
  })

  test('a call waits at most connectTimeoutMs, then rejects with the connect error', async () => {
    const srv = await startRedis()
    await srv.kill()
    const c = track(RedisClient.create({ port: srv.port, connectTimeoutMs: 300 }))
    const e = await rejection(c.get('k'))
    expect(e).toMatchObject({ code: 'ERR_CONNECTION' })
    expect(e.message).toContain('connectTimeoutMs')
    expect(e.message).toContain(`127.0.0.1:${srv.port}`)
    expect(c.status).toBe('connecting')
    // The client keeps trying (with backoff, which may outlast connectTimeoutMs): once
    // it is ready, calls succeed.
    const ready = next(c, 'ready')
    await srv.restart()
    await ready
    expect(await withTimeout(c.incr(ns('later') + 'n'), 8000, 'no reply')).toBe(1)
  })

  test('bad options throw ERR_INVALID_ARGUMENT synchronously; close() before ready ends the client', async () => {
    expect(() => RedisClient.create({ port: 70000 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => RedisClient.create({ connectionName: 'has space' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => RedisClient.create(42 as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    const srv = await startRedis()
    await srv.kill()
    const c = RedisClient.create({ port: srv.port })
    const pending = rejection(c.get('k'))
    const end = next(c, 'end')
    await c.close()
    await end
    expect(c.status).toBe('end')
    expect(await pending).toMatchObject({ code: 'ERR_CLOSED' })
    await expect(c.get('k')).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    await srv.stop()
  })
})

describe('duplicate()', () => {
  let srv: RedisServer
  beforeAll(async () => {
    srv = await startRedis()
  })

  test('same settings, a connection of its own; overrides apply', async () => {
    const k = ns('dup')
    const base = await connect({ url: srv.url, keyPrefix: k, connectionName: 'base-conn' })
    const dup = track(base.duplicate())
    expect(dup.status).toBe('connecting')
    await dup.set('x', 'from dup') // waits for its connection
    expect(await base.get('x')).toBe('from dup') // same keyPrefix
    const [idA, idB] = await Promise.all([base.command('CLIENT', 'ID'), dup.command('CLIENT', 'ID')])
    expect(idA).not.toBe(idB)
    expect(await dup.command('CLIENT', 'GETNAME')).toBe('base-conn')
    const other = track(base.duplicate({ keyPrefix: k + 'other:', connectionName: 'dup-conn' }))
    await other.set('x', 'elsewhere')
    expect(await base.get('other:x')).toBe('elsewhere')
    expect(await other.command('CLIENT', 'GETNAME')).toBe('dup-conn')
    // from a URL, and from the environment
    const fromUrl = await connect(srv.url)
    const d2 = track(fromUrl.duplicate({ keyPrefix: k }))
    expect(await d2.get('x')).toBe('from dup')
    expect(() => base.duplicate('nope' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  test('a duplicate of a client configured from the environment', async () => {
    const saved = { ...process.env }
    process.env.REDIS_URL = srv.url
    process.env.REDIS_KEY_PREFIX = 'envdup:'
    try {
      const c = await connect()
      const d = track(c.duplicate({ connectionName: 'from-env' }))
      await d.set('k', 'v')
      expect(await srv.cli('GET', 'envdup:k')).toBe('v')
      expect(await d.command('CLIENT', 'GETNAME')).toBe('from-env')
    } finally {
      process.env = saved
    }
  })
})

describe('events and status through a restart', () => {
  test("'reconnecting' then 'ready' again; status follows; calls work after", async () => {
    const srv = await startRedis()
    const c = await connect({ port: srv.port, reconnect: { minDelayMs: 20, maxDelayMs: 200 } })
    expect(c.status).toBe('ready')
    const events = record(c)
    const errors: RedisError[] = []
    c.on('error', (e) => errors.push(e))
    const reconnecting = next(c, 'reconnecting')
    await srv.kill()
    const [why] = (await reconnecting) as [RedisError]
    expect(why).toMatchObject({ code: 'ERR_CONNECTION' })
    expect(c.status).toBe('reconnecting')
    expect(errors[0]).toBe(why)
    const ready = next(c, 'ready')
    await srv.restart()
    await ready
    expect(c.status).toBe('ready')
    expect(await c.incr(ns('after') + 'n')).toBe(1)
    expect(events.slice(0, 3)).toEqual(['reconnecting', 'error', 'ready'])
    const end = next(c, 'end')
    await c.close()
    await end
    expect(c.status).toBe('end')
    await srv.stop()
  })

  test('connectionName is set on connect and again after every reconnect', async () => {
    const srv = await startRedis()
    const c = await connect({ port: srv.port, connectionName: 'orders-api', reconnect: { minDelayMs: 20, maxDelayMs: 200 } })
    expect(await clientList(srv)).toContain('name=orders-api')
    const ready = next(c, 'ready')
    await srv.restart()
    await ready
    expect(await clientList(srv)).toContain('name=orders-api')
    expect(await c.command('CLIENT', 'GETNAME')).toBe('orders-api')
    await srv.stop()
  })

  test('watch() lost to a reconnect: exec() resolves null rather than run unwatched', async () => {
    const srv = await startRedis()
    const c = await connect({ port: srv.port, reconnect: { minDelayMs: 20, maxDelayMs: 200 } })
    const k = ns('watchlost')
    await c.watch(k)
    const ready = next(c, 'ready')
    await srv.restart()
    await ready
    expect(await c.multi().set(k, 'v').exec()).toBeNull()
    expect(await c.get(k)).toBeNull()
    await c.watch(k) // a fresh watch on the new connection works
    expect(await c.multi().set(k, 'v').exec()).toEqual([undefined])
    await srv.stop()
  })
})

describe("an 'error' with no listener (child process on dist/)", () => {
  test('never crashes the process', async () => {
    const srv = await startRedis()
    const dead = await startRedis()
    await dead.kill()
    const script = `
      const { RedisClient } = require(process.env.ATLAS_DIST)
      ;(async () => {
        // no 'error' listener anywhere
        const lazy = RedisClient.create({ port: ${dead.port}, reconnect: { minDelayMs: 10, maxDelayMs: 50 } })
        const live = await RedisClient.connect({ port: ${srv.port}, reconnect: { minDelayMs: 10, maxDelayMs: 50 } })
        live.on('reconnecting', () => console.log('@reconnecting'))
        console.log('@connected')
        await new Promise((r) => setTimeout(r, 1500))
        console.log('@alive ' + lazy.status + ' ' + live.status)
        await lazy.close()
        await live.close()
      })().catch((e) => { console.error(e); process.exitCode = 1 })
    `
    const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, ATLAS_DIST: DIST }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d
      if (d.includes('@connected')) void srv.kill() // the live client's connection drops: 'error' too
    })
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    clearTimeout(killer)
    expect(stderr).toBe('')
    expect(stdout).toContain('@reconnecting')
    expect(stdout).toContain('@alive connecting reconnecting')
    expect(code).toBe(0)
  })
})
