// OpenTelemetry from the client's diagnostics channels: a span per command (and per
// connection attempt) and the `db.client.operation.duration` histogram, with the
// database semantic conventions. Attributes name the command, the server and the
// database, never a key, a value, an argument, a reply or an error's text (Redis
// quotes arguments in some error replies), so neither data nor passwords reach a span.
import {
  SpanKind,
  SpanStatusCode,
  context,
  metrics,
  trace,
  type Attributes,
  type Histogram,
  type MeterProvider,
  type Span,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api'

import type { TracingChannelSubscribers } from 'node:diagnostics_channel'

import { commandChannel, connectChannel, type CommandTraceContext, type ConnectTraceContext, type RedisEndpoint } from '../core/diagnostics'

/** The instrumentation scope's name: the package's. */
const SCOPE = '@atlas-erp/redis'
// eslint-disable-next-line @typescript-eslint/no-require-imports
const VERSION = (require('../../package.json') as { version: string }).version

/** The semantic conventions' bucket boundaries (seconds) advised for `db.client.operation.duration`. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]

export interface RedisInstrumentationOptions {
  /** Where spans go; the global provider (`trace.getTracerProvider()`) by default. */
  tracerProvider?: TracerProvider
  /**
   * Where the duration histogram goes; the global provider by default, as it is
   * when `instrumentRedis()` runs: register the SDK's MeterProvider before.
   */
  meterProvider?: MeterProvider
}

/** What `instrumentRedis()` returns. */
export interface RedisInstrumentation {
  /**
   * Stops listening: no span or measurement after this. Spans of commands in
   * flight at that moment are dropped (never ended, never exported).
   */
  disable(): void
}

/**
 * Handlers for some of a TracingChannel's events: Node subscribes those given
 * (@types/node asks for all five; a no-op for the others would only cost calls).
 */
type Handlers<T extends object> = Partial<TracingChannelSubscribers<T>>

/** What a traced operation needs between its start and its end. */
interface InFlight {
  span: Span
  /** `performance.now()` at start. */
  startedAt: number
  /** The attributes it started with, for the measurement. */
  attributes: Attributes
}

/**
 * Turns the commands and connections of every `RedisClient` of the process into
 * OpenTelemetry spans (kind CLIENT, named after the command: `GET`, `SET`…;
 * `connect` for a connection attempt) and the `db.client.operation.duration`
 * histogram (seconds), with `db.system.name: 'redis'`, `db.operation.name`,
 * `server.address`, `server.port` and `db.namespace` (the database index), and
 * on failure the span status ERROR with `error.type` (the error's `code`, e.g.
 * `ERR_TIMEOUT`) and `db.response.status_code` (the server's error prefix, e.g.
 * `WRONGTYPE`). Each span's parent is the span active where the command was
 * called. A span covers one command, from the call to its promise settling
 * (see docs/observability.md for why not a batch).
 *
 * ```ts
 * // after the OpenTelemetry SDK is set up (e.g. NodeSDK's start()):
 * const otel = instrumentRedis()   // or instrumentRedis({ tracerProvider, meterProvider })
 * otel.disable()                   // on shutdown
 * ```
 */
export function instrumentRedis(options: RedisInstrumentationOptions = {}): RedisInstrumentation {
  const tracer: Tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(SCOPE, VERSION)
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE, VERSION)
  const duration: Histogram = meter.createHistogram('db.client.operation.duration', {
    description: 'Duration of database client operations.',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  })
  // Keyed by the channel's context object: one entry per operation in flight, gone with it.
  const inFlight = new WeakMap<object, InFlight>()

  const begin = (ctx: CommandTraceContext | ConnectTraceContext, name: string, attributes: Attributes): void => {
    const span = tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes }, context.active())
    inFlight.set(ctx, { span, startedAt: performance.now(), attributes })
  }

  /** Ends the operation's span; resolves its attributes with the outcome. */
  const finish = (ctx: CommandTraceContext | ConnectTraceContext): InFlight | undefined => {
    const op = inFlight.get(ctx)
    if (op === undefined) return undefined
    inFlight.delete(ctx)
    if (ctx.error !== undefined) {
      const outcome = errorAttributes(ctx.error)
      op.span.setAttributes(outcome)
      // No description: an error's message can quote the command's arguments.
      op.span.setStatus({ code: SpanStatusCode.ERROR })
      op.attributes = { ...op.attributes, ...outcome }
    }
    op.span.end()
    return op
  }

  const command: Handlers<CommandTraceContext> = {
    start(ctx: CommandTraceContext) {
      begin(ctx, ctx.command, { ...endpointAttributes(ctx), 'db.operation.name': ctx.command })
    },
    end(ctx: CommandTraceContext) {
      // A synchronous throw publishes `error` then `end`, and no asyncEnd follows.
      if (ctx.error !== undefined) record(finish(ctx))
    },
    asyncEnd(ctx: CommandTraceContext) {
      record(finish(ctx))
    },
  }
  const record = (op: InFlight | undefined): void => {
    if (op !== undefined) duration.record((performance.now() - op.startedAt) / 1000, op.attributes)
  }
  const connect: Handlers<ConnectTraceContext> = {
    start(ctx: ConnectTraceContext) {
      begin(ctx, 'connect', endpointAttributes(ctx))
    },
    asyncEnd(ctx: ConnectTraceContext) {
      finish(ctx)
    },
  }
  commandChannel.subscribe(command as TracingChannelSubscribers<CommandTraceContext>)
  connectChannel.subscribe(connect as TracingChannelSubscribers<ConnectTraceContext>)
  let enabled = true
  return {
    disable() {
      if (!enabled) return
      enabled = false
      commandChannel.unsubscribe(command as TracingChannelSubscribers<CommandTraceContext>)
      connectChannel.unsubscribe(connect as TracingChannelSubscribers<ConnectTraceContext>)
    },
  }
}

/** The semantic conventions' attributes of the database a context names. */
function endpointAttributes(endpoint: RedisEndpoint): Attributes {
  const attributes: Attributes = { 'db.system.name': 'redis', 'db.namespace': String(endpoint.database) }
  if (endpoint.serverAddress !== undefined) attributes['server.address'] = endpoint.serverAddress
  if (endpoint.serverPort !== undefined) attributes['server.port'] = endpoint.serverPort
  return attributes
}

/** `error.type` (the error's code) and, for a server error reply, `db.response.status_code` (its first word). */
function errorAttributes(error: unknown): Attributes {
  const e = error as { code?: unknown; serverCode?: unknown } | null
  const code = typeof e?.code === 'string' ? e.code : error instanceof Error ? error.name : '_OTHER'
  const attributes: Attributes = { 'error.type': code }
  if (typeof e?.serverCode === 'string') attributes['db.response.status_code'] = e.serverCode
  return attributes
}
