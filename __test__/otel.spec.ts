// @atlas-erp/redis/otel and the diagnostics channels under it, with the OpenTelemetry
// SDK's in-memory span exporter and a metric reader collected on demand, against real
// redis-server processes (one of them password-protected).
import { tracingChannel } from 'node:diagnostics_channel'

import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { DataPointType, MeterProvider, MetricReader, type Histogram } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'

import { RedisClient, type CommandTraceContext, type ConnectTraceContext } from '../lib'
import { describeEndpoint } from '../lib/core/diagnostics'
import { instrumentRedis, type RedisInstrumentation } from '../lib/otel'
import { RedisServer, startRedis, stopAll } from './harness'
import { closeAll, connect } from './helpers'

const PASSWORD = 'otel-Pa55word-7f3a'
/** In every key, field and value the tests send: none may reach a span or a data point. */
const MARKER = 'marker-9c1e'

/** A MetricReader read on demand. */
class CollectingReader extends MetricReader {
  protected onShutdown(): Promise<void> {
    return Promise.resolve()
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve()
  }
}

let plain: RedisServer
let secured: RedisServer
const contextManager = new AsyncLocalStorageContextManager()
const exporter = new InMemorySpanExporter()
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
let reader: CollectingReader
let meterProvider: MeterProvider
let otel: RedisInstrumentation | undefined

beforeAll(async () => {
  context.setGlobalContextManager(contextManager.enable())
  ;[plain, secured] = await Promise.all([startRedis(), startRedis({ password: PASSWORD })])
})
beforeEach(() => {
  exporter.reset()
  reader = new CollectingReader()
  meterProvider = new MeterProvider({ readers: [reader] })
})
afterEach(async () => {
  otel?.disable()
  otel = undefined
  await closeAll()
  await meterProvider.shutdown()
})
afterAll(async () => {
  await tracerProvider.shutdown()
  context.disable()
  await stopAll()
})

function instrument(): RedisInstrumentation {
  otel = instrumentRedis({ tracerProvider, meterProvider })
  return otel
}

/** Everything a span exports that could hold text, as one string. */
function exported(span: ReadableSpan): string {
  const { name, attributes, status, events, links } = span
  return JSON.stringify({ name, attributes, status, events, links })
}

/** The data points of the operation-duration histogram. */
async function durationPoints() {
  const { resourceMetrics, errors } = await reader.collect()
  expect(errors).toEqual([])
  const metrics = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics)
  const duration = metrics.find((m) => m.descriptor.name === 'db.client.operation.duration')
  if (duration === undefined) throw new Error(`no db.client.operation.duration among ${metrics.map((m) => m.descriptor.name)}`)
  expect(duration.descriptor.unit).toBe('s')
  expect(duration.dataPointType).toBe(DataPointType.HISTOGRAM)
  return { descriptor: duration.descriptor, points: duration.dataPoints as Array<{ attributes: Record<string, unknown>; value: Histogram }> }
}

describe('@atlas-erp/redis/otel', () => {
  test('a span per command with the database semantic conventions, on a password-protected server; never a value or the password', async () => {
    instrument()
    const redis = await connect({ host: '127.0.0.1', port: secured.port, password: PASSWORD, db: 3 })
    await redis.set(`${MARKER}:k`, `${MARKER}-value`, 60)
    expect(await redis.get(`${MARKER}:k`)).toBe(`${MARKER}-value`)
    await redis.hset(`${MARKER}:h`, `${MARKER}-field`, `${MARKER}-hvalue`)
    await redis.command('SET', `${MARKER}:c`, `${MARKER}-cvalue`)
    // Server errors: Redis quotes the arguments of an unknown command in its error text.
    await expect(redis.command('NOTACOMMAND', `${MARKER}-arg`)).rejects.toMatchObject({ code: 'ERR_REPLY', message: expect.stringContaining(MARKER) })
    await expect(redis.hget(`${MARKER}:k`, 'f')).rejects.toMatchObject({ code: 'ERR_REPLY', serverCode: 'WRONGTYPE' })

    const spans = exporter.getFinishedSpans()
    const commands = spans.filter((s) => s.name !== 'connect')
    expect(commands.map((s) => s.name)).toEqual(['SET', 'GET', 'HSET', 'SET', 'NOTACOMMAND', 'HGET'])
    const endpoint = { 'db.system.name': 'redis', 'server.address': '127.0.0.1', 'server.port': secured.port, 'db.namespace': '3' }
    for (const s of commands.slice(0, 4)) {
      expect(s.kind).toBe(SpanKind.CLIENT)
      expect(s.attributes).toEqual({ ...endpoint, 'db.operation.name': s.name })
      expect(s.status.code).toBe(SpanStatusCode.UNSET)
      expect(s.instrumentationScope.name).toBe('@atlas-erp/redis')
    }
    const [unknown, wrongType] = commands.slice(4)
    expect(unknown.attributes).toEqual({ ...endpoint, 'db.operation.name': 'NOTACOMMAND', 'error.type': 'ERR_REPLY', 'db.response.status_code': 'ERR' })
    expect(wrongType.attributes).toEqual({ ...endpoint, 'db.operation.name': 'HGET', 'error.type': 'ERR_REPLY', 'db.response.status_code': 'WRONGTYPE' })
    for (const s of [unknown, wrongType]) expect(s.status).toEqual({ code: SpanStatusCode.ERROR })

    const connectSpan = spans.find((s) => s.name === 'connect')
    expect(connectSpan?.attributes).toEqual(endpoint)
    expect(connectSpan?.status.code).toBe(SpanStatusCode.UNSET)

    for (const s of spans) {
      expect(exported(s)).not.toContain(MARKER)
      expect(exported(s)).not.toContain(PASSWORD)
    }
    const { points } = await durationPoints()
    const text = JSON.stringify(points)
    expect(text).not.toContain(MARKER)
    expect(text).not.toContain(PASSWORD)
  })

  test('a failed connection: the connect span is an error with error.type, and neither the wrong password nor the URL reaches it', async () => {
    instrument()
    const wrong = `wrong-${PASSWORD}`
    await expect(RedisClient.connect(`redis://:${wrong}@127.0.0.1:${secured.port}/0`)).rejects.toMatchObject({ code: 'ERR_AUTH' })
    const [span] = exporter.getFinishedSpans()
    expect(span.name).toBe('connect')
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR })
    expect(span.attributes).toEqual({
      'db.system.name': 'redis', 'server.address': '127.0.0.1', 'server.port': secured.port, 'db.namespace': '0', 'error.type': 'ERR_AUTH',
    })
    expect(exported(span)).not.toContain(wrong)
    expect(exported(span)).not.toContain(PASSWORD)
  })

  test("each command's span is a child of the span active where it was called, also when callers' commands share a batch", async () => {
    instrument()
    const redis = await connect(plain.url)
    const app = tracerProvider.getTracer('app')
    const requests = ['a', 'b', 'c']
    const parents = new Map<string, string>()
    // Three "requests" whose GETs are called in the same tick: one batch on the wire.
    const started = requests.map((r) =>
      app.startActiveSpan(`request ${r}`, (span) => {
        parents.set(r, span.spanContext().spanId)
        return redis.get(`${MARKER}:${r}`).finally(() => span.end())
      }),
    )
    await Promise.all(started)
    const gets = exporter.getFinishedSpans().filter((s) => s.name === 'GET')
    expect(gets).toHaveLength(3)
    expect(gets.map((s) => s.parentSpanContext?.spanId).sort()).toEqual([...parents.values()].sort())
    const traces = new Set(gets.map((s) => s.spanContext().traceId))
    expect(traces.size).toBe(3) // each in its own request's trace
  })

  test('db.client.operation.duration: a histogram in seconds per operation and outcome, with the advised buckets', async () => {
    instrument()
    const redis = await connect(`${plain.url}/1`)
    await Promise.all(Array.from({ length: 5 }, (_, i) => redis.set(`${MARKER}:${i}`, 'v')))
    await Promise.all(Array.from({ length: 3 }, (_, i) => redis.get(`${MARKER}:${i}`)))
    await redis.incr(`${MARKER}:n`)
    await expect(redis.hget(`${MARKER}:0`, 'f')).rejects.toMatchObject({ code: 'ERR_REPLY' })
    const { descriptor, points } = await durationPoints()
    expect(descriptor.description).toBe('Duration of database client operations.')
    const byOp = (op: string, error?: string) =>
      points.filter((p) => p.attributes['db.operation.name'] === op && p.attributes['error.type'] === error)
    const common = { 'db.system.name': 'redis', 'server.address': '127.0.0.1', 'server.port': plain.port, 'db.namespace': '1' }
    const [set] = byOp('SET')
    expect(set.attributes).toEqual({ ...common, 'db.operation.name': 'SET' })
    expect(set.value.count).toBe(5)
    expect(byOp('GET')[0].value.count).toBe(3)
    expect(byOp('INCR')[0].value.count).toBe(1)
    const [failed] = byOp('HGET', 'ERR_REPLY')
    expect(failed.attributes).toEqual({ ...common, 'db.operation.name': 'HGET', 'error.type': 'ERR_REPLY', 'db.response.status_code': 'WRONGTYPE' })
    expect(failed.value.count).toBe(1)
    // Seconds, not milliseconds: the SET spans took as long in total (the same interval, measured by the SDK).
    const spanSeconds = exporter
      .getFinishedSpans()
      .filter((s) => s.name === 'SET')
      .reduce((sum, s) => sum + s.duration[0] + s.duration[1] / 1e9, 0)
    const seconds = set.value.sum ?? 0
    expect(seconds).toBeGreaterThan(0)
    expect(seconds / spanSeconds).toBeGreaterThan(0.5)
    expect(seconds / spanSeconds).toBeLessThan(2)
    expect(set.value.buckets.boundaries).toEqual([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10])
  })

  test('commands refused before they are sent (closed client) are spans with their error; disable() stops spans and leaves the channels without subscribers', async () => {
    const commands = tracingChannel('atlas-erp:redis:command')
    const connects = tracingChannel('atlas-erp:redis:connect')
    expect([commands.hasSubscribers, connects.hasSubscribers]).toEqual([false, false])
    const handle = instrument()
    expect([commands.hasSubscribers, connects.hasSubscribers]).toEqual([true, true])
    const redis = await RedisClient.connect(plain.url)
    await redis.close()
    await expect(redis.get('k')).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    const closed = exporter.getFinishedSpans().find((s) => s.name === 'GET')
    expect(closed?.attributes['error.type']).toBe('ERR_CLOSED')
    expect(closed?.status.code).toBe(SpanStatusCode.ERROR)

    handle.disable()
    handle.disable() // twice is harmless
    expect([commands.hasSubscribers, connects.hasSubscribers]).toEqual([false, false])
    exporter.reset()
    const again = await connect(plain.url)
    await again.set('otel:after-disable', '1')
    expect(await again.get('otel:after-disable')).toBe('1')
    expect(exporter.getFinishedSpans()).toEqual([])
  })

  test('the global providers are used when none is given', async () => {
    const tracing = trace.setGlobalTracerProvider(tracerProvider)
    expect(tracing).toBe(true)
    try {
      otel = instrumentRedis()
      const redis = await connect(plain.url)
      await redis.ping()
      expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['connect', 'PING'])
    } finally {
      trace.disable()
    }
  })
})

describe('the diagnostics channels', () => {
  /** Subscribes to every event of a channel; resolves the log and an unsubscribe. */
  function listen<T extends object>(name: string, pick: (ctx: T) => unknown) {
    const log: Array<[string, unknown]> = []
    const ch = tracingChannel<unknown, T>(name)
    const handlers = {
      start: (c: T) => log.push(['start', pick(c)]),
      end: (c: T) => log.push(['end', pick(c)]),
      asyncStart: (c: T) => log.push(['asyncStart', pick(c)]),
      asyncEnd: (c: T) => log.push(['asyncEnd', pick(c)]),
      error: (c: T) => log.push(['error', pick(c)]),
    }
    ch.subscribe(handlers)
    return { log, stop: () => ch.unsubscribe(handlers) }
  }

  test('atlas-erp:redis:command: one trace per command, in tracePromise order, with the size of the batch it travelled in', async () => {
    const redis = await connect(`${plain.url}/2`)
    await redis.command('SCRIPT', 'FLUSH')
    const { log, stop } = listen<CommandTraceContext>('atlas-erp:redis:command', (c) => ({
      command: c.command, batchSize: c.batchSize, error: c.error?.code, server: [c.serverAddress, c.serverPort, c.database], same: c.client === redis,
    }))
    try {
      // One tick: five commands, one batch (typed ops and the generic command()).
      await Promise.all([
        redis.set(`${MARKER}:a`, '1'),
        redis.getBuffer(`${MARKER}:a`),
        redis.set(`${MARKER}:b`, '2', { nx: true }),
        redis.command('incr', `${MARKER}:n`),
        redis.lpush(`${MARKER}:l`, 'x'),
      ])
      await redis.del(`${MARKER}:a`) // a batch of its own
      // The package's scripts: EVALSHA, and EVAL after NOSCRIPT (the cache was flushed); then EVALSHA alone.
      await redis.rateLimit(`${MARKER}:rl`, { limit: 5, windowMs: 1000 })
      await redis.rateLimit(`${MARKER}:rl`, { limit: 5, windowMs: 1000 })
    } finally {
      stop()
    }
    const server = ['127.0.0.1', plain.port, 2]
    const starts = log.filter(([e]) => e === 'start').map(([, c]) => (c as { command: string }).command)
    expect(starts.slice(0, 6)).toEqual(['SET', 'GET', 'SET', 'INCR', 'LPUSH', 'DEL'])
    expect(starts.slice(6)).toEqual(['EVALSHA', 'EVAL', 'EVALSHA'])
    expect(log.find(([e, c]) => e === 'error' && (c as { command: string }).command === 'EVALSHA')?.[1]).toMatchObject({ error: 'ERR_REPLY' })
    const ends = log.filter(([e]) => e === 'asyncEnd').map(([, c]) => c)
    expect(ends.slice(0, 5)).toEqual(
      starts.slice(0, 5).map((command) => ({ command, batchSize: 5, error: undefined, server, same: true })),
    )
    expect(ends[5]).toEqual({ command: 'DEL', batchSize: 1, error: undefined, server, same: true })
    // start and end (synchronous, in the call), then asyncStart and asyncEnd (when it settles).
    const del = log.filter(([, c]) => (c as { command: string }).command === 'DEL').map(([e]) => e)
    expect(del).toEqual(['start', 'end', 'asyncStart', 'asyncEnd'])
    // Nothing after unsubscribing.
    const count = log.length
    await redis.get(`${MARKER}:a`)
    expect(log.length).toBe(count)
  })

  test('atlas-erp:redis:connect: start, then asyncEnd when ready, or error first when it failed; the client and endpoint in the context', async () => {
    const { log, stop } = listen<ConnectTraceContext>('atlas-erp:redis:connect', (c) => ({
      reconnect: c.reconnect, error: c.error?.code, server: [c.serverAddress, c.serverPort, c.database], client: c.client instanceof RedisClient,
    }))
    try {
      const redis = await connect({ url: `redis://127.0.0.1:1/0`, port: plain.port, db: 4 })
      expect(await redis.ping()).toBeGreaterThan(0)
      await expect(RedisClient.connect({ host: '127.0.0.1', port: secured.port })).rejects.toMatchObject({ code: 'ERR_AUTH' })
    } finally {
      stop()
    }
    const ok = { reconnect: false, error: undefined, server: ['127.0.0.1', plain.port, 4], client: true }
    const failed = { reconnect: false, server: ['127.0.0.1', secured.port, 0], client: true }
    expect(log).toEqual([
      ['start', ok], ['end', ok], ['asyncStart', ok], ['asyncEnd', ok],
      ['start', { ...failed, error: undefined }], ['end', { ...failed, error: undefined }],
      ['error', { ...failed, error: 'ERR_AUTH' }], ['asyncStart', { ...failed, error: 'ERR_AUTH' }], ['asyncEnd', { ...failed, error: 'ERR_AUTH' }],
    ])
  })

  test('atlas-erp:redis:connect: a lost connection opens a reconnect trace, ended when the client is ready again', async () => {
    const redis = await connect({ port: plain.port, connectionName: 'otel-reconnect' })
    const { log, stop } = listen<ConnectTraceContext>('atlas-erp:redis:connect', (c) => ({ reconnect: c.reconnect, error: c.error?.code }))
    try {
      const ready = new Promise<void>((resolve) => redis.once('ready', () => resolve()))
      await plain.cli('CLIENT', 'KILL', 'TYPE', 'normal')
      await ready
    } finally {
      stop()
    }
    const again = { reconnect: true, error: undefined }
    expect(log).toEqual([['start', again], ['end', again], ['asyncStart', again], ['asyncEnd', again]])
  })

  test('the endpoint is read from URLs, options and the environment as the native config reads them, without credentials', () => {
    expect(describeEndpoint('redis://user:secret@cache.internal:6390/5')).toEqual({ serverAddress: 'cache.internal', serverPort: 6390, database: 5 })
    expect(describeEndpoint('rediss://[::1]')).toEqual({ serverAddress: '::1', serverPort: 6379, database: 0 })
    expect(describeEndpoint('redis://h?db=7')).toEqual({ serverAddress: 'h', serverPort: 6379, database: 7 })
    expect(describeEndpoint('memory://tests/2')).toEqual({ database: 2 })
    expect(describeEndpoint({})).toEqual({ serverAddress: '127.0.0.1', serverPort: 6379, database: 0 })
    expect(describeEndpoint({ url: 'redis://a:1/2', host: 'b', db: 3 })).toEqual({ serverAddress: 'b', serverPort: 1, database: 3 })
    expect(describeEndpoint({ sentinel: { masterName: 'm', sentinels: ['s:26379'] }, db: 1 })).toEqual({ database: 1 })
    const saved = { ...process.env }
    try {
      for (const k of Object.keys(process.env)) if (k.startsWith('REDIS_')) delete process.env[k]
      Object.assign(process.env, { REDIS_HOST: 'env-host', REDIS_PORT: '7000', REDIS_DB: '2', REDIS_PASSWORD: 'p' })
      expect(describeEndpoint(undefined)).toEqual({ serverAddress: 'env-host', serverPort: 7000, database: 2 })
      process.env.REDIS_URL = 'redis://:p@url-host:7001'
      expect(describeEndpoint(undefined)).toEqual({ serverAddress: 'url-host', serverPort: 7001, database: 0 })
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k]
      Object.assign(process.env, saved)
    }
  })
})
