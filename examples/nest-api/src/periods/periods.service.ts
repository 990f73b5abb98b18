// Accounting periods and whether each is open for posting: read on every journal
// entry, changed a few times a month. Their source of truth is a Redis hash (shared by
// every instance, as a database would be); each instance serves them from its own
// memory (LocalCache), and a change through any instance reaches every copy by pub/sub.
import { Injectable, type OnModuleInit } from '@nestjs/common'
import { RedisService } from '@atlas-erp/redis/nest'

import { LocalCache, type LocalCacheStatus } from './local-cache'

export const PERIOD_STATUSES = ['open', 'closed'] as const
export type PeriodStatus = (typeof PERIOD_STATUSES)[number]

/** 'YYYY-MM' → its status. */
export type Periods = Record<string, PeriodStatus>

const DATA_KEY = 'erp:periods'
const SEED: Periods = { '2026-10': 'closed', '2026-11': 'open', '2026-12': 'open' }

@Injectable()
export class PeriodsService implements OnModuleInit {
  /** How many times this instance read the source of truth. */
  loads = 0

  constructor(
    private readonly redis: RedisService,
    private readonly cache: LocalCache,
  ) {}

  /** Seeds the data once (HSETNX: instances starting together agree, later edits are kept). */
  async onModuleInit(): Promise<void> {
    const c = this.redis.client
    await Promise.all(Object.entries(SEED).map(([period, status]) => c.command('HSETNX', DATA_KEY, period, status)))
  }

  periods(): Promise<{ data: Periods; cache: LocalCacheStatus }> {
    return this.cache.get('periods', async () => {
      this.loads++
      const all = await this.redis.client.hgetall(DATA_KEY)
      const periods: Periods = {}
      for (const p of Object.keys(all).sort()) periods[p] = all[p] as PeriodStatus
      return periods
    })
  }

  /** Writes the status, then tells every instance (`notified`: how many heard it). */
  async setStatus(period: string, status: PeriodStatus): Promise<{ period: string; status: PeriodStatus; notified: number }> {
    await this.redis.client.hset(DATA_KEY, period, status)
    const notified = await this.cache.invalidate('periods')
    return { period, status, notified }
  }
}
