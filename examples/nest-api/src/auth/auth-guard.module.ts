import { Module } from '@nestjs/common'
import { sessionVerifier } from '@atlas-erp/redis/better-auth'
import { RedisService } from '@atlas-erp/redis/nest'

import type { AppOptions } from '../config'
import { APP_OPTIONS } from '../tokens'
import { SESSION_VERIFIER, SessionGuard } from './session.guard'

/** The session guard and its verifier, for any module with protected routes. */
@Module({
  providers: [
    {
      provide: SESSION_VERIFIER,
      inject: [RedisService, APP_OPTIONS],
      useFactory: (redis: RedisService, options: AppOptions) => sessionVerifier(redis, { secret: options.authSecret }),
    },
    SessionGuard,
  ],
  exports: [SESSION_VERIFIER, SessionGuard],
})
export class AuthGuardModule {}
