import type { ClientCacheOptions } from './types'

interface Entry {
  value: string | null
  expiresAt: number
}

/**
 * Process-memory copies of keys under the configured prefixes, kept honest by
 * the server: the connection tracks those prefixes (RESP3 `CLIENT TRACKING …
 * BCAST`), every write by anyone to such a key sends an invalidation, and a
 * lost connection drops everything. Bounded, least recently used out.
 * @internal
 */
export class LocalCache {
  readonly prefixes: string[]
  private readonly maxEntries: number
  private readonly ttlMs: number
  /** Map order is recency order: a hit moves its entry to the end. */
  private readonly entries = new Map<string, Entry>()
  /** Moves on every invalidation or reset: a fill started before it must not land. */
  generation = 0
  private seenEpoch = 0
  hits = 0
  misses = 0
  invalidations = 0

  constructor(
    options: Required<ClientCacheOptions>,
    /** The native counter of queued cache events (see `sync`). */
    private readonly epoch: Uint32Array,
    /** Delivers queued replies and cache events synchronously. */
    private readonly drain: () => void,
  ) {
    this.prefixes = options.prefixes
    this.maxEntries = options.maxEntries
    this.ttlMs = options.ttlMs
  }

  covers(key: string): boolean {
    for (const p of this.prefixes) if (key.startsWith(p)) return true
    return false
  }

  /**
   * The cached value, or undefined. First applies any invalidation the I/O
   * thread already received, so nothing it invalidated is ever served.
   */
  lookup(key: string): Entry | undefined {
    const epoch = this.epoch[0]
    if (epoch !== this.seenEpoch) {
      this.seenEpoch = epoch
      this.drain()
    }
    const e = this.entries.get(key)
    if (e === undefined) return undefined
    if (e.expiresAt <= Date.now()) {
      this.entries.delete(key)
      return undefined
    }
    this.entries.delete(key)
    this.entries.set(key, e)
    return e
  }

  store(key: string, value: string | null, generation: number): void {
    if (generation !== this.generation) return
    this.entries.delete(key)
    this.entries.set(key, { value, expiresAt: Date.now() + this.ttlMs })
    if (this.entries.size > this.maxEntries) {
      this.entries.delete(this.entries.keys().next().value as string)
    }
  }

  invalidate(keys: string[] | null): void {
    this.generation++
    this.invalidations++
    if (keys === null) this.entries.clear()
    else for (const k of keys) this.entries.delete(k)
  }

  reset(): void {
    this.generation++
    this.entries.clear()
  }

  get size(): number {
    return this.entries.size
  }
}
