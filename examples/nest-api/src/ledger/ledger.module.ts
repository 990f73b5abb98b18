import { Module } from '@nestjs/common'

import { AuthGuardModule } from '../auth/auth-guard.module'
import { LedgerController } from './ledger.controller'
import { LedgerService } from './ledger.service'

@Module({
  imports: [AuthGuardModule],
  controllers: [LedgerController],
  providers: [LedgerService],
  exports: [LedgerService],
})
export class LedgerModule {}
