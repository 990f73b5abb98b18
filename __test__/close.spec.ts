// close(): waits for in-flight calls, refuses later ones; and the client's
// effect on process lifetime (checked in child processes using dist/).
import { spawn } from 'child_process'
import path from 'path'
import net from 'net'
import { RedisClient } from '../lib'
import { startRedis, stopAll, RedisServer } from './harness'
import { closeAll, connect, ns, sleep, track } from './helpers'

const DIST = path.resolve(__dirname, '..', 'dist')

let srv: RedisServer
beforeAll(async () => {
  srv = await startRedis()
})
afterEach(closeAll)
afterAll(stopAll)

describe('close()', () => {
  test('resolves after in-flight calls settle: 100 gets, then close, all 100 resolve with values', async () => {
    const c = track(await RedisClient.connect(srv.url))
    const p = ns('close')
    await c.mset(Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`${p}${i}`, `v${i}`])))
    const order: string[] = []
    const gets = Array.from({ length: 100 }, (_, i) =>
      c.get(`${p}${i}`).then((v) => {
        order.push('get')
        return v
      }),
    )
    const closed = c.close().then(() => order.push('close'))
    const values = await Promise.all(gets)
    await closed
    expect(values).toEqual(Array.from({ length: 100 }, (_, i) => `v${i}`))
    expect(order.length).toBe(101)
    expect(order[100]).toBe('close')
  })

  test('in-flight calls issued in earlier ticks also complete before close resolves', async () => {
    const c = track(await RedisClient.connect(srv.url))
    const p = ns('close2')
    await c.set(p + 'k', 'v')
    const results: Array<Promise<unknown>> = []
    for (let i = 0; i < 5; i++) {
      results.push(c.get(p + 'k'), c.incr(p + 'n'))
      await Promise.resolve()
      await new Promise((r) => setImmediate(r))
    }
    // Answered after 200 ms on the shared connection. (A blocking command such as BLPOP
    // waits on a dedicated connection, and close() ends it: blocking-commands.spec.ts.)
    const slow = "local t = redis.call('TIME') local stop = t[1] * 1000000 + t[2] + 200000 repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= stop return 'slow'"
    results.push(c.command('EVAL', slow, '0'))
    await c.close()
    const settled = await Promise.allSettled(results)
    expect(settled.every((s) => s.status === 'fulfilled')).toBe(true)
    expect(settled.map((s) => (s as PromiseFulfilledResult<unknown>).value)).toEqual(['v', 1, 'v', 2, 'v', 3, 'v', 4, 'v', 5, 'slow'])
  })

  test('calls after close (and during closing) reject ERR_CLOSED; close is idempotent', async () => {
    const c = track(await RedisClient.connect(srv.url))
    const p = ns('closed')
    const inflight = c.set(p + 'k', 'v')
    const first = c.close()
    const during = c.get(p + 'k')
    const second = c.close()
    await expect(during).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    await Promise.all([first, second])
    await expect(inflight).resolves.toBeUndefined()
    for (const call of [
      () => c.get(p + 'k'),
      () => c.set(p + 'k', 'w'),
      () => c.mget(p + 'k'),
      () => c.command('PING'),
      () => c.ping(),
      () => c.scan()[Symbol.asyncIterator]().next(),
    ]) {
      await expect(call()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    }
    await c.close() // a third time, after the fact
    expect(await srv.cli('GET', p + 'k')).toBe('v')
    expect(c.stats().inFlight).toBe(0)
  })

  test('close() disconnects: the server no longer lists the client', async () => {
    const c = await connect(srv.url)
    await c.command('CLIENT', 'SETNAME', 'closeme')
    expect(await srv.cli('CLIENT', 'LIST')).toContain('name=closeme')
    await c.close()
    // The server notices the FIN almost at once.
    let list = ''
    for (let i = 0; i < 20; i++) {
      list = await srv.cli('CLIENT', 'LIST')
      if (!list.includes('name=closeme')) break
      await sleep(50)
    }
    expect(list).not.toContain('name=closeme')
  })
})

interface ChildResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** ms from each stdout marker line to process exit */
  sinceMarker: Record<string, number>
  /** ms from spawn to each marker */
  atMarker: Record<string, number>
  totalMs: number
}

/**
 * Runs `script` in a fresh node process (it can `require(DIST)`). Lines printed as
 * `@marker` are timed. `onMarker` may act on them. Killed after `limitMs`.
 */
function runChild(
  script: string,
  limitMs: number,
  onMarker?: (m: string) => void,
): Promise<ChildResult> {
  return new Promise((resolve) => {
    const start = Date.now()
    const child = spawn(process.execPath, ['-e', script], {
      env: { ...process.env, ATLAS_DIST: DIST },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const markers: Record<string, number> = {}
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    child.stdout.on('data', (d: string) => {
      stdout += d
      for (const m of d.matchAll(/^@(\w+)/gm)) {
        if (markers[m[1]] === undefined) {
          markers[m[1]] = Date.now()
          onMarker?.(m[1])
        }
      }
    })
    child.stderr.on('data', (d: string) => (stderr += d))
    const killer = setTimeout(() => child.kill('SIGKILL'), limitMs)
    child.on('close', (code, signal) => {
      clearTimeout(killer)
      const end = Date.now()
      resolve({
        code,
        signal,
        stdout,
        stderr,
        sinceMarker: Object.fromEntries(Object.entries(markers).map(([k, t]) => [k, end - t])),
        atMarker: Object.fromEntries(Object.entries(markers).map(([k, t]) => [k, t - start])),
        totalMs: end - start,
      })
    })
  })
}

describe('process lifetime (child processes on dist/)', () => {
  test('connect, get/set, close: the process exits on its own within 1 s', async () => {
    const k = ns('child1') + 'k'
    const r = await runChild(
      `
      const { RedisClient } = require(process.env.ATLAS_DIST)
      ;(async () => {
        const c = await RedisClient.connect(${JSON.stringify(srv.url)})
        await c.set(${JSON.stringify(k)}, 'from child')
        console.log('value=' + await c.get(${JSON.stringify(k)}))
        await c.close()
        console.log('@closed')
      })().catch((e) => { console.error(e); process.exitCode = 1 })
      `,
      10000,
    )
    expect(r.stderr).toBe('')
    expect(r.stdout).toContain('value=from child')
    expect(r.signal).toBeNull()
    expect(r.code).toBe(0)
    expect(r.sinceMarker.closed).toBeLessThan(1000)
    expect(await srv.cli('GET', k)).toBe('from child')
  })

  test('a client that is never closed does not hold the process: it exits cleanly when its work is done', async () => {
    const k = ns('child2') + 'k'
    const r = await runChild(
      `
      const { RedisClient } = require(process.env.ATLAS_DIST)
      ;(async () => {
        const c = await RedisClient.connect(${JSON.stringify(srv.url)})
        await c.set(${JSON.stringify(k)}, 'idle')
        console.log('value=' + await c.get(${JSON.stringify(k)}))
        console.log('@done')
      })().catch((e) => { console.error(e); process.exitCode = 1 })
      `,
      10000,
    )
    expect(r.stdout).toContain('value=idle')
    expect(r.sinceMarker.done).toBeLessThan(1000)
    expect({ code: r.code, signal: r.signal, stderr: r.stderr }).toEqual({ code: 0, signal: null, stderr: '' })
  })

  test('several idle clients (plain and prefixed), never closed: the process exits cleanly', async () => {
    const r = await runChild(
      `
      const { RedisClient } = require(process.env.ATLAS_DIST)
      ;(async () => {
        const cs = await Promise.all([1, 2, 3].map((i) => RedisClient.connect({ url: ${JSON.stringify(srv.url)}, keyPrefix: 'c' + i + ':' })))
        await Promise.all(cs.map((c) => c.ping()))
        console.log('@done')
      })().catch((e) => { console.error(e); process.exitCode = 1 })
      `,
      10000,
    )
    expect(r.sinceMarker.done).toBeLessThan(1000)
    expect({ code: r.code, signal: r.signal, stderr: r.stderr }).toEqual({ code: 0, signal: null, stderr: '' })
  })

  test('a pending command keeps the process running until its reply arrives', async () => {
    const list = ns('child3') + 'list'
    let pushed: Promise<string> | undefined
    const r = await runChild(
      `
      const { RedisClient } = require(process.env.ATLAS_DIST)
      ;(async () => {
        const c = await RedisClient.connect({ url: ${JSON.stringify(srv.url)}, commandTimeoutMs: 10000 })
        const reply = c.command('BLPOP', ${JSON.stringify(list)}, '8')
        console.log('@waiting')
        console.log('reply=' + JSON.stringify(await reply))
        console.log('@replied')
        await c.close()
      })().catch((e) => { console.error(e); process.exitCode = 1 })
      `,
      15000,
      (m) => {
        if (m === 'waiting') pushed = sleep(700).then(() => srv.cli('RPUSH', list, 'wake-up'))
      },
    )
    await pushed
    expect(r.stderr).toBe('')
    expect(r.stdout).toContain(`reply=${JSON.stringify([list, 'wake-up'])}`)
    expect(r.code).toBe(0)
    // it stayed alive for the ~700 ms the reply took
    expect(r.atMarker.replied - r.atMarker.waiting).toBeGreaterThanOrEqual(600)
    expect(r.sinceMarker.replied).toBeLessThan(1000)
  })

  test('a failed connect does not hold the process either', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer()
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port
        s.close(() => resolve(p))
      })
    })
    const r = await runChild(
      `
      const { RedisClient } = require(process.env.ATLAS_DIST)
      RedisClient.connect({ port: ${port} }).then(
        () => console.log('connected?!'),
        (e) => console.log('@failed ' + e.code),
      )
      `,
      10000,
    )
    expect(r.stdout).toContain('@failed ERR_CONNECTION')
    expect(r.sinceMarker.failed).toBeLessThan(1000)
    expect({ code: r.code, signal: r.signal, stderr: r.stderr }).toEqual({ code: 0, signal: null, stderr: '' })
  })
})
