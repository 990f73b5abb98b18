import { BadRequestException, Body, Controller, Get, Param, Put, Res, UseGuards } from '@nestjs/common'
import type { Response } from 'express'

import { SessionGuard } from '../auth/session.guard'
import { PERIOD_STATUSES, PeriodsService, type PeriodStatus, type Periods } from './periods.service'

const PERIOD = /^\d{4}-(0[1-9]|1[0-2])$/

@Controller('periods')
export class PeriodsController {
  constructor(private readonly periods: PeriodsService) {}

  /** Every period and its status, from this instance's memory; `X-Cache: hit | miss`. */
  @Get()
  async list(@Res({ passthrough: true }) res: Response): Promise<Periods> {
    const { data, cache } = await this.periods.periods()
    res.setHeader('X-Cache', cache)
    return data
  }

  /** Opens or closes a period; every instance drops its copy. */
  @Put(':period')
  @UseGuards(SessionGuard)
  save(@Param('period') period: string, @Body() body: unknown): Promise<{ period: string; status: PeriodStatus; notified: number }> {
    const status = ((body ?? {}) as Record<string, unknown>).status
    if (!PERIOD.test(period)) throw new BadRequestException('period: YYYY-MM')
    if (typeof status !== 'string' || !(PERIOD_STATUSES as readonly string[]).includes(status)) {
      throw new BadRequestException(`status: one of ${PERIOD_STATUSES.join(', ')}`)
    }
    return this.periods.setStatus(period, status as PeriodStatus)
  }
}
