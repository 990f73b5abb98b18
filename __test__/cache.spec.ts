// client.cache.wrap() against real redis-servers: one loader run per key per
// process and across instances (two clients = two instances: each has its own
// connection and its own in-process map, exactly as two processes would), the
// load lock and its bounded wait, errors and JSON, invalidation, refresh-ahead,
// and what happens when Redis cannot answer.
import type { RedisClient } from '../lib'
import { LOCK_SUFFIX } from '../lib/caching/cache'
import { startRedis, stopAll, type RedisServer } from './harness'
import { closeAll, connect, eventually, ns, realRedisTest, rejection, sleep } from './helpers'

let srv: RedisServer
let a: RedisClient
let b: RedisClient

beforeAll(async () => {
  srv = await startRedis()
  ;[a, b] = await Promise.all([connect(srv.url), connect(srv.url)])
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

const lockOf = (key: string) => key + LOCK_SUFFIX

/** A promise and the function that resolves it: "the loader has started". */
function signal(): [Promise<void>, () => void] {
  let fire!: () => void
  const p = new Promise<void>((r) => (fire = r))
  return [p, fire]
}
const since = (t0: number) => performance.now() - t0

/** Resolves once neither the value nor the lock of `key` exists. */
function eventuallyGone(key: string): Promise<void> {
  return eventually(async () => {
    const n = await a.exists(key, lockOf(key))
    if (n !== 0) throw new Error(`${key}: ${n} of value and lock still exist`)
  }, 2000, 10)
}

describe('arguments', () => {
  test('bad arguments reject with ERR_INVALID_ARGUMENT before any I/O, and the loader never runs', async () => {
    const loader = jest.fn(async () => 1)
    const cases: Array<[unknown, unknown, unknown, unknown?]> = [
      ['', 1000, loader],
      [42, 1000, loader],
      [Buffer.from('k'), 1000, loader],
      ['k', 0, loader],
      ['k', -1, loader],
      ['k', 1.5, loader],
      ['k', NaN, loader],
      ['k', '1000', loader],
      ['k', 1000, 'not a function'],
      ['k', 1000, undefined],
      ['k', 1000, loader, null],
      ['k', 1000, loader, { ttl: 5 }],
      ['k', 1000, loader, { refreshAheadMs: 1000 }],
      ['k', 1000, loader, { refreshAheadMs: -1 }],
      ['k', 1000, loader, { lockMs: 0 }],
      ['k', 1000, loader, { waitMs: -1 }],
      ['k', 1000, loader, { waitMs: 0.5 }],
    ]
    const before = a.stats().commands
    for (const [key, ttl, fn, options] of cases) {
      let call: Promise<unknown> | undefined
      // a rejected promise, never a synchronous throw
      expect(() => (call = a.cache.wrap(key as string, ttl as number, fn as () => number, options as object))).not.toThrow()
      expect(await rejection(call!)).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    }
    expect(await rejection(a.cache.invalidate(''))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(a.stats().commands).toBe(before)
    expect(loader).not.toHaveBeenCalled()
  })
})

describe('hits and misses', () => {
  test('a miss loads and stores JSON with the TTL; hits, here and on another instance, skip the loader; same shape either way', async () => {
    const key = ns('coa')
    const loader = jest.fn(async () => ({ accounts: ['1000 Cash'], asOf: new Date(0) }))
    const first = await a.cache.wrap(key, 30_000, loader)
    // The loading caller gets what every later caller will get: JSON's view of the value.
    expect(first).toEqual({ accounts: ['1000 Cash'], asOf: '1970-01-01T00:00:00.000Z' })
    expect(await srv.cli('GET', key)).toBe(JSON.stringify(first))
    const pttl = Number(await srv.cli('PTTL', key))
    expect(pttl).toBeGreaterThan(25_000)
    expect(pttl).toBeLessThanOrEqual(30_000)
    expect(await srv.cli('EXISTS', lockOf(key))).toBe('0') // released after the store
    expect(await a.cache.wrap(key, 30_000, loader)).toEqual(first)
    expect(await b.cache.wrap(key, 30_000, loader)).toEqual(first)
    expect(loader).toHaveBeenCalledTimes(1)
  })

  test('null is a value (cached), not a miss', async () => {
    const key = ns('null')
    const loader = jest.fn(async () => null)
    expect(await a.cache.wrap(key, 10_000, loader)).toBeNull()
    expect(await a.cache.wrap(key, 10_000, loader)).toBeNull()
    expect(loader).toHaveBeenCalledTimes(1)
    expect(await srv.cli('GET', key)).toBe('null')
  })

  test('a hit costs one GET; concurrent hits of one key in one process share it', async () => {
    const key = ns('warm')
    await a.cache.wrap(key, 60_000, async () => ({ warm: true }))
    const before = a.stats()
    const hits = await Promise.all(Array.from({ length: 100 }, () => a.cache.wrap(key, 60_000, async () => ({ warm: false }))))
    expect(hits.every((h) => h === hits[0])).toBe(true)
    expect(hits[0]).toEqual({ warm: true })
    expect(a.stats().commands - before.commands).toBe(1)
  })

  test('keys live under the client keyPrefix, the lock right next to the value', async () => {
    const p = await connect({ url: srv.url, keyPrefix: 'atlas:' })
    const key = ns('pfx')
    const run = p.cache.wrap(key, 10_000, async () => {
      await sleep(100)
      return 'v'
    })
    await eventually(async () => expect(await srv.cli('EXISTS', `atlas:${lockOf(key)}`)).toBe('1'), 1000, 5)
    expect(await run).toBe('v')
    expect(await srv.cli('GET', `atlas:${key}`)).toBe('"v"')
    expect(await srv.cli('EXISTS', key, `atlas:${lockOf(key)}`)).toBe('0')
  })

  test('a key holding something else is an error, not a miss: the loader does not run', async () => {
    const key = ns('wrongtype')
    await a.hset(key, 'f', 'v')
    const loader = jest.fn(async () => 1)
    expect(await rejection(a.cache.wrap(key, 1000, loader))).toMatchObject({ code: 'ERR_REPLY', message: expect.stringMatching(/WRONGTYPE/) })
    const text = ns('not-json')
    await a.set(text, 'plain text')
    expect(await rejection(a.cache.wrap(text, 1000, loader))).toMatchObject({ code: 'ERR_REPLY', message: expect.stringMatching(/not JSON/) })
    expect(loader).not.toHaveBeenCalled()
  })
})

describe('stampedes', () => {
  test('1000 concurrent calls on a cold key in one process: one loader run, a handful of commands', async () => {
    const key = ns('stampede-1')
    let runs = 0
    const loader = async () => {
      runs++
      await sleep(50)
      return { n: 42 }
    }
    const before = a.stats().commands
    const results = await Promise.all(Array.from({ length: 1000 }, () => a.cache.wrap(key, 60_000, loader)))
    expect(runs).toBe(1)
    expect(results[0]).toEqual({ n: 42 })
    expect(results.every((r) => r === results[0])).toBe(true)
    // GET, cache_lock, cache_store (each script once more by EVAL if the server lacked it)
    expect(a.stats().commands - before).toBeLessThanOrEqual(5)
  })

  test('1000 concurrent calls split across two instances: one loader run in all, every caller gets its value', async () => {
    for (let round = 0; round < 5; round++) {
      const key = ns('stampede-2')
      const runs = { a: 0, b: 0 }
      const loaderOf = (who: 'a' | 'b') => async () => {
        runs[who]++
        await sleep(100)
        return { by: who }
      }
      const calls: Array<Promise<{ by: string }>> = []
      for (let i = 0; i < 500; i++) {
        calls.push(a.cache.wrap(key, 60_000, loaderOf('a')))
        calls.push(b.cache.wrap(key, 60_000, loaderOf('b')))
      }
      const results = await Promise.all(calls)
      expect(runs.a + runs.b).toBe(1)
      const winner = runs.a === 1 ? 'a' : 'b'
      expect(results.every((r) => r.by === winner)).toBe(true)
      expect(await srv.cli('GET', key)).toBe(JSON.stringify({ by: winner }))
    }
  })

  test('a waiting instance gets the owner’s value as soon as it is stored, without running its loader', async () => {
    const key = ns('wait')
    const [loading, started] = signal()
    const owner = a.cache.wrap(key, 10_000, async () => {
      started()
      await sleep(300)
      return 'from a'
    })
    await loading // a holds the lock
    const loader = jest.fn(async () => 'from b')
    const t0 = performance.now()
    expect(await b.cache.wrap(key, 10_000, loader)).toBe('from a')
    expect(since(t0)).toBeGreaterThan(250)
    expect(since(t0)).toBeLessThan(800) // a's 300 ms load and a poll (≤ 50 ms), far from lockMs (5000)
    expect(loader).not.toHaveBeenCalled()
    expect(await owner).toBe('from a')
  })

  test('the wait is bounded: past waitMs the waiter loads itself, stores its value, and leaves the other lock alone', async () => {
    const key = ns('bounded')
    await srv.cli('SET', lockOf(key), 'another-instance', 'PX', 10_000)
    const t0 = performance.now()
    expect(await a.cache.wrap(key, 10_000, async () => 'mine', { waitMs: 200 })).toBe('mine')
    expect(since(t0)).toBeGreaterThanOrEqual(195)
    expect(since(t0)).toBeLessThan(1000)
    expect(await srv.cli('GET', key)).toBe('"mine"')
    expect(await srv.cli('GET', lockOf(key))).toBe('another-instance')
    // waitMs: 0 does not wait at all
    const other = ns('no-wait')
    await srv.cli('SET', lockOf(other), 'another-instance', 'PX', 10_000)
    const t1 = performance.now()
    expect(await a.cache.wrap(other, 10_000, async () => 'now', { waitMs: 0 })).toBe('now')
    expect(since(t1)).toBeLessThan(300)
  })

  test('a loader that hangs past lockMs holds back neither this process nor another instance', async () => {
    const key = ns('hung')
    let release!: () => void
    const hung = a.cache.wrap(key, 10_000, () => new Promise<string>((r) => (release = () => r('late'))), { lockMs: 200 })
    await eventually(async () => expect(release).toBeDefined(), 1000, 5) // the loader runs
    await sleep(300)
    const t0 = performance.now()
    expect(await a.cache.wrap(key, 10_000, async () => 'fresh here', { lockMs: 200 })).toBe('fresh here')
    expect(since(t0)).toBeLessThan(200)
    expect(await srv.cli('GET', key)).toBe('"fresh here"')
    release()
    expect(await hung).toBe('late') // its callers get their value; it is not cached (its lock expired)
    expect(await srv.cli('GET', key)).toBe('"fresh here"')
    const other = ns('hung-2')
    const [loading, started] = signal()
    const stuck = a.cache.wrap(
      other,
      10_000,
      () => {
        started()
        return new Promise<string>((r) => setTimeout(() => r('late'), 600))
      },
      { lockMs: 200 },
    )
    await loading
    const t1 = performance.now()
    expect(await b.cache.wrap(other, 10_000, async () => 'from b', { lockMs: 200 })).toBe('from b')
    expect(since(t1)).toBeGreaterThan(100) // b waited for the lock to expire,
    expect(since(t1)).toBeLessThan(500) // not for the load to end
    expect(await stuck).toBe('late')
    expect(await srv.cli('GET', other)).toBe('"from b"')
  })

  test('the lock of an instance that died expires after lockMs, and a waiter takes it over', async () => {
    const key = ns('dead-owner')
    await srv.cli('SET', lockOf(key), 'dead-instance', 'PX', 300)
    const t0 = performance.now()
    expect(await a.cache.wrap(key, 10_000, async () => 'took over')).toBe('took over') // default waitMs: 5000
    expect(since(t0)).toBeGreaterThan(200) // the lock had about 300 ms left
    expect(since(t0)).toBeLessThan(1000)
    expect(await srv.cli('GET', key)).toBe('"took over"')
    expect(await srv.cli('EXISTS', lockOf(key))).toBe('0')
  })
})

describe('errors and values JSON cannot hold', () => {
  test('a loader error reaches every caller that shared the run, is not cached, and releases the lock', async () => {
    const key = ns('fail')
    const boom = new Error('database unavailable')
    let runs = 0
    const failing = async () => {
      runs++
      await sleep(20)
      throw boom
    }
    const settled = await Promise.allSettled(Array.from({ length: 50 }, () => a.cache.wrap(key, 10_000, failing)))
    expect(runs).toBe(1)
    expect(settled.every((s) => s.status === 'rejected' && s.reason === boom)).toBe(true)
    await eventuallyGone(key)
    expect(await a.cache.wrap(key, 10_000, async () => 'recovered')).toBe('recovered')
    const syncThrow = ns('fail-sync')
    await expect(a.cache.wrap(syncThrow, 10_000, () => { throw boom })).rejects.toBe(boom)
    await eventuallyGone(syncThrow)
  })

  test('when the owner’s loader fails, a waiting instance takes over at once rather than after lockMs', async () => {
    const key = ns('fail-other')
    const [loading, started] = signal()
    const owner = a.cache.wrap(key, 10_000, async () => {
      started()
      await sleep(150)
      throw new Error('a failed')
    })
    owner.catch(() => {})
    await loading
    const t0 = performance.now()
    const waiter = b.cache.wrap(key, 10_000, async () => 'from b')
    await expect(owner).rejects.toThrow('a failed')
    expect(await waiter).toBe('from b')
    expect(since(t0)).toBeLessThan(1000) // lockMs is 5000
    expect(await srv.cli('GET', key)).toBe('"from b"')
  })

  test('BigInt, a cycle, undefined, a function: ERR_INVALID_ARGUMENT, nothing stored, lock released', async () => {
    const cycle: Record<string, unknown> = { name: 'loop' }
    cycle.self = cycle
    const values: Array<[string, unknown, RegExp]> = [
      ['bigint', 10n, /BigInt/],
      ['nested-bigint', { amount: 10n }, /BigInt/],
      ['cycle', cycle, /circular/i],
      ['undefined', undefined, /JSON cannot hold/],
      ['function', () => 1, /JSON cannot hold/],
    ]
    for (const [name, value, why] of values) {
      const key = ns(name)
      const loader = jest.fn(async () => value)
      const calls = [a.cache.wrap(key, 10_000, loader), a.cache.wrap(key, 10_000, loader)]
      for (const call of calls) {
        expect(await rejection(call)).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(why) })
      }
      expect(loader).toHaveBeenCalledTimes(1)
      await eventuallyGone(key)
    }
  })
})

describe('invalidation', () => {
  test('invalidate() from another instance during a load: its callers get the value, but it is not cached', async () => {
    const key = ns('inv')
    let version = 1
    let reading!: () => void
    const read = new Promise<void>((r) => (reading = r))
    const loader = jest.fn(async () => {
      const seen = version // what the database held when the loader read it
      reading()
      await sleep(100)
      return { version: seen }
    })
    const during = a.cache.wrap(key, 10_000, loader)
    await read
    version = 2 // the database changes, then the writer invalidates
    expect(await b.cache.invalidate(key)).toBe(false)
    expect(await during).toEqual({ version: 1 })
    expect(await a.exists(key)).toBe(0) // the stale read was not stored
    expect(await a.cache.wrap(key, 10_000, loader)).toEqual({ version: 2 })
    expect(loader).toHaveBeenCalledTimes(2)
    expect(await a.cache.invalidate(key)).toBe(true)
    expect(await a.exists(key, lockOf(key))).toBe(0)
  })

  test('in one process, calls after invalidate() do not join a call made before it', async () => {
    const key = ns('inv-local')
    let version = 1
    let reading: (() => void) | undefined
    const read = new Promise<void>((r) => (reading = r))
    const loader = async () => {
      const seen = version
      reading?.()
      await sleep(100)
      return seen
    }
    const before = a.cache.wrap(key, 10_000, loader)
    await read
    version = 2
    await a.cache.invalidate(key)
    const after = a.cache.wrap(key, 10_000, loader)
    expect(await before).toBe(1)
    expect(await after).toBe(2)
    expect(await srv.cli('GET', key)).toBe('2')
  })
})

describe('refresh-ahead', () => {
  test('a hit near expiry answers from the cache and reloads in the background, once across two instances', async () => {
    const key = ns('refresh')
    let version = 0
    const runs = { a: 0, b: 0 }
    const loaderOf = (who: 'a' | 'b') => async () => {
      runs[who]++
      version++
      const v = version
      await sleep(300)
      return { version: v }
    }
    const opts = { refreshAheadMs: 1800 }
    expect(await a.cache.wrap(key, 2000, loaderOf('a'), opts)).toEqual({ version: 1 })
    await sleep(300) // about 1700 ms left: below refreshAheadMs
    const t0 = performance.now()
    const hits = await Promise.all([
      ...Array.from({ length: 100 }, () => a.cache.wrap(key, 2000, loaderOf('a'), opts)),
      ...Array.from({ length: 100 }, () => b.cache.wrap(key, 2000, loaderOf('b'), opts)),
    ])
    expect(since(t0)).toBeLessThan(200) // answered without waiting for the 300 ms loader
    expect(hits.every((h) => h.version === 1)).toBe(true)
    await eventually(async () => expect(JSON.parse(await srv.cli('GET', key))).toEqual({ version: 2 }), 2000, 10)
    expect(runs.a + runs.b).toBe(2) // the first load and one refresh, in all
    expect(Number(await srv.cli('PTTL', key))).toBeGreaterThan(1800) // a fresh TTL
    expect(await b.cache.wrap(key, 2000, loaderOf('b'), opts)).toEqual({ version: 2 })
    expect(await srv.cli('EXISTS', lockOf(key))).toBe('0')
  })

  test('a value that expires during its refresh: callers wait for the refresh rather than load again', async () => {
    const key = ns('refresh-expire')
    let runs = 0
    const loader = async () => {
      runs++
      const v = runs
      if (v > 1) await sleep(600) // the refresh outlasts the value
      return { v }
    }
    const opts = { refreshAheadMs: 450 }
    expect(await a.cache.wrap(key, 500, loader, opts)).toEqual({ v: 1 })
    await sleep(100)
    expect(await a.cache.wrap(key, 500, loader, opts)).toEqual({ v: 1 }) // starts the refresh
    await eventually(async () => expect(await a.exists(key)).toBe(0), 1000, 10) // expired meanwhile
    const [here, there] = await Promise.all([a.cache.wrap(key, 500, loader, opts), b.cache.wrap(key, 500, loader, opts)])
    expect(here).toEqual({ v: 2 })
    expect(there).toEqual({ v: 2 })
    expect(runs).toBe(2)
  })

  test('a failed refresh keeps serving the cached value and leaves no lock', async () => {
    const key = ns('refresh-fail')
    const opts = { refreshAheadMs: 900 }
    await a.cache.wrap(key, 1000, async () => 'cached', opts)
    await sleep(150)
    const failing = jest.fn(async () => {
      throw new Error('refresh failed')
    })
    expect(await a.cache.wrap(key, 1000, failing, opts)).toBe('cached')
    await eventually(async () => expect(failing).toHaveBeenCalledTimes(1), 1000, 5)
    await eventually(async () => expect(await srv.cli('EXISTS', lockOf(key))).toBe('0'), 1000, 5)
    expect(await a.cache.wrap(key, 1000, failing, opts)).toBe('cached')
    expect(await srv.cli('GET', key)).toBe('"cached"')
  })
})

describe('when Redis cannot answer', () => {
  realRedisTest('the loader runs in this process, once per key for concurrent callers, and nothing is cached', async () => {
    const down = await startRedis()
    const c = await connect({ url: down.url, connectTimeoutMs: 500, commandTimeoutMs: 500 })
    await down.kill()
    let runs = 0
    const key = ns('down')
    const results = await Promise.all(
      Array.from({ length: 100 }, () =>
        c.cache.wrap(key, 10_000, async () => {
          runs++
          await sleep(20)
          return { fresh: true }
        }),
      ),
    )
    expect(runs).toBe(1)
    expect(results.every((r) => r.fresh === true)).toBe(true)
    expect(await rejection(c.get(key))).toMatchObject({ code: expect.stringMatching(/ERR_CONNECTION|ERR_TIMEOUT/) })
  })
})
