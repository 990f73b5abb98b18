import { Controller, Get, Module, Req, UseGuards } from '@nestjs/common'
import { RedisService } from '@atlas-erp/redis/nest'

import type { AppOptions } from '../config'
import { EmailModule } from '../email/email.module'
import { EmailService } from '../email/email.service'
import { APP_OPTIONS, BETTER_AUTH } from '../tokens'
import { AuthGuardModule } from './auth-guard.module'
import { createAuth } from './auth'
import { SessionGuard, type AuthenticatedRequest } from './session.guard'

/** A protected route: who is signed in. */
@Controller('me')
@UseGuards(SessionGuard)
export class MeController {
  @Get()
  me(@Req() req: AuthenticatedRequest): { userId: string; email: string; name: string; sessionExpiresAt: string } {
    const { user, session } = req.auth
    return { userId: user.id, email: user.email, name: user.name, sessionExpiresAt: session.expiresAt.toISOString() }
  }
}

/**
 * Better Auth's own routes (/api/auth/*) are mounted on Express in app.ts,
 * ahead of Nest's body parser; this module makes the instance.
 */
@Module({
  imports: [AuthGuardModule, EmailModule],
  controllers: [MeController],
  providers: [
    {
      provide: BETTER_AUTH,
      inject: [RedisService, EmailService, APP_OPTIONS],
      useFactory: (redis: RedisService, emails: EmailService, options: AppOptions) => createAuth(redis, emails, options),
    },
  ],
  exports: [BETTER_AUTH],
})
export class AuthModule {}
