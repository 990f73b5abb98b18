import { Injectable, type ExecutionContext } from '@nestjs/common'
import type { ThrottlerLimitDetail } from '@nestjs/throttler'
import { RedisThrottlerGuard } from '@atlas-erp/redis/throttler'

/**
 * @nestjs/throttler names the header of a named throttler `Retry-After-<name>`
 * (`Retry-After` only for one called `default`). Clients and proxies know the
 * standard `Retry-After` (RFC 9110): this guard sets it as well, to the seconds
 * left on the throttler that refused. RedisThrottlerGuard is @nestjs/throttler's
 * ThrottlerGuard counting both named throttlers of a request in one round trip.
 */
@Injectable()
export class AppThrottlerGuard extends RedisThrottlerGuard {
  protected override async throwThrottlingException(context: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
    const { res } = this.getRequestResponse(context)
    this.setResponseHeader(res, 'Retry-After', Math.max(1, detail.timeToBlockExpire))
    return super.throwThrottlingException(context, detail)
  }
}
