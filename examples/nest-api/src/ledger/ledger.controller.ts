import { BadRequestException, Body, Controller, Get, Param, Put, Res, UseGuards } from '@nestjs/common'
import { Throttle } from '@nestjs/throttler'
import type { Response } from 'express'

import { SessionGuard } from '../auth/session.guard'
import { ACCOUNT_TYPES, LedgerService, type Account, type AccountType, type PermissionMatrix } from './ledger.service'

const CODE = /^\d{4}$/
const ROLE = /^[a-z][a-z0-9_-]{0,31}$/
const PERMISSION = /^[a-z]+:[a-z]+$/

@Controller()
export class LedgerController {
  constructor(private readonly ledger: LedgerService) {}

  /** The chart of accounts; `X-Cache: hit | miss`. */
  @Get('accounts')
  async accounts(@Res({ passthrough: true }) res: Response): Promise<Account[]> {
    const { data, cache } = await this.ledger.chartOfAccounts()
    res.setHeader('X-Cache', cache)
    return data
  }

  /**
   * An expensive report, throttled harder than the app's defaults: 3 per 10 s
   * (`short`) and 10 per minute (`long`) per client, counted in Redis, so the
   * limit holds across every instance behind the load balancer.
   */
  @Get('reports/trial-balance')
  @Throttle({ short: { limit: 3, ttl: 10_000 }, long: { limit: 10, ttl: 60_000 } })
  async trialBalance(): Promise<{ generatedAt: string; lines: Array<Account & { debit: number; credit: number }> }> {
    const { data } = await this.ledger.chartOfAccounts()
    return { generatedAt: new Date().toISOString(), lines: data.map((a) => ({ ...a, debit: 0, credit: 0 })) }
  }

  @Put('accounts/:code')
  @UseGuards(SessionGuard)
  saveAccount(@Param('code') code: string, @Body() body: unknown): Promise<Account> {
    const b = (body ?? {}) as Record<string, unknown>
    if (!CODE.test(code)) throw new BadRequestException('code: four digits')
    if (typeof b.name !== 'string' || b.name.trim().length === 0 || b.name.length > 100) {
      throw new BadRequestException('name: 1 to 100 characters')
    }
    if (typeof b.type !== 'string' || !(ACCOUNT_TYPES as readonly string[]).includes(b.type)) {
      throw new BadRequestException(`type: one of ${ACCOUNT_TYPES.join(', ')}`)
    }
    return this.ledger.saveAccount({ code, name: b.name.trim(), type: b.type as AccountType })
  }

  /** The permission matrix (role → permissions); `X-Cache: hit | miss`. */
  @Get('permissions')
  async permissions(@Res({ passthrough: true }) res: Response): Promise<PermissionMatrix> {
    const { data, cache } = await this.ledger.permissionMatrix()
    res.setHeader('X-Cache', cache)
    return data
  }

  @Put('permissions/:role')
  @UseGuards(SessionGuard)
  savePermissions(@Param('role') role: string, @Body() body: unknown): Promise<PermissionMatrix> {
    const p = ((body ?? {}) as Record<string, unknown>).permissions
    if (!ROLE.test(role)) throw new BadRequestException('role: lower-case letters, digits, - and _')
    if (!Array.isArray(p) || !p.every((x): x is string => typeof x === 'string' && PERMISSION.test(x))) {
      throw new BadRequestException('permissions: an array of "resource:action" strings')
    }
    return this.ledger.savePermissions(role, [...new Set(p)].sort())
  }
}
