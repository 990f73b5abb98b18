// `@atlas-erp/redis/keyv`: a Keyv store adapter (Keyv 5's KeyvStoreAdapter shape,
// which Keyv 6 still accepts) over a RedisClient, for @nestjs/cache-manager and
// anything else built on Keyv. Nothing is imported from 'keyv': it stays an
// optional peer, and this file loads without it.
import { EventEmitter } from 'node:events'
import '../features' // a package entry: the client it is given has every feature
import { checkOptions, isArray, isFiniteNumber, isInt, show } from '../core/args'
import type { RedisClient } from '../core/client'
import { checkArgs, invalidArgument } from '../core/errors'
import type { RedisValue } from '../core/types'

export interface KeyvRedisStoreOptions {
  /**
   * Keys per SCAN page hint and per UNLINK in `clear()`, and per MGET in
   * `iterator()`; default 1000.
   */
  clearBatchSize?: number
  /**
   * `disconnect()` also closes the client. Default false: the client is usually
   * shared (RedisModule closes it at shutdown, after the cache module's
   * `disconnect()` has run).
   */
  closeClient?: boolean
}

/** What Keyv reads from `store.opts`: `dialect` tells it this store can iterate. */
export interface KeyvRedisStoreOpts {
  dialect: 'redis'
  url: string
  clearBatchSize: number
  closeClient: boolean
  [other: string]: unknown
}

const OPTION_KEYS = new Set(['clearBatchSize', 'closeClient'])
const DEFAULT_BATCH = 1000

/**
 * A Keyv store in Redis.
 *
 * ```ts
 * import Keyv from 'keyv'
 * import { KeyvRedisStore } from '@atlas-erp/redis/keyv'
 *
 * const keyv = new Keyv({ store: new KeyvRedisStore(redis), namespace: 'api-cache' })
 * ```
 *
 * Keyv hands the store keys it has already namespaced (`api-cache:foo`) and values
 * it has already serialized (strings); they are stored as they are, under the
 * client's keyPrefix, with `PX` for a TTL. `clear()` deletes `<namespace>:*` only
 * (SCAN + UNLINK in batches, never FLUSHDB), and refuses to run without a
 * namespace. Multi-key calls take one round trip.
 */
export class KeyvRedisStore extends EventEmitter {
  /** Set by Keyv to its namespace (keys arrive already prefixed with it). */
  namespace?: string
  readonly opts: KeyvRedisStoreOpts

  constructor(
    readonly client: RedisClient,
    options: KeyvRedisStoreOptions = {},
  ) {
    super()
    this.opts = checkArgs('new KeyvRedisStore()', () => {
      const c = client as unknown as Record<string, unknown> | null
      if (c === null || typeof c !== 'object' || typeof c.get !== 'function' || typeof c.command !== 'function') {
        throw invalidArgument('new KeyvRedisStore(client): client must be a RedisClient')
      }
      checkOptions('new KeyvRedisStore()', options, OPTION_KEYS)
      const batch = options.clearBatchSize ?? DEFAULT_BATCH
      if (!isInt(batch, 1)) {
        throw invalidArgument(`new KeyvRedisStore(): clearBatchSize must be a positive integer, got ${show(batch)}`)
      }
      // `url` is only ever tested for the word "redis" by Keyv; it carries no address or credentials.
      return { dialect: 'redis', url: 'redis://', clearBatchSize: batch, closeClient: options.closeClient === true }
    })
  }

  /** The stored string (what Keyv serialized), or undefined. */
  async get<Value = string>(key: string): Promise<Value | undefined> {
    return ((await this.client.get(key)) ?? undefined) as Value | undefined
  }

  /** One MGET. */
  async getMany<Value = string>(keys: string[]): Promise<Array<Value | undefined>> {
    keys = keysArg(keys, 'getMany')
    if (keys.length === 0) return []
    const values = await this.client.mget(keys)
    return values.map((v) => (v ?? undefined) as Value | undefined)
  }

  /** `ttl` in ms (Keyv's unit); undefined or 0: no expiry. Resolves true. */
  async set(key: string, value: RedisValue, ttl?: number): Promise<boolean> {
    const ttlMs = checkArgs('KeyvRedisStore.set()', () => {
      checkValue(value, 'set()')
      return checkTtl(ttl, 'set()')
    })
    if (ttlMs === undefined) await this.client.set(key, value)
    else await this.client.set(key, value, { ttlMs })
    return true
  }

  /**
   * Every SET in one batch (one round trip; not a transaction). Resolves one true
   * per entry, which Keyv returns from its own setMany. Typed `any` because Keyv 5's
   * adapter type declares `Promise<void>` here while Keyv reads the array.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async setMany(entries: Array<{ key: string; value: RedisValue; ttl?: number }>): Promise<any> {
    const checked = checkArgs('KeyvRedisStore.setMany()', () => {
      if (!isArray(entries)) throw invalidArgument('KeyvRedisStore.setMany(): entries must be an array')
      return entries.map((e, i) => {
        if (e === null || typeof e !== 'object') throw invalidArgument(`KeyvRedisStore.setMany(): entries[${i}] is not an entry`)
        const { key, value, ttl } = e
        checkValue(value, `setMany() entries[${i}]`)
        return { key, value, ttlMs: checkTtl(ttl, `setMany() entries[${i}]`) }
      })
    })
    const writes: Array<Promise<unknown>> = checked.map(({ key, value, ttlMs }) =>
      ttlMs === undefined ? this.client.set(key, value) : this.client.set(key, value, { ttlMs }),
    )
    await Promise.all(writes)
    return entries.map(() => true)
  }

  /** UNLINK; resolves whether the key existed. */
  async delete(key: string): Promise<boolean> {
    return Number(await this.client.command('UNLINK', key)) > 0
  }

  /** One UNLINK of every key; resolves whether any existed. */
  async deleteMany(keys: string[]): Promise<boolean> {
    keys = keysArg(keys, 'deleteMany')
    if (keys.length === 0) return false
    return Number(await this.client.command('UNLINK', ...keys)) > 0
  }

  async has(key: string): Promise<boolean> {
    return (await this.client.exists(key)) > 0
  }

  /** One EXISTS per key, all in one batch (one round trip). */
  async hasMany(keys: string[]): Promise<boolean[]> {
    keys = keysArg(keys, 'hasMany')
    const counts = await Promise.all(keys.map((k) => this.client.exists(k)))
    return counts.map((n) => n > 0)
  }

  /**
   * Deletes every key of the namespace Keyv gave this store (`<namespace>:*`),
   * by SCAN and UNLINK in batches of `clearBatchSize`, never FLUSHDB. Without a
   * namespace it rejects with ERR_INVALID_ARGUMENT rather than guess which keys
   * of a shared database are the cache's.
   */
  async clear(): Promise<void> {
    const ns = this.namespace
    if (typeof ns !== 'string' || ns.length === 0) {
      throw invalidArgument(
        'KeyvRedisStore.clear(): the store has no namespace, so it cannot tell its keys from the rest of the database; give Keyv a namespace',
      )
    }
    const size = this.opts.clearBatchSize
    let batch: string[] = []
    let unlinking: Promise<unknown> | undefined
    for await (const key of this.client.scan({ match: `${escapeGlob(ns)}:*`, count: size })) {
      batch.push(key)
      if (batch.length >= size) {
        await unlinking // at most one UNLINK in flight while the scan goes on
        unlinking = this.client.command('UNLINK', ...batch)
        unlinking.catch(() => {}) // awaited below; no unhandled rejection meanwhile
        batch = []
      }
    }
    await unlinking
    if (batch.length > 0) await this.client.command('UNLINK', ...batch)
  }

  /**
   * `[key, value]` for every key of `namespace` (every key without one), as Keyv
   * wrote them: keys with their namespace, values serialized. One MGET per batch.
   */
  async *iterator(namespace?: string): AsyncGenerator<[string, string], void> {
    if (namespace !== undefined && typeof namespace !== 'string') {
      throw invalidArgument(`KeyvRedisStore.iterator(): namespace must be a string, got ${show(namespace)}`)
    }
    const size = this.opts.clearBatchSize
    const match = namespace ? `${escapeGlob(namespace)}:*` : undefined
    let batch: string[] = []
    for await (const key of this.client.scan({ match, count: size })) {
      batch.push(key)
      if (batch.length >= size) {
        yield* this.values(batch)
        batch = []
      }
    }
    if (batch.length > 0) yield* this.values(batch)
  }

  private async *values(keys: string[]): AsyncGenerator<[string, string], void> {
    const values = await this.client.mget(keys)
    for (let i = 0; i < keys.length; i++) {
      const v = values[i]
      if (v !== null) yield [keys[i], v] // gone since the SCAN, or not a string
    }
  }

  /** Closes the client only with `closeClient: true`; otherwise there is nothing of the store's to close. */
  async disconnect(): Promise<void> {
    if (this.opts.closeClient) await this.client.close()
  }
}

function checkTtl(ttl: unknown, where: string): number | undefined {
  if (ttl === undefined || ttl === null || ttl === 0) return undefined
  if (!isFiniteNumber(ttl) || ttl < 0) {
    throw invalidArgument(`KeyvRedisStore.${where}: ttl must be a non-negative number of milliseconds, got ${show(ttl)}`)
  }
  return Math.ceil(ttl)
}

function checkValue(value: unknown, where: string): void {
  if (typeof value !== 'string' && !Buffer.isBuffer(value)) {
    throw invalidArgument(
      `KeyvRedisStore.${where}: the value must be a string or Buffer (Keyv's serializer makes one), got ${value === null ? 'null' : typeof value}`,
    )
  }
}

/** A copy of a key list, so that the keys are read once, here. */
function keysArg(keys: unknown, method: string): string[] {
  return checkArgs(`KeyvRedisStore.${method}()`, () => {
    if (!isArray(keys)) throw invalidArgument(`KeyvRedisStore.${method}(): keys must be an array, got ${show(keys)}`)
    return Array.from(keys) as string[]
  })
}

/** Escapes glob metacharacters so that a namespace matches only itself. */
function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&')
}
