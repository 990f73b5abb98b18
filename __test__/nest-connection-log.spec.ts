// RedisModule's logConnectionEvents in a real Nest application (NestFactory on
// Express, and a testing module), its logger capturing what Nest's Logger writes.
import { tracingChannel } from 'node:diagnostics_channel'

import { Module, type LoggerService } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { Test } from '@nestjs/testing'

import { RedisClient } from '../lib'
import { connectSettled, connectStarted } from '../lib/core/diagnostics'
import { RedisModule, getRedisToken } from '../lib/nest'
import { RedisServer, startRedis, stopAll } from './harness'

const PASSWORD = 'n3st-log-Secret-41'

let plain: RedisServer
let secured: RedisServer

beforeAll(async () => {
  ;[plain, secured] = await Promise.all([startRedis(), startRedis({ password: PASSWORD })])
})
afterAll(stopAll)

/** A LoggerService that keeps every line, for Nest's Logger to write to. */
class CapturingLogger implements LoggerService {
  readonly lines: Array<{ level: string; context: unknown; message: string }> = []
  private keep(level: string, message: unknown, rest: unknown[]) {
    this.lines.push({ level, context: rest.at(-1), message: String(message) })
  }
  log(message: unknown, ...rest: unknown[]) {
    this.keep('log', message, rest)
  }
  error(message: unknown, ...rest: unknown[]) {
    this.keep('error', message, rest)
  }
  warn(message: unknown, ...rest: unknown[]) {
    this.keep('warn', message, rest)
  }
  debug(message: unknown, ...rest: unknown[]) {
    this.keep('debug', message, rest)
  }
  verbose(message: unknown, ...rest: unknown[]) {
    this.keep('verbose', message, rest)
  }
  /** The lines of the Redis contexts (Nest's own start-up lines aside). */
  redis() {
    return this.lines.filter((l) => typeof l.context === 'string' && l.context.startsWith('Redis'))
  }
}

const connectChannel = tracingChannel('atlas-erp:redis:connect')

test('a Nest app logs each logged connection ready through its Logger; unlogged connections stay quiet; shutdown stops listening', async () => {
  @Module({
    imports: [
      RedisModule.forRoot({ host: '127.0.0.1', port: secured.port, password: PASSWORD, logConnectionEvents: true }),
      RedisModule.forRoot({ name: 'cache', url: `${plain.url}/2`, logConnectionEvents: true }),
      RedisModule.forRoot({ name: 'quiet', url: plain.url }),
    ],
  })
  class AppModule {}

  const logger = new CapturingLogger()
  const app = await NestFactory.create(AppModule, { logger, abortOnError: false })
  try {
    await app.init()
    expect(connectChannel.hasSubscribers).toBe(true)
    const lines = logger.redis()
    expect(lines.filter((l) => l.level !== 'debug')).toEqual(
      expect.arrayContaining([
        { level: 'log', context: 'Redis', message: `ready: 127.0.0.1:${secured.port}, db 0` },
        { level: 'log', context: 'Redis:cache', message: `ready: 127.0.0.1:${plain.port}, db 2` },
      ]),
    )
    expect(lines.filter((l) => l.level !== 'debug')).toHaveLength(2) // none for 'quiet'
    expect(lines.filter((l) => l.level === 'debug').map((l) => l.message).sort()).toEqual(
      [`connecting to 127.0.0.1:${plain.port}`, `connecting to 127.0.0.1:${secured.port}`].sort(),
    )
    expect(JSON.stringify(logger.lines)).not.toContain(PASSWORD)
    // The connections serve.
    await app.get<RedisClient>(getRedisToken('quiet')).set('log:k', 'v')
    expect(await app.get<RedisClient>(getRedisToken('cache')).get('log:k')).toBeNull() // db 2
  } finally {
    await app.close()
  }
  expect(connectChannel.hasSubscribers).toBe(false)
})

test('a connection that fails is logged as an error with its code and without the password; the module does not start', async () => {
  const wrong = `wrong-${PASSWORD}`
  const logger = new CapturingLogger()
  const compiling = Test.createTestingModule({
    imports: [RedisModule.forRoot({ url: `redis://:${wrong}@127.0.0.1:${secured.port}`, logConnectionEvents: true })],
  })
    .setLogger(logger)
    .compile()
  await expect(compiling).rejects.toMatchObject({ code: 'ERR_AUTH' })
  const errors = logger.redis().filter((l) => l.level === 'error')
  expect(errors).toEqual([
    { level: 'error', context: 'Redis', message: expect.stringMatching(new RegExp(`^connecting to 127\\.0\\.0\\.1:${secured.port} failed: ERR_AUTH`)) },
  ])
  expect(JSON.stringify(logger.lines)).not.toContain(wrong)
  expect(connectChannel.hasSubscribers).toBe(false)
})

test('forRootAsync: reconnections of its client are logged (warn, then ready or error), those of other clients are not', async () => {
  const logger = new CapturingLogger()
  const moduleRef = await Test.createTestingModule({
    imports: [RedisModule.forRootAsync({ name: 'jobs', useFactory: () => plain.url, logConnectionEvents: true })],
  })
    .setLogger(logger)
    .compile()
  const client = moduleRef.get<RedisClient>(getRedisToken('jobs'))
  const other = await RedisClient.connect(plain.url)
  try {
    const endpoint = { serverAddress: '127.0.0.1', serverPort: plain.port, database: 0 }
    // What the client publishes when its engine reports a lost connection and its replacement
    // (the same calls as the first connection's, with reconnect: true).
    for (const c of [client, other]) {
      connectSettled(connectStarted(c, endpoint, true))
      const failed = connectStarted(c, endpoint, true)
      connectSettled(failed, Object.assign(new Error('ERR_CONNECTION: connection refused'), { code: 'ERR_CONNECTION' }) as never)
    }
    expect(logger.redis().filter((l) => l.level !== 'debug')).toEqual([
      { level: 'log', context: 'Redis:jobs', message: `ready: 127.0.0.1:${plain.port}, db 0` },
      { level: 'warn', context: 'Redis:jobs', message: `connection to 127.0.0.1:${plain.port} lost; reconnecting` },
      { level: 'log', context: 'Redis:jobs', message: `reconnected: 127.0.0.1:${plain.port}, db 0` },
      { level: 'warn', context: 'Redis:jobs', message: `connection to 127.0.0.1:${plain.port} lost; reconnecting` },
      { level: 'error', context: 'Redis:jobs', message: `reconnecting to 127.0.0.1:${plain.port} failed: ERR_CONNECTION: connection refused` },
    ])
  } finally {
    await other.close()
    await moduleRef.close()
  }
  expect(connectChannel.hasSubscribers).toBe(false)
})
