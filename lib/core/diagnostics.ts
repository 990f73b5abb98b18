// What the client publishes on Node's diagnostics_channel: one trace per command on
// `atlas-erp:redis:command`, one per connection attempt on `atlas-erp:redis:connect`.
// Subscribers (the /otel entry, RedisModule's connection log, an APM agent) decide
// what to compute; with none, the client checks `hasSubscribers` and does nothing else.
import { tracingChannel } from 'node:diagnostics_channel'

import { OP } from './binding'
import type { RedisClient } from './client'
import type { RedisError } from './errors'
import type { ConnectOptions } from './types'

/** Where a client sends its commands, as its options name it (never its credentials). */
export interface RedisEndpoint {
  /** The server's host name or IP; absent for Sentinel (the master is found at run time) and memory://. */
  serverAddress?: string
  /** The server's port; absent where `serverAddress` is. */
  serverPort?: number
  /** The database index (`db`, 0 by default). */
  database: number
}

/**
 * The context of one command on the `atlas-erp:redis:command` TracingChannel.
 * `start` is published synchronously in the caller's async context (so a span
 * started there gets the caller's span as its parent), `asyncEnd` when the
 * command's promise settles, `error` before it when it rejects.
 */
export interface CommandTraceContext extends RedisEndpoint {
  /** The command's name, upper case: `GET`, `SET`, `EVALSHA`, or the first word given to `command()`. */
  command: string
  /**
   * How many commands travelled to the server in the same batch as this one
   * (commands called in the same tick are written together). Set when the batch
   * is written: read it from `asyncStart`/`asyncEnd`; absent when the command
   * was refused before it was queued (`ERR_CLOSED`, still connecting).
   */
  batchSize?: number
  /** The client that sent it. */
  client: RedisClient
  /** Set by the channel on rejection: the `RedisError`. */
  error?: RedisError
  /** Set by the channel on success: the reply, i.e. data. Never export it. */
  result?: unknown
}

/**
 * The context of one connection attempt on the `atlas-erp:redis:connect`
 * TracingChannel: `start` when it begins, `asyncEnd` when the connection is
 * ready, `error` (then `asyncStart`, `asyncEnd`) when it failed.
 */
export interface ConnectTraceContext extends RedisEndpoint {
  /** The client that connects. */
  client: RedisClient
  /** False for the client's first connection, true for a reconnection after it was lost. */
  reconnect: boolean
  /** Set on failure: the `RedisError` (`ERR_CONNECTION`, `ERR_AUTH`, `ERR_TLS`, `ERR_TIMEOUT`…), its message free of passwords. */
  error?: RedisError
}

/** @internal */
export const commandChannel = tracingChannel<unknown, CommandTraceContext>('atlas-erp:redis:command')
/** @internal */
export const connectChannel = tracingChannel<unknown, ConnectTraceContext>('atlas-erp:redis:connect')

/** Redis' name of the ops whose name is not simply theirs upper-cased. */
const OP_COMMANDS: Readonly<Record<string, string>> = { GetBuffer: 'GET', SetWith: 'SET' }

/** Op names by code. */
const OP_NAMES: string[] = []
for (const [name, code] of Object.entries(OP)) OP_NAMES[code] = name

/**
 * The command an op sends: the op's name for the typed ops, the first word for
 * `command()` (args[0]), EVALSHA or EVAL for scripts (args[3]: sent as EVAL).
 * @internal
 */
export function commandName(op: number, args: unknown[]): string {
  const name = OP_NAMES[op]
  if (name === 'Command') return typeof args[0] === 'string' ? args[0].toUpperCase() : 'COMMAND'
  if (name === 'Script') return args[3] === true ? 'EVAL' : 'EVALSHA'
  if (name === undefined) return 'UNKNOWN'
  return OP_COMMANDS[name] ?? name.toUpperCase()
}

/** The default address and port of the native config (src/engine/config.rs). */
const DEFAULT_HOST = '127.0.0.1'
const DEFAULT_PORT = 6379

/**
 * The endpoint that `RedisClient.connect(options)` connects to, read as the native
 * config reads it (URL, then host/port/db; or the REDIS_* variables), without
 * keeping anything secret. Once per client, at connect; never throws (what it
 * cannot read, it leaves out: the native layer refuses bad options itself).
 * @internal
 */
export function describeEndpoint(options: string | ConnectOptions | undefined): RedisEndpoint {
  try {
    if (options === undefined) return fromEnv(process.env)
    if (typeof options === 'string') return fromUrl(options) ?? { database: 0 }
    const base = (typeof options.url === 'string' && fromUrl(options.url)) || { serverAddress: DEFAULT_HOST, serverPort: DEFAULT_PORT, database: 0 }
    if (typeof options.host === 'string' && options.host !== '') base.serverAddress = options.host
    if (typeof options.port === 'number') base.serverPort = options.port
    if (typeof options.db === 'number') base.database = options.db
    if (options.sentinel !== undefined) return { database: base.database }
    return base
  } catch {
    return { database: 0 }
  }
}

function fromUrl(text: string): RedisEndpoint | undefined {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return undefined
  }
  const path = url.pathname.replace(/^\/+/, '')
  const db = url.searchParams.get('db') ?? path
  const database = /^\d+$/.test(db) ? Number(db) : 0
  if (url.protocol === 'memory:') return { database }
  return {
    // WHATWG URL keeps an IPv6 host in brackets; the semantic conventions want the address alone.
    serverAddress: url.hostname === '' ? DEFAULT_HOST : url.hostname.replace(/^\[(.*)\]$/, '$1'),
    serverPort: url.port === '' ? DEFAULT_PORT : Number(url.port),
    database,
  }
}

function fromEnv(env: NodeJS.ProcessEnv): RedisEndpoint {
  const get = (k: string) => {
    const v = env[k]?.trim()
    return v === undefined || v === '' ? undefined : v
  }
  let endpoint: RedisEndpoint
  const url = get('REDIS_URL')
  if (url !== undefined) {
    endpoint = fromUrl(url) ?? { database: 0 }
  } else {
    const port = Number(get('REDIS_PORT') ?? DEFAULT_PORT)
    const db = Number(get('REDIS_DB') ?? 0)
    endpoint = {
      serverAddress: get('REDIS_HOST') ?? DEFAULT_HOST,
      serverPort: Number.isInteger(port) ? port : DEFAULT_PORT,
      database: Number.isInteger(db) ? db : 0,
    }
  }
  return get('REDIS_SENTINELS') !== undefined ? { database: endpoint.database } : endpoint
}

/** A connect trace begins: publishes `start` and `end` (the attempt itself runs natively). @internal */
export function connectStarted(client: RedisClient, endpoint: RedisEndpoint, reconnect: boolean): ConnectTraceContext {
  const context: ConnectTraceContext = { ...endpoint, client, reconnect }
  connectChannel.start.publish(context)
  connectChannel.end.publish(context)
  return context
}

/** A connect trace ends: `error` first when it failed, then `asyncStart` and `asyncEnd` (tracePromise's order). @internal */
export function connectSettled(context: ConnectTraceContext, error?: RedisError): void {
  if (error !== undefined) {
    context.error = error
    connectChannel.error.publish(context)
  }
  connectChannel.asyncStart.publish(context)
  connectChannel.asyncEnd.publish(context)
}
