// `client.cache`: read-through caching in Redis. `wrap(key, ttlMs, loader)` runs
// the loader once per key per process (callers of a key in flight share one
// promise) and, across instances, once per key under a short load lock: the
// instance that takes the lock loads and stores, the others wait for its value.
// See docs/caching.md. Installs `client.cache` on RedisClient.
import { randomBytes } from 'node:crypto'
import { checkNonEmptyString, checkOptions, isInt, show, showReply } from '../core/args'
import type { RedisClient } from '../core/client'
import { ErrorCode, RedisError, argumentError, invalidArgument, isUnavailable } from '../core/errors'
import { extendClient } from '../core/extend'

declare module '../core/client' {
  interface RedisClient {
    /**
     * Read-through caching: `wrap(key, ttlMs, loader)` runs the loader once per
     * key per process and, under a short load lock, once across instances.
     *
     * ```ts
     * const coa = await redis.cache.wrap(`coa:${tenant}`, 300_000, () => db.chartOfAccounts(tenant))
     * ```
     */
    readonly cache: RedisCache
  }
}

export interface WrapOptions {
  /**
   * Reload in the background when a hit finds less than this many ms left of
   * the key's TTL (an integer below `ttlMs`; 0, the default, is off): callers keep getting the
   * cached value at once, and the key is rewritten before it expires. Still one
   * loader run per key per process, and per key across instances (it takes the
   * load lock).
   */
  refreshAheadMs?: number
  /**
   * How long the load lock lives (ms, default 5000). Choose it above the
   * loader's usual time: a load that outlives its lock is not cached, and a
   * waiting instance may take the lock over and load as well.
   */
  lockMs?: number
  /**
   * How long a caller waits for another instance's load before it loads itself
   * (ms, default `lockMs`; 0: never wait). A lock whose owner died expires after
   * `lockMs`, and a waiter then takes it over.
   */
  waitMs?: number
}

/** Default `lockMs`. @internal */
export const DEFAULT_LOCK_MS = 5000
/** The load lock of `key`: the key with this suffix (same client keyPrefix). @internal */
export const LOCK_SUFFIX = ':wrap-lock'

/**
 * Polling for another instance's value: a quarter of the time waited so far,
 * 2 to 50 ms apart, so a waiter sees a quick load within a few ms of its store
 * and a slow one costs a poll per 50 ms.
 */
const POLL_MIN_MS = 2
const POLL_MAX_MS = 50
const OPTION_KEYS = new Set(['refreshAheadMs', 'lockMs', 'waitMs'])

interface Resolved {
  refreshAheadMs: number
  lockMs: number
  waitMs: number
}

type Loader<T> = () => T | Promise<T>

/** Tokens name a lock's owner: this process' random id and a counter. */
const PROCESS_ID = randomBytes(12).toString('base64url')
let tokens = 0
function newToken(): string {
  tokens = (tokens + 1) % Number.MAX_SAFE_INTEGER
  return `${PROCESS_ID}.${tokens}`
}

/**
 * `client.cache`. Values are stored as JSON under the key itself (with the
 * client's keyPrefix), so every instance — and any other reader — sees them.
 */
export class RedisCache {
  /** Calls in flight, by key: later callers of a key join the first one's promise. */
  private readonly inflight = new Map<string, Promise<unknown>>()
  /** Background refreshes in flight, by key (one at a time per key). */
  private readonly refreshes = new Map<string, Promise<void>>()

  /** @internal Use `client.cache`. */
  constructor(private readonly client: RedisClient) {}

  /**
   * The cached value of `key`, or the loader's, stored for `ttlMs`.
   *
   * ```ts
   * const accounts = await redis.cache.wrap(`coa:${tenant}`, 300_000, () => db.chartOfAccounts(tenant))
   * ```
   *
   * - Callers of one key while a call is in flight share that call: one GET,
   *   or one loader run, per key per process. They share the resolved object
   *   too: treat it as read-only. A loader still running after `lockMs` no
   *   longer holds later callers back: they start their own call.
   * - On a miss, one instance takes the key's load lock (`SET … NX PX lockMs`),
   *   loads and stores; the others wait for its value (at most `waitMs`, then
   *   they load themselves).
   * - Values travel as JSON: every caller, hit or miss, gets `JSON.parse` of
   *   what was stored (a Date comes back as a string). A value JSON cannot hold
   *   — a BigInt, a cycle, `undefined`, a function — rejects with
   *   `ERR_INVALID_ARGUMENT` and is not stored.
   * - A loader's error rejects the callers that shared the run and is not cached:
   *   the lock is released, and the next caller loads again.
   * - When Redis cannot answer (unreachable, or slower than `commandTimeoutMs`),
   *   the loader runs here, once per key per process, and its value is not cached.
   */
  wrap<T>(key: string, ttlMs: number, loader: Loader<T>, options?: WrapOptions): Promise<T> {
    let o: Resolved
    try {
      o = check(key, ttlMs, loader, options)
    } catch (e) {
      return Promise.reject(argumentError(e, 'cache.wrap()'))
    }
    const joined = this.inflight.get(key)
    if (joined !== undefined) return joined as Promise<T>
    let p: Promise<T> | undefined
    const detach = () => {
      if (this.inflight.get(key) === p) this.inflight.delete(key)
    }
    const run = async (): Promise<T> => {
      // A load that outlives its lock no longer holds back later callers of this
      // process (other instances take the expired lock over): they start afresh.
      const timer = setTimeout(detach, o.lockMs)
      timer.unref()
      try {
        return await loader()
      } finally {
        clearTimeout(timer)
      }
    }
    p = this.read(key, ttlMs, run, o).finally(detach)
    this.inflight.set(key, p)
    return p
  }

  /**
   * Deletes the cached value of `key` and its load lock; resolves whether a
   * value was cached. A load in flight anywhere when this runs stores nothing
   * (its lock is gone), and callers after it do not join calls made before it:
   * call it after the database write that makes the value stale.
   */
  invalidate(key: string): Promise<boolean> {
    try {
      checkNonEmptyString(key, 'cache.invalidate()')
    } catch (e) {
      return Promise.reject(argumentError(e, 'cache.invalidate()'))
    }
    this.inflight.delete(key)
    this.refreshes.delete(key)
    const value = this.client.command('UNLINK', key)
    const lock = this.client.command('UNLINK', this.client.siblingKey(key, LOCK_SUFFIX))
    return Promise.all([value, lock]).then(([n]) => Number(n) > 0)
  }

  // ---- the steps -------------------------------------------------------------------------

  private async read<T>(key: string, ttlMs: number, loader: Loader<T>, o: Resolved): Promise<T> {
    const c = this.client
    let hit: string | null
    try {
      if (o.refreshAheadMs > 0) {
        // GET and PTTL go out in the same batch: still one round trip.
        const [value, pttl] = await Promise.all([c.get(key), c.pttl(key)])
        hit = value
        if (value !== null && pttl >= 0 && pttl < o.refreshAheadMs) this.refresh(key, ttlMs, loader, o)
      } else {
        hit = await c.get(key)
      }
    } catch (e) {
      if (isUnavailable(e)) return this.loadHere(key, loader)
      throw e
    }
    if (hit !== null) return parse(key, hit)
    return this.miss(key, ttlMs, loader, o)
  }

  private async miss<T>(key: string, ttlMs: number, loader: Loader<T>, o: Resolved): Promise<T> {
    // A refresh of this key in flight (here or elsewhere) holds the lock: it is
    // waited for like any other load, so the wait is bounded by its lock too.
    const lock = this.client.siblingKey(key, LOCK_SUFFIX)
    const token = newToken()
    const start = performance.now()
    const deadline = start + o.waitMs
    for (;;) {
      let reply: unknown
      try {
        reply = await this.client.runScript('cache_lock', [key, lock], [token, o.lockMs])
      } catch (e) {
        if (isUnavailable(e)) return this.loadHere(key, loader)
        throw e
      }
      if (!Array.isArray(reply)) throw new RedisError(ErrorCode.Reply, `cache_lock script: unexpected reply ${showReply(reply)}`)
      const state = Number(reply[0])
      if (state === 1) return parse(key, String(reply[1]))
      if (state === 2) return this.loadLocked(key, lock, token, ttlMs, loader)
      // Another caller holds the lock: poll for its value, waking no later than the lock's expiry.
      const now = performance.now()
      const left = deadline - now
      if (left <= 0) return this.loadUnlocked(key, ttlMs, loader)
      const pause = Math.min(POLL_MAX_MS, Math.max(POLL_MIN_MS, (now - start) / 4))
      const lockLeft = Number(reply[1])
      await sleep(Math.max(1, Math.min(pause, left, lockLeft > 0 ? lockLeft : pause)))
    }
  }

  /** The lock is ours: load, store if the lock is still ours, release it. */
  private async loadLocked<T>(key: string, lock: string, token: string, ttlMs: number, loader: Loader<T>): Promise<T> {
    let json: string
    try {
      json = toJson(key, await loader())
    } catch (e) {
      this.unlock(lock, token)
      throw e
    }
    try {
      await this.client.runScript('cache_store', [key, lock], [token, json, ttlMs])
    } catch {
      // Not cached (Redis went away, or refused the write): the value itself is good.
      this.unlock(lock, token)
    }
    return JSON.parse(json) as T
  }

  /** The owner of the lock took longer than `waitMs`: load here, store unless a value arrived. */
  private async loadUnlocked<T>(key: string, ttlMs: number, loader: Loader<T>): Promise<T> {
    const json = toJson(key, await loader())
    try {
      await this.client.set(key, json, { ttlMs, nx: true })
    } catch {
      // Not cached: the value itself is good.
    }
    return JSON.parse(json) as T
  }

  /** Redis cannot answer: the loader's value, not cached. */
  private async loadHere<T>(key: string, loader: Loader<T>): Promise<T> {
    return JSON.parse(toJson(key, await loader())) as T
  }

  private refresh<T>(key: string, ttlMs: number, loader: Loader<T>, o: Resolved): void {
    if (this.refreshes.has(key)) return
    let p: Promise<void> | undefined
    const done = () => {
      if (this.refreshes.get(key) === p) this.refreshes.delete(key)
    }
    // A refresh that outlives its lock does not block the next one.
    const timer = setTimeout(done, o.lockMs)
    timer.unref()
    p = this.refreshOnce(key, ttlMs, loader, o).finally(() => {
      clearTimeout(timer)
      done()
    })
    this.refreshes.set(key, p)
  }

  /**
   * Takes the load lock (or leaves the refresh to the instance that has it),
   * loads and stores. A failure is dropped: the cached value serves until it
   * expires, then the next caller loads in the foreground and sees the error.
   * Never rejects.
   */
  private async refreshOnce<T>(key: string, ttlMs: number, loader: Loader<T>, o: Resolved): Promise<void> {
    const lock = this.client.siblingKey(key, LOCK_SUFFIX)
    const token = newToken()
    try {
      if (!(await this.client.set(lock, token, { nx: true, ttlMs: o.lockMs }))) return
    } catch {
      return
    }
    let json: string
    try {
      json = toJson(key, await loader())
    } catch {
      this.unlock(lock, token)
      return
    }
    try {
      await this.client.runScript('cache_store', [key, lock], [token, json, ttlMs])
    } catch {
      this.unlock(lock, token)
    }
  }

  /** Releases the lock if it is still ours; if that fails, it expires after lockMs. */
  private unlock(lock: string, token: string): void {
    this.client.runScript('cache_unlock', [lock], [token]).catch(() => {})
  }
}

/** The client's RedisCache, in its `featureState`. */
const CACHE = Symbol('caching.cache')

extendClient({
  get cache(): RedisCache {
    return this.featureState(CACHE, () => new RedisCache(this))
  },
})

// ---- helpers -------------------------------------------------------------------------------

function check(key: unknown, ttlMs: unknown, loader: unknown, options: unknown): Resolved {
  checkNonEmptyString(key, 'cache.wrap()')
  if (!isInt(ttlMs, 1)) throw invalidArgument(`cache.wrap(): ttlMs must be a positive integer, got ${show(ttlMs)}`)
  if (typeof loader !== 'function') throw invalidArgument(`cache.wrap(): loader must be a function, got ${show(loader)}`)
  if (options === undefined) return { refreshAheadMs: 0, lockMs: DEFAULT_LOCK_MS, waitMs: DEFAULT_LOCK_MS }
  const opts = checkOptions('cache.wrap()', options, OPTION_KEYS)
  const { refreshAheadMs = 0, lockMs = DEFAULT_LOCK_MS } = opts
  const waitMs = opts.waitMs ?? lockMs
  if (!isInt(refreshAheadMs, 0)) {
    throw invalidArgument(`cache.wrap(): refreshAheadMs must be a non-negative integer (0: off), got ${show(refreshAheadMs)}`)
  }
  if ((refreshAheadMs as number) >= ttlMs) {
    throw invalidArgument(`cache.wrap(): refreshAheadMs (${refreshAheadMs}) must be below ttlMs (${ttlMs})`)
  }
  if (!isInt(lockMs, 1)) throw invalidArgument(`cache.wrap(): lockMs must be a positive integer, got ${show(lockMs)}`)
  if (!isInt(waitMs, 0)) throw invalidArgument(`cache.wrap(): waitMs must be a non-negative integer, got ${show(waitMs)}`)
  return { refreshAheadMs: refreshAheadMs as number, lockMs, waitMs }
}

/** JSON for Redis, or ERR_INVALID_ARGUMENT for a value JSON cannot hold. */
function toJson(key: string, value: unknown): string {
  let json: string | undefined
  try {
    json = JSON.stringify(value)
  } catch (e) {
    // BigInt ("Do not know how to serialize a BigInt"), a cycle, a throwing toJSON
    const why = String((e as Error)?.message ?? e).split('\n')[0]
    throw invalidArgument(`cache.wrap(${JSON.stringify(key)}): the loader's value cannot be stored as JSON: ${why}`)
  }
  if (json === undefined) {
    throw invalidArgument(`cache.wrap(${JSON.stringify(key)}): the loader returned ${show(value)}, which JSON cannot hold`)
  }
  return json
}

function parse<T>(key: string, json: string): T {
  try {
    return JSON.parse(json) as T
  } catch {
    throw new RedisError(ErrorCode.Reply, `cache.wrap(${JSON.stringify(key)}): the cached value is not JSON (was it written by something else?)`)
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
