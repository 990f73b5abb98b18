import { Module } from '@nestjs/common'

import { AuthGuardModule } from '../auth/auth-guard.module'
import { EmailController } from './email.controller'
import { EmailService } from './email.service'

@Module({
  imports: [AuthGuardModule],
  controllers: [EmailController],
  providers: [EmailService],
  exports: [EmailService],
})
export class EmailModule {}
