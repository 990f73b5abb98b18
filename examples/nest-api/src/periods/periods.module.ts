import { Module } from '@nestjs/common'

import { AuthGuardModule } from '../auth/auth-guard.module'
import { LocalCache } from './local-cache'
import { PeriodsController } from './periods.controller'
import { PeriodsService } from './periods.service'

@Module({
  imports: [AuthGuardModule],
  controllers: [PeriodsController],
  providers: [LocalCache, PeriodsService],
  exports: [PeriodsService],
})
export class PeriodsModule {}
