// The chart of accounts and the permission matrix. Their source of truth is a
// Redis hash per data set (shared by every instance, as a database would be);
// reads go through the cache (@nestjs/cache-manager → Keyv → KeyvRedisStore, in
// the same Redis), and every update deletes the cached copy, so the next read
// on ANY instance loads fresh data.
import { CACHE_MANAGER } from '@nestjs/cache-manager'
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common'
import { RedisService } from '@atlas-erp/redis/nest'
import type { Cache } from 'cache-manager'

import type { AppOptions } from '../config'
import { APP_OPTIONS } from '../tokens'

export const ACCOUNT_TYPES = ['asset', 'liability', 'equity', 'revenue', 'expense'] as const
export type AccountType = (typeof ACCOUNT_TYPES)[number]

export interface Account {
  code: string
  name: string
  type: AccountType
}

/** role → the permissions it grants. */
export type PermissionMatrix = Record<string, string[]>

export type CacheStatus = 'hit' | 'miss'

/** Cache keys (Keyv adds its namespace). */
export const CACHE_KEYS = { accounts: 'chart-of-accounts', permissions: 'permission-matrix' } as const
/** Source-of-truth hashes. */
const DATA_KEYS = { accounts: 'erp:accounts', permissions: 'erp:permissions' } as const

const SEED_ACCOUNTS: Account[] = [
  { code: '1000', name: 'Cash', type: 'asset' },
  { code: '1200', name: 'Accounts receivable', type: 'asset' },
  { code: '2000', name: 'Accounts payable', type: 'liability' },
  { code: '3000', name: 'Share capital', type: 'equity' },
  { code: '4000', name: 'Sales', type: 'revenue' },
  { code: '6000', name: 'Salaries', type: 'expense' },
]
const SEED_PERMISSIONS: PermissionMatrix = {
  admin: ['accounts:read', 'accounts:write', 'permissions:read', 'permissions:write'],
  accountant: ['accounts:read', 'accounts:write', 'permissions:read'],
  auditor: ['accounts:read', 'permissions:read'],
}

@Injectable()
export class LedgerService implements OnModuleInit {
  /** How many times this instance ran a loader (read the source of truth). */
  readonly loads = { accounts: 0, permissions: 0 }

  constructor(
    private readonly redis: RedisService,
    @Inject(CACHE_MANAGER) private readonly cache: Cache,
    @Inject(APP_OPTIONS) private readonly options: AppOptions,
  ) {}

  /** Seeds the data once (HSETNX: instances starting together agree, later edits are kept). */
  async onModuleInit(): Promise<void> {
    const c = this.redis.client
    await Promise.all([
      ...SEED_ACCOUNTS.map((a) => c.command('HSETNX', DATA_KEYS.accounts, a.code, JSON.stringify(a))),
      ...Object.entries(SEED_PERMISSIONS).map(([role, p]) => c.command('HSETNX', DATA_KEYS.permissions, role, JSON.stringify(p))),
    ])
  }

  chartOfAccounts(): Promise<{ data: Account[]; cache: CacheStatus }> {
    return this.cached(CACHE_KEYS.accounts, async () => {
      this.loads.accounts++
      const all = await this.redis.client.hgetall(DATA_KEYS.accounts)
      return Object.values(all)
        .map((v) => JSON.parse(v) as Account)
        .sort((a, b) => a.code.localeCompare(b.code))
    })
  }

  permissionMatrix(): Promise<{ data: PermissionMatrix; cache: CacheStatus }> {
    return this.cached(CACHE_KEYS.permissions, async () => {
      this.loads.permissions++
      const all = await this.redis.client.hgetall(DATA_KEYS.permissions)
      const matrix: PermissionMatrix = {}
      for (const role of Object.keys(all).sort()) matrix[role] = JSON.parse(all[role]) as string[]
      return matrix
    })
  }

  /** Writes the account, then drops the cached chart (for every instance: the cache is in Redis). */
  async saveAccount(account: Account): Promise<Account> {
    await this.redis.client.hset(DATA_KEYS.accounts, account.code, JSON.stringify(account))
    await this.cache.del(CACHE_KEYS.accounts)
    return account
  }

  async savePermissions(role: string, permissions: string[]): Promise<PermissionMatrix> {
    await this.redis.client.hset(DATA_KEYS.permissions, role, JSON.stringify(permissions))
    await this.cache.del(CACHE_KEYS.permissions)
    return { [role]: permissions }
  }

  private async cached<T>(key: string, load: () => Promise<T>): Promise<{ data: T; cache: CacheStatus }> {
    const hit = await this.cache.get<T>(key)
    if (hit !== undefined && hit !== null) return { data: hit, cache: 'hit' }
    const data = await load()
    await this.cache.set(key, data, this.options.cacheTtlSeconds * 1000)
    return { data, cache: 'miss' }
  }
}
