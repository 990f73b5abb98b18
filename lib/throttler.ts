// `@atlas-erp/redis/throttler`: a @nestjs/throttler 6 storage shared by every API
// instance. Only types come from '@nestjs/throttler': importing this file never
// loads Nest.
import type { ThrottlerStorage } from '@nestjs/throttler'
import type { RedisClient } from './client'
import { invalidArgument } from './errors'
import { RATE_LIMIT_CACHE_SIZE, deniedCache, hashTag, isUnavailable, runPaced, type UnavailablePolicy } from './ratelimit'

export interface RedisThrottlerStorageOptions {
  /**
   * What `increment` answers when Redis is unreachable or slower than the
   * client's `commandTimeoutMs`: `'allow'` (default) lets the request through,
   * `'deny'` answers blocked (the guard responds 429 with `Retry-After: 1`).
   */
  onUnavailable?: UnavailablePolicy
  /** Prepended to this storage's Redis keys (after the client's own keyPrefix); default `'throttler:'`. */
  prefix?: string
}

/** What `increment` resolves (the package's index does not export this interface). */
export type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>

/** A record answered by the fail policy carries `reason: 'unavailable'`. */
export interface RedisThrottlerStorageRecord extends ThrottlerStorageRecord {
  reason?: 'unavailable'
}

/** How long an idle record stays after its window, block and hits are all over (ms). */
const IDLE_GRACE_MS = 60_000
/** `timeToBlockExpire` (seconds) of a denial made by `onUnavailable: 'deny'`. */
const UNAVAILABLE_RETRY_S = 1
const OPTION_KEYS = new Set(['onUnavailable', 'prefix'])

/**
 * A blocked key as the server last answered it. Until `min(e, until)` (server
 * clock) nothing changes in Redis for it but the passing of time, so the answer
 * is computed here, exactly as the script would.
 */
interface Blocked {
  /** Add to performance.now() for the server clock (rounded up: never behind it). */
  offset: number
  /** expiresAt of the record (server ms). */
  e: number
  /** The block's end, or (blockDuration <= 0) the first hit's expiry (server ms). */
  until: number
  /** blockDuration > 0: the live hits' expiries, ascending; they run out one by one. */
  hits?: number[]
  /** Index of the first hit not yet expired. */
  first: number
  /** blockDuration <= 0: the constant totalHits of the answer. */
  total: number
}

/**
 * `ThrottlerStorage` for @nestjs/throttler 6 in Redis, with the answers of the
 * package's default in-memory `ThrottlerStorageService`: each hit expires on
 * its own `ttl` after it was made (a sliding log), a key over its limit is
 * blocked for `blockDuration` during which hits are not counted, and counting
 * starts afresh when the block ends. One EVALSHA round trip per call, the Redis
 * server's clock, keys of one call in one cluster slot. A blocked key is then
 * answered from memory, as the script would answer it, until its block or its
 * window ends (`stats().rateLimitCacheHits` counts these calls).
 *
 * ```ts
 * ThrottlerModule.forRootAsync({
 *   inject: [RedisService],                      // from RedisModule (@atlas-erp/redis/nest)
 *   useFactory: (redis: RedisService) => ({
 *     throttlers: [{ ttl: 60_000, limit: 100 }],
 *     storage: new RedisThrottlerStorage(redis),   // or a RedisClient
 *   }),
 * })
 * ```
 */
export class RedisThrottlerStorage implements ThrottlerStorage {
  private readonly onUnavailable: UnavailablePolicy
  private readonly prefix: string
  /** Blocked keys answered without a round trip (bounded, least recently used out). */
  private readonly blocked = new Map<string, Blocked>()

  private readonly client: RedisClient

  /** `redis`: a `RedisClient`, or the `RedisService` of `@atlas-erp/redis/nest` (its `client` is used). */
  constructor(redis: RedisClient | { readonly client: RedisClient }, options: RedisThrottlerStorageOptions = {}) {
    const client = isClient(redis) ? redis : isClient((redis as { client?: unknown } | null)?.client) ? (redis as { client: RedisClient }).client : undefined
    if (client === undefined) {
      throw invalidArgument('RedisThrottlerStorage: the first argument must be a RedisClient (or a RedisService)')
    }
    this.client = client
    if (options === null || typeof options !== 'object') throw invalidArgument('RedisThrottlerStorage: options must be an object')
    for (const k of Object.keys(options)) {
      if (!OPTION_KEYS.has(k)) throw invalidArgument(`RedisThrottlerStorage: unknown option ${JSON.stringify(k)}`)
    }
    const policy = options.onUnavailable ?? 'allow'
    if (policy !== 'allow' && policy !== 'deny') {
      throw invalidArgument(`RedisThrottlerStorage: onUnavailable must be 'allow' or 'deny'`)
    }
    if (options.prefix !== undefined && typeof options.prefix !== 'string') {
      throw invalidArgument('RedisThrottlerStorage: prefix must be a string')
    }
    this.onUnavailable = policy
    this.prefix = options.prefix ?? 'throttler:'
  }

  /**
   * `ttl` and `blockDuration` in milliseconds; the record's times in seconds,
   * rounded up, as the guard expects.
   */
  async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<RedisThrottlerStorageRecord> {
    if (typeof key !== 'string' || key.length === 0) throw invalidArgument('increment(): key must be a non-empty string')
    if (typeof throttlerName !== 'string') throw invalidArgument('increment(): throttlerName must be a string')
    if (!isFiniteNumber(ttl)) throw invalidArgument('increment(): ttl must be a finite number')
    if (!isFiniteNumber(limit)) throw invalidArgument('increment(): limit must be a finite number')
    if (!isFiniteNumber(blockDuration)) throw invalidArgument('increment(): blockDuration must be a finite number')
    const id = `${key}\n${throttlerName}\n${ttl}\n${limit}\n${blockDuration}`
    const cached = this.blocked.get(id)
    if (cached !== undefined) {
      const answer = this.answerBlocked(id, cached)
      if (answer !== undefined) return answer
    }
    const record = `${this.prefix}${hashTag(key)}`
    const sent = performance.now()
    let reply: Array<number | string>
    try {
      reply = (await runPaced(this.client, 'throttle', [record, `${record}:${throttlerName}`], [
        ttl,
        limit,
        blockDuration,
        IDLE_GRACE_MS,
        throttlerName,
      ])) as Array<number | string>
    } catch (e) {
      if (!isUnavailable(e)) throw e
      const allow = this.onUnavailable === 'allow'
      return {
        totalHits: allow ? 0 : limit + 1,
        timeToExpire: Math.max(0, Math.ceil(ttl / 1000)),
        isBlocked: !allow,
        timeToBlockExpire: allow ? 0 : UNAVAILABLE_RETRY_S,
        reason: 'unavailable',
      }
    }
    const answer = {
      totalHits: reply[0] as number,
      timeToExpire: reply[1] as number,
      isBlocked: reply[2] === 1,
      timeToBlockExpire: reply[3] as number,
    }
    if (reply.length > 4) this.rememberBlocked(id, sent, reply, blockDuration > 0)
    return answer
  }

  private rememberBlocked(id: string, sent: number, reply: Array<number | string>, withHits: boolean): void {
    const entry: Blocked = {
      // the script ran after `sent`: this offset puts our estimate at or after the server's clock
      offset: Number(reply[4]) + 1 - sent,
      e: Number(reply[5]),
      until: Number(reply[6]),
      hits: withHits ? reply.slice(7).map(Number) : undefined,
      first: 0,
      total: reply[0] as number,
    }
    this.blocked.delete(id)
    this.blocked.set(id, entry)
    if (this.blocked.size > RATE_LIMIT_CACHE_SIZE) this.blocked.delete(this.blocked.keys().next().value as string)
  }

  /** The script's answer for a remembered blocked key, or undefined when Redis must be asked. */
  private answerBlocked(id: string, b: Blocked): RedisThrottlerStorageRecord | undefined {
    const now = Math.floor(performance.now() + b.offset) // the server clock, in whole ms like the script's
    if (now >= b.e || now >= b.until) {
      // a new window or the end of the block changes the record: the script decides
      this.blocked.delete(id)
      return undefined
    }
    this.blocked.delete(id) // most recently used last
    this.blocked.set(id, b)
    let total = b.total
    if (b.hits !== undefined) {
      while (b.first < b.hits.length && b.hits[b.first] <= now) b.first++ // pruneExpiredHits
      total = b.hits.length - b.first
    }
    deniedCache(this.client).hits++
    return {
      totalHits: total,
      timeToExpire: Math.ceil((b.e - now) / 1000),
      isBlocked: true,
      timeToBlockExpire: Math.ceil((b.until - now) / 1000),
    }
  }
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v)
}

function isClient(v: unknown): v is RedisClient {
  return v !== null && typeof v === 'object' && typeof (v as RedisClient).runScript === 'function'
}
