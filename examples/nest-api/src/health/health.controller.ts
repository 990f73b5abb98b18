import { Controller, Get } from '@nestjs/common'
import { HealthCheck, HealthCheckService, type HealthCheckResult } from '@nestjs/terminus'
import { SkipThrottle } from '@nestjs/throttler'
import { RedisHealthIndicator } from '@atlas-erp/redis/nest'

@Controller('health')
@SkipThrottle({ short: true, long: true }) // probes must not use up (or be refused by) the limits
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly redis: RedisHealthIndicator,
  ) {}

  /** 200 `{ status: 'ok', info: { redis: { status: 'up', latencyMs, reconnects, p99Ms } } }`, or 503 with `status: 'down'`. */
  @Get()
  @HealthCheck()
  check(): Promise<HealthCheckResult> {
    return this.health.check([() => this.redis.isHealthy('redis', { timeoutMs: 500 })])
  }
}
