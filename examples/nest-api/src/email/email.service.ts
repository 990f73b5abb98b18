// The e-mail queue: BullMQ on its OWN ioredis connections, built from the same
// environment variables as RedisModule. @atlas-erp/redis does not speak BullMQ's
// protocol (blocking commands, Lua scripts of its own); the two share settings only.
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common'
import { Queue, Worker, type Job } from 'bullmq'
import { Redis } from 'ioredis'

import { APP_OPTIONS } from '../tokens'
import { bullConnectionFromEnv, type AppOptions } from '../config'

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

function connect(): Redis {
  const { url, options } = bullConnectionFromEnv()
  return url ? new Redis(url, options) : new Redis(options)
}

@Injectable()
export class EmailService implements OnApplicationShutdown {
  private readonly log = new Logger(EmailService.name)
  /** The queue's connection (commands), and the worker's (it blocks waiting for jobs). */
  private readonly queueConnection = connect()
  private readonly workerConnection = connect()
  readonly queue: Queue<EmailJob, SentEmail>
  readonly worker: Worker<EmailJob, SentEmail>

  constructor(@Inject(APP_OPTIONS) private readonly options: AppOptions) {
    // ioredis reports a lost connection as an 'error' event: log it rather than crash.
    for (const c of [this.queueConnection, this.workerConnection]) c.on('error', (e: Error) => this.log.debug(`redis: ${e.message}`))
    this.queue = new Queue<EmailJob, SentEmail>(EMAIL_QUEUE, {
      connection: this.queueConnection,
      defaultJobOptions: { attempts: 3, backoff: { type: 'exponential', delay: 500 }, removeOnComplete: 1000, removeOnFail: 1000 },
    })
    this.queue.on('error', (e: Error) => this.log.debug(`queue: ${e.message}`))
    this.worker = new Worker<EmailJob, SentEmail>(EMAIL_QUEUE, (job) => this.send(job), {
      connection: this.workerConnection,
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

  /** Worker first (it finishes the jobs in hand), then the queue, then their connections. */
  async onApplicationShutdown(): Promise<void> {
    // BullMQ 6.7: right after Redis restarted, a worker's close() can wait for ever
    // (README, Notes). Give it 10 s, then let the rest of the app shut down.
    if (!(await within(this.worker.close(), 10_000))) this.log.warn('the e-mail worker did not close within 10 s')
    await this.queue.close()
    await Promise.all([close(this.queueConnection), close(this.workerConnection)])
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

/** QUIT when connected (replies first); when Redis is away, QUIT would wait for it: disconnect instead. */
async function close(c: Redis): Promise<void> {
  if (c.status === 'ready') await c.quit().catch(() => c.disconnect())
  else c.disconnect()
}
