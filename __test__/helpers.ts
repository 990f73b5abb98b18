// Shared helpers for the core-client specs (not a spec file itself).
import { RedisClient } from '../lib'
import type { ConnectOptions } from '../lib'

/**
 * ATLAS_TEST_BACKEND=memory: startRedis() gives stores of the embedded memory://
 * backend instead of redis-server processes (the `memory` jest project).
 */
export const onMemoryBackend = process.env.ATLAS_TEST_BACKEND === 'memory'

/**
 * A test that needs a redis-server process — one it stops, kills, pauses or
 * restarts, or one started as a cluster node: skipped on the memory backend,
 * where there is no process and nothing to fail.
 */
export const realRedisTest: jest.It = onMemoryBackend ? test.skip : test

/** Clients opened by a spec file; `closeAll()` closes them (afterEach/afterAll). */
const opened = new Set<RedisClient>()

export async function connect(options?: string | ConnectOptions): Promise<RedisClient> {
  const c = await RedisClient.connect(options)
  opened.add(c)
  return c
}

/** Registers a client made elsewhere so that closeAll() closes it too. */
export function track(c: RedisClient): RedisClient {
  opened.add(c)
  return c
}

/** Closes every tracked client; a close that hangs fails the hook instead of the whole run. */
export async function closeAll(): Promise<void> {
  const all = [...opened]
  opened.clear()
  await Promise.all(all.map((c) => withTimeout(c.close(), 5000, 'close() did not resolve within 5 s')))
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Rejects with `message` if `p` has not settled within `ms` (and never leaves a timer behind). */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

/**
 * Connects expecting a failure: resolves the rejection, or the client (tracked, so
 * closeAll() closes it) if it unexpectedly connected, which then fails `toMatchObject({ code })`.
 */
export function attempt(options?: string | ConnectOptions): Promise<any> {
  return RedisClient.connect(options).then((c) => track(c), (e) => e)
}

/** Settles `p` and returns what it rejected with (fails when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    const v = await p
    throw new Error(`expected a rejection, got ${describe(v)}`)
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('expected a rejection')) throw e
    return e as { code?: string; message: string }
  }
}

/** How long `p` takes to settle, and how. */
export async function timed<T>(p: Promise<T>): Promise<{ ms: number; value?: T; error?: any }> {
  const start = process.hrtime.bigint()
  try {
    const value = await p
    return { ms: Number(process.hrtime.bigint() - start) / 1e6, value }
  } catch (error) {
    return { ms: Number(process.hrtime.bigint() - start) / 1e6, error }
  }
}

/** Polls `fn` until it resolves without throwing, or `ms` passes (then rethrows its last error). */
export async function eventually<T>(fn: () => Promise<T>, ms: number, every = 100): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      return await fn()
    } catch (e) {
      if (Date.now() > deadline) throw e
      await sleep(every)
    }
  }
}

function describe(v: unknown): string {
  try {
    return typeof v === 'string' ? JSON.stringify(v) : String(v)
  } catch {
    return typeof v
  }
}

/** mulberry32: a small seeded PRNG, so the fuzz cases are the same on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A unique key namespace per test, so tests on one server never see each other's keys. */
let seq = 0
export function ns(name: string): string {
  seq += 1
  return `t${seq}:${name}:`
}
