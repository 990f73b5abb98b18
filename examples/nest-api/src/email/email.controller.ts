import { BadRequestException, Body, Controller, Get, NotFoundException, Param, Post, UseGuards } from '@nestjs/common'

import { SessionGuard } from '../auth/session.guard'
import { EmailService, type EmailStatus } from './email.service'

@Controller('emails')
@UseGuards(SessionGuard)
export class EmailController {
  constructor(private readonly emails: EmailService) {}

  /** Queues an e-mail; 202 with the job id. */
  @Post()
  async send(@Body() body: unknown): Promise<{ id: string }> {
    const b = (body ?? {}) as Record<string, unknown>
    if (typeof b.to !== 'string' || !b.to.includes('@')) throw new BadRequestException('to: an e-mail address')
    if (typeof b.subject !== 'string' || b.subject.length === 0) throw new BadRequestException('subject: a non-empty string')
    const text = typeof b.body === 'string' ? b.body : ''
    return { id: await this.emails.enqueue({ to: b.to, subject: b.subject, body: text }) }
  }

  @Get(':id')
  async status(@Param('id') id: string): Promise<EmailStatus> {
    const s = await this.emails.status(id)
    if (!s) throw new NotFoundException(`no e-mail job ${id}`)
    return s
  }
}
