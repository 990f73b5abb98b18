// An in-process cache: each instance keeps its own copy of a data set (a hit costs no
// round trip at all), and pub/sub keeps the copies right across instances. A write
// through any instance publishes the data set's name on one channel; every instance —
// the writer included — drops its copy when it hears it, and the next read loads again.
//
// Pub/sub delivers only to whoever is subscribed at that moment: while an instance's
// subscriber connection is down (Redis restarting, a failover), invalidations are
// missed. The client says so ('reconnecting'), and says when it is subscribed again
// ('resubscribed'): both drop every copy, so nothing stale outlives a gap.
import { Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common'
import { RedisService } from '@atlas-erp/redis/nest'

/** The channel every instance listens on; a message is the name of a data set. */
export const INVALIDATION_CHANNEL = 'nest-api:invalidate'

export type LocalCacheStatus = 'hit' | 'miss'

@Injectable()
export class LocalCache implements OnModuleInit, OnModuleDestroy {
  private readonly entries = new Map<string, unknown>()
  /** Moves on every invalidation: a load that began before one is not kept. */
  private generation = 0
  /** Invalidations heard from the channel, and times every copy was dropped. */
  readonly stats = { invalidations: 0, cleared: 0 }

  constructor(private readonly redis: RedisService) {}

  private readonly onInvalidate = (name: string): void => {
    this.stats.invalidations++
    this.drop(name)
  }

  private readonly clear = (): void => {
    this.stats.cleared++
    this.entries.clear()
    this.generation++
  }

  async onModuleInit(): Promise<void> {
    const client = this.redis.client
    client.on('reconnecting', this.clear)
    client.on('resubscribed', this.clear)
    // On a connection of its own: the client's other calls go on as before.
    await client.subscribe(INVALIDATION_CHANNEL, this.onInvalidate)
  }

  async onModuleDestroy(): Promise<void> {
    const client = this.redis.client
    client.off('reconnecting', this.clear)
    client.off('resubscribed', this.clear)
    await client.unsubscribe(INVALIDATION_CHANNEL, this.onInvalidate)
  }

  /** The data set `name`, from this instance's memory, or from `load()` (then kept). */
  async get<T>(name: string, load: () => Promise<T>): Promise<{ data: T; cache: LocalCacheStatus }> {
    if (this.entries.has(name)) return { data: this.entries.get(name) as T, cache: 'hit' }
    const generation = this.generation
    const data = await load()
    if (generation === this.generation) this.entries.set(name, data)
    return { data, cache: 'miss' }
  }

  /** Drops `name` here and on every instance; resolves how many instances heard it. */
  async invalidate(name: string): Promise<number> {
    this.drop(name)
    return this.redis.client.publish(INVALIDATION_CHANNEL, name)
  }

  private drop(name: string): void {
    this.entries.delete(name)
    this.generation++
  }
}
