// `@atlas-erp/redis/throttler`: a @nestjs/throttler 6 storage shared by every API
// instance. Only types come from '@nestjs/throttler': importing this file never
// loads Nest.
import type { ThrottlerStorage } from '@nestjs/throttler'
import '../features' // a package entry: the client it is given has every feature
import { checkOptions, clientArg, isFiniteNumber, showReply } from '../core/args'
import type { RedisClient } from '../core/client'
import { ErrorCode, RedisError, invalidArgument, isUnavailable } from '../core/errors'
import { hashTag } from '../core/hash-tag'
import { PACER_LIMITS, ScriptPacer, type PacerLimits } from '../core/pacer'
import { slotTag } from '../core/binding'
import { RATE_LIMIT_CACHE_SIZE, type UnavailablePolicy } from './ratelimit'
import type * as GuardModule from './throttler-guard'

export interface RedisThrottlerStorageOptions {
  /**
   * What `increment` answers when Redis is unreachable or slower than the
   * client's `commandTimeoutMs`: `'allow'` (default) lets the request through,
   * `'deny'` answers blocked (the guard responds 429 with `Retry-After: 1`).
   */
  onUnavailable?: UnavailablePolicy
  /** Prepended to this storage's Redis keys (after the client's own keyPrefix); default `'throttler:'`. */
  prefix?: string
  /**
   * The calls made in one tick run in one script call (up to 48 at a time).
   * `true` (default): in one call whatever their keys — for a standalone server
   * (or a primary with replicas). `false`: one call per cluster slot, as Redis
   * Cluster requires. Left `true` on a cluster node, the first refusal
   * (`CROSSSLOT`: nothing ran) switches the storage to one call per slot and
   * resends; set `false` to never see one.
   */
  batchAcrossSlots?: boolean
  /**
   * How long a key's record and hit lists stay in Redis once everything in them
   * is over (window, block, every hit), in ms; default 60,000. They expire
   * between one and two of these later, like the in-memory storage's sweep; an
   * expiry is pushed forward this much at a time, so a busy key's call writes
   * nothing but its hit.
   */
  idleGraceMs?: number
}

/** What `increment` resolves (the package's index does not export this interface). */
export type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>

/** A record answered by the fail policy carries `reason: 'unavailable'`. */
export interface RedisThrottlerStorageRecord extends ThrottlerStorageRecord {
  reason?: 'unavailable'
}

/** The usual answer of src/scripts/throttle.lua carries totalHits below this. */
const USUAL_HITS = 2 ** 21

/** `idleGraceMs` by default. */
const IDLE_GRACE_MS = 60_000
/** `timeToBlockExpire` (seconds) of a denial made by `onUnavailable: 'deny'`. */
const UNAVAILABLE_RETRY_S = 1
const OPTION_KEYS = new Set(['onUnavailable', 'prefix', 'batchAcrossSlots', 'idleGraceMs'])
/**
 * Increments per script call at most, and per turn of the event loop (this
 * storage's ScriptPacer budget); the rest wait for the next turn. One script
 * call stays short (~150 µs of Redis time), and with a burst split over turns,
 * Redis runs one script call while this process handles the replies of the one
 * before, where one big batch would leave each waiting for the other.
 * @internal
 */
export const THROTTLE_BATCH = 48

/** How the calls of one tick are grouped into script calls. */
const enum Grouping {
  /** One script call whatever the keys (a standalone server). */
  All = 0,
  /** One per cluster slot of the keys. */
  Slot = 1,
  /**
   * One per hash tag: after a CROSSSLOT refusal of a one-slot call, i.e. a client
   * keyPrefix with a `{` of its own, which moves the slot away from our hash tag.
   */
  Tag = 2,
}

/**
 * One throttler's increment of a request, as `incrementAll` takes them (the
 * arguments of `increment`). @internal
 */
export interface ThrottlerIncrement {
  key: string
  ttl: number
  limit: number
  blockDuration: number
  name: string
}

/** One `increment` waiting for its batch's reply. */
class Call {
  /** Resolved undefined: a later increment of a request that one before it stopped (incrementAll). */
  resolve!: (r: RedisThrottlerStorageRecord | undefined) => void
  reject!: (e: unknown) => void
  /** performance.now() of the tick it was made in (for PACER_LIMITS.maxWaitMs). */
  at = 0
  constructor(
    readonly key: string,
    /** The record's key (its hits' key is `${rec}:${name}`). */
    readonly rec: string,
    readonly ttl: number,
    readonly limit: number,
    readonly block: number,
    readonly name: string,
    /** False: the increment after this one's predecessor in one request (incrementAll); it runs only if that one did not stop it. */
    readonly starts = true,
  ) {}
}

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
 * starts afresh when the block ends. The calls made in one tick run in one
 * EVALSHA (one round trip, up to 48 calls), one after another in call order, on
 * the Redis server's clock. A blocked key is then answered from memory, as the
 * script would answer it, until its block or its window ends
 * (`stats().rateLimitCacheHits` counts these calls).
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
  private readonly grace: number
  /** Blocked keys answered without a round trip (bounded, least recently used out). */
  private readonly blocked = new Map<string, Blocked>()

  private readonly client: RedisClient
  private grouping: Grouping
  /** Calls not sent yet, in call order. */
  private queue: Call[] = []
  /** A microtask will send what this tick queued. */
  private scheduled = false
  // THROTTLE_BATCH increments per turn of the event loop, for this storage (a line
  // comment: the published types name no internal constant)
  private readonly pacer = new ScriptPacer(THROTTLE_BATCH)
  /** `flush` waits for a later turn's room. */
  private waiting = false
  /** performance.now() of the tick whose calls `queue` ends with. */
  private tickAt = 0
  /** Bounds of `queue` (the pacer's defaults; a field so that a test can lower them). @internal */
  private readonly limits: Readonly<PacerLimits> = PACER_LIMITS

  /** `redis`: a `RedisClient`, or the `RedisService` of `@atlas-erp/redis/nest` (its `client` is used). */
  constructor(redis: RedisClient | { readonly client: RedisClient }, options: RedisThrottlerStorageOptions = {}) {
    this.client = clientArg(redis, 'RedisThrottlerStorage')
    checkOptions('RedisThrottlerStorage', options, OPTION_KEYS)
    const policy = options.onUnavailable ?? 'allow'
    if (policy !== 'allow' && policy !== 'deny') {
      throw invalidArgument(`RedisThrottlerStorage: onUnavailable must be 'allow' or 'deny'`)
    }
    if (options.prefix !== undefined && typeof options.prefix !== 'string') {
      throw invalidArgument('RedisThrottlerStorage: prefix must be a string')
    }
    if (options.batchAcrossSlots !== undefined && typeof options.batchAcrossSlots !== 'boolean') {
      throw invalidArgument('RedisThrottlerStorage: batchAcrossSlots must be a boolean')
    }
    const grace = options.idleGraceMs ?? IDLE_GRACE_MS
    if (!isFiniteNumber(grace) || grace < 0) {
      throw invalidArgument('RedisThrottlerStorage: idleGraceMs must be a finite number >= 0')
    }
    this.onUnavailable = policy
    this.prefix = options.prefix ?? 'throttler:'
    this.grace = grace
    this.grouping = options.batchAcrossSlots === false ? Grouping.Slot : Grouping.All
  }

  /**
   * `ttl` and `blockDuration` in milliseconds; the record's times in seconds,
   * rounded up, as the guard expects.
   */
  increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<RedisThrottlerStorageRecord> {
    const bad = badIncrement('increment()', key, ttl, limit, blockDuration, throttlerName)
    if (bad !== undefined) return Promise.reject(bad)
    const answer = this.cachedAnswer(key, throttlerName, ttl, limit, blockDuration)
    if (answer !== undefined) return Promise.resolve(answer)
    return this.enqueue(key, ttl, limit, blockDuration, throttlerName, true) as Promise<RedisThrottlerStorageRecord>
  }

  /**
   * The increments of one request's throttlers, in order, as the guard makes
   * them one after another, stopping at the first that is blocked (or fails):
   * the ones after it are not counted and resolve undefined. With batching
   * across slots (the default), one script call for all of them (shared with
   * the other calls of the tick); otherwise one after another. Rejects with
   * the first failed increment's error, as the guard's loop would throw it.
   * @internal
   */
  incrementAll(increments: readonly ThrottlerIncrement[]): Promise<Array<RedisThrottlerStorageRecord | undefined>> {
    const n = increments.length
    for (const x of increments) {
      const bad = badIncrement('incrementAll()', x.key, x.ttl, x.limit, x.blockDuration, x.name)
      if (bad !== undefined) return Promise.reject(bad)
    }
    if (n === 0) return Promise.resolve([])
    const first = increments[0]
    const answer = this.cachedAnswer(first.key, first.name, first.ttl, first.limit, first.blockDuration)
    if (answer !== undefined) {
      // blocked, from memory: nothing after it runs
      const out: Array<RedisThrottlerStorageRecord | undefined> = new Array(n).fill(undefined)
      out[0] = answer
      return Promise.resolve(out)
    }
    // one script call per request as long as its rules stay one byte each (dispatch)
    if (this.grouping !== Grouping.All || n > THROTTLE_BATCH) return this.inTurn(increments)
    const promises = increments.map((x, i) => this.enqueue(x.key, x.ttl, x.limit, x.blockDuration, x.name, i === 0))
    return Promise.all(promises)
  }

  /** incrementAll one increment after another (one round trip each), as the stock guard makes them. */
  private async inTurn(increments: readonly ThrottlerIncrement[]): Promise<Array<RedisThrottlerStorageRecord | undefined>> {
    const out: Array<RedisThrottlerStorageRecord | undefined> = new Array(increments.length).fill(undefined)
    for (let i = 0; i < increments.length; i++) {
      const x = increments[i]
      const r = await this.increment(x.key, x.ttl, x.limit, x.blockDuration, x.name)
      out[i] = r
      if (r.isBlocked) break
    }
    return out
  }

  /** The answer for a key remembered blocked, from memory; undefined when Redis must be asked. */
  private cachedAnswer(key: string, name: string, ttl: number, limit: number, block: number): RedisThrottlerStorageRecord | undefined {
    if (this.blocked.size === 0) return undefined
    const id = blockedId(key, name, ttl, limit, block)
    const cached = this.blocked.get(id)
    return cached === undefined ? undefined : this.answerBlocked(id, cached)
  }

  /** Queues one increment for this tick's script call. */
  private enqueue(key: string, ttl: number, limit: number, block: number, name: string, starts: boolean): Promise<RedisThrottlerStorageRecord | undefined> {
    const call = new Call(key, `${this.prefix}${hashTag(key)}`, ttl, limit, block, name, starts)
    const promise = new Promise<RedisThrottlerStorageRecord | undefined>((resolve, reject) => {
      call.resolve = resolve
      call.reject = reject
    })
    if (this.queue.length >= this.limits.maxWaiting) {
      // a flood: answered at once by the fail policy rather than queued behind it
      this.failed([call], this.grouping, overloaded(`${this.queue.length} increments already wait for a turn (at most ${this.limits.maxWaiting})`))
      return promise
    }
    if (!this.scheduled) {
      this.scheduled = true
      this.tickAt = performance.now()
      queueMicrotask(this.flush)
    }
    call.at = this.tickAt
    this.queue.push(call)
    return promise
  }

  /** The end of the tick: sends what it queued, as far as this turn's room goes; the rest waits for the next turn. */
  private flush = (): void => {
    this.scheduled = false
    let q = this.queue
    // calls that waited past maxWaitMs for a turn (the oldest come first): the fail policy answers them
    const late = q.length > 0 ? performance.now() - this.limits.maxWaitMs : 0
    if (q.length > 0 && q[0].at < late) {
      let k = 0
      while (k < q.length && q[k].at < late) k++
      this.failed(q.splice(0, k), this.grouping, overloaded(`${k} increments waited more than ${this.limits.maxWaitMs} ms for a turn`))
      q = this.queue
    }
    // a request's increments go in one script call: the room ends at a request's start
    const n = requestEnd(q, 0, this.pacer.take(q.length))
    if (n < q.length && !this.waiting) {
      this.waiting = true
      this.pacer.later(this.flushLater)
    }
    if (n === 0) return
    let calls: Call[]
    if (n === q.length) {
      calls = q
      this.queue = []
    } else {
      calls = q.splice(0, n)
    }
    this.send(calls, this.grouping)
  }

  private flushLater = (): void => {
    this.waiting = false
    this.flush()
  }

  // Sends `calls` in as few script calls as `by` allows, at most THROTTLE_BATCH increments each.
  private send(calls: Call[], by: Grouping): void {
    if (by === Grouping.All) {
      if (calls.length <= THROTTLE_BATCH) {
        this.dispatch(calls, by)
        return
      }
      for (let i = 0; i < calls.length; ) {
        const end = requestEnd(calls, i, i + THROTTLE_BATCH)
        this.dispatch(calls.slice(i, end), by)
        i = end
      }
      return
    }
    const groups = new Map<number | string, Call[]>()
    for (let i = 0; i < calls.length; i++) {
      const c = calls[i]
      if (i + 1 < calls.length && !calls[i + 1].starts) {
        // a request's increments (incrementAll) may span slots: one after another
        const end = requestEnd(calls, i, i + 1)
        void this.inTurnCalls(calls.slice(i, end))
        i = end - 1
        continue
      }
      const g = by === Grouping.Slot ? slotTag(c.rec) : c.rec
      let batch = groups.get(g)
      if (batch === undefined) groups.set(g, (batch = []))
      batch.push(c)
      if (batch.length >= THROTTLE_BATCH) {
        groups.delete(g)
        this.dispatch(batch, by)
      }
    }
    for (const batch of groups.values()) this.dispatch(batch, by)
  }

  /** One script call for `calls` (grouped by `by`). */
  private dispatch(calls: Call[], by: Grouping): void {
    const n = calls.length
    const keys = new Array<string>(2 * n)
    // The distinct rules (ttl, limit, blockDuration, name) go once; each call
    // names its rule by one character (rule 1 is '\x01'), or none when all
    // have rule 1. n <= THROTTLE_BATCH keeps each character one byte in UTF-8.
    const args: Array<string | number> = [this.grace, '']
    let which: number[] | undefined
    for (let i = 0; i < n; i++) {
      const c = calls[i]
      keys[i] = c.rec
      keys[n + i] = `${c.rec}:${c.name}`
      let r = 2
      while (r < args.length && !(args[r] === c.ttl && args[r + 1] === c.limit && args[r + 2] === c.block && args[r + 3] === c.name)) r += 4
      if (r === args.length) args.push(c.ttl, c.limit, c.block, c.name)
      const rule = (r - 2) / 4 + 1
      if (rule > 1 && which === undefined) which = new Array<number>(n).fill(1)
      if (which !== undefined) which[i] = rule
    }
    if (which !== undefined) args[1] = String.fromCharCode(...which)
    // Requests of several increments (incrementAll): throttle_all.lua, which
    // takes each increment's request (1 starts one, 2 continues it) after the rules.
    let script = 'throttle'
    if (calls.some((c) => !c.starts)) {
      script = 'throttle_all'
      args.splice(2, 0, String.fromCharCode(...calls.map((c) => (c.starts ? 1 : 2))))
    }
    const sent = performance.now()
    this.client.runScript(script, keys, args).then(
      (reply) => this.settle(calls, reply, sent),
      (e) => this.failed(calls, by, e),
    )
  }

  /** Hands each call its part of the script's reply (see src/scripts/throttle.lua). */
  private settle(calls: Call[], reply: unknown, sent: number): void {
    const r = (Array.isArray(reply) ? reply : []) as Array<number | string>
    const now = r[0] // the server's clock: the reply starts with it
    let o = 1
    for (let i = 0; i < calls.length; i++) {
      const c = calls[i]
      const total = r[o]
      // the script's false: a nil reply (RESP2), or false (RESP3)
      if ((total === null || (total as unknown) === false) && !c.starts) {
        // not run: an increment of its request before it was blocked or failed
        c.resolve(undefined)
        o += 1
        continue
      }
      if (typeof total !== 'number' || typeof now !== 'number') {
        if (total === undefined || typeof now !== 'number') {
          const e = new RedisError(ErrorCode.Reply, `throttle script: unexpected reply ${showReply(reply)}`)
          for (let j = i; j < calls.length; j++) calls[j].reject(e)
          return
        }
        // this increment's redis.call failed (the others ran)
        c.reject(new RedisError(ErrorCode.Reply, String(total)))
        o += 1
        continue
      }
      if (total > 0) {
        // the usual answer: (expiresAt - now) * 2^21 + totalHits, with no block
        // ever set (or none asked for)
        const hits = total % USUAL_HITS
        c.resolve({
          totalHits: hits,
          timeToExpire: Math.ceil((total - hits) / USUAL_HITS / 1000),
          isBlocked: false,
          timeToBlockExpire: c.block > 0 ? Math.ceil(-now / 1000) : 0,
        })
        o += 1
        continue
      }
      if (total === 0) {
        c.resolve({ totalHits: r[o + 1] as number, timeToExpire: num(r[o + 2]), isBlocked: false, timeToBlockExpire: num(r[o + 3]) })
        o += 4
        continue
      }
      // blocked: totalHits comes as -1 - totalHits
      const m = r[o + 5] as number
      this.rememberBlocked(c, sent, now, r, o, m)
      c.resolve({ totalHits: -1 - total, timeToExpire: num(r[o + 1]), isBlocked: true, timeToBlockExpire: num(r[o + 2]) })
      o += 6 + m
    }
  }

  /** The script call failed as a whole: nothing ran. */
  private failed(calls: Call[], by: Grouping, e: unknown): void {
    if (isUnavailable(e)) {
      const allow = this.onUnavailable === 'allow'
      for (const c of calls) {
        c.resolve({
          totalHits: allow ? 0 : c.limit + 1,
          timeToExpire: Math.max(0, Math.ceil(c.ttl / 1000)),
          isBlocked: !allow,
          timeToBlockExpire: allow ? 0 : UNAVAILABLE_RETRY_S,
          reason: 'unavailable',
        })
      }
      return
    }
    if (by < Grouping.Tag && calls.length > 1 && (e as RedisError | null)?.serverCode === 'CROSSSLOT') {
      // A cluster node refused keys of several slots before running anything:
      // group finer from now on, and resend these calls that way.
      if (this.grouping <= by) this.grouping = by + 1
      this.send(calls, this.grouping)
      return
    }
    for (const c of calls) c.reject(e)
  }

  /** A request's calls where one script call cannot hold them: one after another, until one is blocked or fails. */
  private async inTurnCalls(calls: Call[]): Promise<void> {
    for (let i = 0; i < calls.length; i++) {
      const c = calls[i]
      let r: RedisThrottlerStorageRecord
      try {
        r = await this.increment(c.key, c.ttl, c.limit, c.block, c.name)
      } catch (e) {
        c.reject(e)
        for (let j = i + 1; j < calls.length; j++) calls[j].resolve(undefined)
        return
      }
      c.resolve(r)
      if (r.isBlocked) {
        for (let j = i + 1; j < calls.length; j++) calls[j].resolve(undefined)
        return
      }
    }
  }

  /** Remembers a blocked answer: `r[o …]` is the call's part of the reply (at the server's `now`), `m` its hit count. */
  private rememberBlocked(c: Call, sent: number, now: number, r: Array<number | string>, o: number, m: number): void {
    const id = blockedId(c.key, c.name, c.ttl, c.limit, c.block)
    let hits: number[] | undefined
    if (c.block > 0) {
      hits = new Array<number>(m)
      for (let j = 0; j < m; j++) hits[j] = Number(r[o + 6 + j])
    }
    const entry: Blocked = {
      // the script ran after `sent`: this offset puts our estimate at or after the server's clock
      offset: now + 1 - sent,
      e: Number(r[o + 3]),
      until: Number(r[o + 4]),
      hits,
      first: 0,
      total: -1 - (r[o] as number),
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
    this.client.rateLimitCacheHits++
    return {
      totalHits: total,
      timeToExpire: Math.ceil((b.e - now) / 1000),
      isBlocked: true,
      timeToBlockExpire: Math.ceil((b.until - now) / 1000),
    }
  }
}

/** The error of a bad `increment` argument, or undefined. */
function badIncrement(who: string, key: unknown, ttl: unknown, limit: unknown, block: unknown, name: unknown): RedisError | undefined {
  if (typeof key !== 'string' || key.length === 0) return invalidArgument(`${who}: key must be a non-empty string`)
  if (typeof name !== 'string') return invalidArgument(`${who}: throttlerName must be a string`)
  if (!isFiniteNumber(ttl)) return invalidArgument(`${who}: ttl must be a finite number`)
  if (!isFiniteNumber(limit)) return invalidArgument(`${who}: limit must be a finite number`)
  if (!isFiniteNumber(block)) return invalidArgument(`${who}: blockDuration must be a finite number`)
  return undefined
}

/**
 * Where a run of calls from `from` (a request's start) up to `n` ends without
 * splitting a request: `n` moved back to the start of the request it falls
 * in, or, when that is `from`, on to that request's end.
 */
function requestEnd(calls: readonly Call[], from: number, n: number): number {
  if (n >= calls.length) return calls.length
  if (n <= from || calls[n].starts) return n
  let start = n
  while (start > from && !calls[start].starts) start--
  if (start > from) return start
  let end = n
  while (end < calls.length && !calls[end].starts) end++
  return end
}

/** ERR_OVERLOADED: nothing was sent for these calls. */
function overloaded(why: string): RedisError {
  return new RedisError(ErrorCode.Overloaded, `RedisThrottlerStorage: ${why}; nothing was sent`)
}

/** A time of the script's reply: a number, or a string beyond 2^53. */
function num(v: number | string): number {
  return typeof v === 'number' ? v : Number(v)
}

/** The identity of a call's answer in the memory of blocked keys. */
function blockedId(key: string, name: string, ttl: number, limit: number, block: number): string {
  return `${key}\n${name}\n${ttl}\n${limit}\n${block}`
}

// ---- RedisThrottlerGuard ----------------------------------------------------------------------

/**
 * @nestjs/throttler's `ThrottlerGuard` with every named throttler of a request
 * counted in one script call, answering exactly as the stock guard with
 * `RedisThrottlerStorage` (see lib/ratelimit/throttler-guard.ts). Loaded on
 * first use: importing this entry for the storage alone loads no Nest package.
 *
 * ```ts
 * providers: [{ provide: APP_GUARD, useClass: RedisThrottlerGuard }]
 * ```
 */
export declare const RedisThrottlerGuard: typeof GuardModule.RedisThrottlerGuard
/** An instance of {@link RedisThrottlerGuard}. */
export type RedisThrottlerGuard = GuardModule.RedisThrottlerGuard

const lazyGuard = {
  get RedisThrottlerGuard(): typeof GuardModule.RedisThrottlerGuard {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('./throttler-guard') as typeof GuardModule).RedisThrottlerGuard
  },
}
// The getter's shape (return <identifier>.<name>) is one Node's ESM loader reads
// as a named export of this CommonJS file, so `import { RedisThrottlerGuard }` works.
Object.defineProperty(exports, 'RedisThrottlerGuard', { enumerable: true, get: function () { return lazyGuard.RedisThrottlerGuard } })
