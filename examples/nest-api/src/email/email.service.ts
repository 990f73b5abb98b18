// The e-mail queue: BullMQ on @atlas-erp/redis (BullMQRedisClient, BullMQ's
// IRedisClient on the native client), configured from the same environment
// variables as RedisModule (REDIS_URL, or REDIS_HOST / REDIS_PORT / REDIS_PASSWORD…).
// BullMQ duplicates the connection for the worker (one to block on, one for the rest).
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common'
import { BullMQRedisClient } from '@atlas-erp/redis/bullmq'
import { Queue, Worker, type Job } from 'bullmq'

import { APP_OPTIONS } from '../tokens'
import type { AppOptions } from '../config'

export const EMAIL_QUEUE = 'email'

export interface EmailJob {
  to: string
  subject: string
  body: string
}

export interface SentEmail {
  to: string
  subject: string
  messageId: string
  sentAt: string
  /** The instance whose worker sent it. */
  processedBy: string
}

export interface EmailStatus {
  id: string
  state: string
  result: SentEmail | null
  failedReason: string | null
}

@Injectable()
export class EmailService implements OnApplicationShutdown {
  private readonly log = new Logger(EmailService.name)
  /** The queue's and the worker's connection (REDIS_* from the environment); BullMQ duplicates it for the worker. */
  private readonly connection = new BullMQRedisClient()
  readonly queue: Queue<EmailJob, SentEmail>
  readonly worker: Worker<EmailJob, SentEmail>

  constructor(@Inject(APP_OPTIONS) private readonly options: AppOptions) {
    // A lost connection is an 'error' event: log it (with no listener it would be dropped, never thrown).
    this.connection.on('error', (e: Error) => this.log.debug(`redis: ${e.message}`))
    this.queue = new Queue<EmailJob, SentEmail>(EMAIL_QUEUE, {
      connection: this.connection,
      defaultJobOptions: { attempts: 3, backoff: { type: 'exponential', delay: 500 }, removeOnComplete: 1000, removeOnFail: 1000 },
    })
    this.queue.on('error', (e: Error) => this.log.debug(`queue: ${e.message}`))
    this.worker = new Worker<EmailJob, SentEmail>(EMAIL_QUEUE, (job) => this.send(job), {
      connection: this.connection,
      concurrency: 4,
    })
    this.worker.on('error', (e: Error) => this.log.debug(`worker: ${e.message}`))
  }

  /** Queues an e-mail; resolves the job id. `jobId` makes it idempotent (one welcome per user). */
  async enqueue(email: EmailJob, jobId?: string): Promise<string> {
    const job = await this.queue.add('send', email, jobId === undefined ? {} : { jobId })
    if (job.id === undefined) throw new Error('BullMQ gave the job no id')
    return job.id
  }

  async status(id: string): Promise<EmailStatus | null> {
    const job = await this.queue.getJob(id)
    if (!job) return null
    return {
      id,
      state: await job.getState(),
      result: (job.returnvalue as SentEmail | undefined) ?? null,
      failedReason: job.failedReason ?? null,
    }
  }

  /** The "mail transport": a real app calls its provider here. */
  private async send(job: Job<EmailJob, SentEmail>): Promise<SentEmail> {
    const { to, subject } = job.data
    this.log.log(`sending "${subject}" to ${to}`)
    return { to, subject, messageId: `${job.id}@example.invalid`, sentAt: new Date().toISOString(), processedBy: this.options.instanceId }
  }

  /** Worker first (it finishes the jobs in hand), then the queue, then the connection (BullMQ leaves it to us). */
  async onApplicationShutdown(): Promise<void> {
    // Never wait for ever on a worker (README, Notes): give it 10 s, then let the rest of the app shut down.
    if (!(await within(this.worker.close(), 10_000))) this.log.warn('the e-mail worker did not close within 10 s')
    await this.queue.close()
    await this.connection.quit()
  }
}

/** Whether `p` settled within `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([p.then(() => true as const), late])
  } finally {
    clearTimeout(timer)
  }
}
