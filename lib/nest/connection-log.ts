// RedisModule's `logConnectionEvents`: a connection's events (ready, reconnecting,
// errors) through Nest's Logger, read from the `atlas-erp:redis:connect` diagnostics
// channel, so that it needs nothing of the client but what the client publishes.
import type { TracingChannelSubscribers } from 'node:diagnostics_channel'

import { Logger } from '@nestjs/common'

import type { RedisClient } from '../core/client'
import { connectChannel, type ConnectTraceContext } from '../core/diagnostics'

/** The logs of the connections that have one, to stop them when the connection closes. */
const logs = new WeakMap<RedisClient, ConnectionLog>()

/** One connection's events, logged with the context `Redis` (`Redis:<name>` for a named connection). */
class ConnectionLog {
  private readonly logger: Logger
  /** The client whose events these are: the one whose connect() published while claiming. */
  private client?: RedisClient
  private claiming = false
  private readonly handlers: Partial<TracingChannelSubscribers<ConnectTraceContext>>

  constructor(name: string) {
    this.logger = new Logger(name === 'default' ? 'Redis' : `Redis:${name}`)
    this.handlers = {
      start: (ctx) => this.started(ctx),
      asyncEnd: (ctx) => this.settled(ctx),
    }
    connectChannel.subscribe(this.handlers as TracingChannelSubscribers<ConnectTraceContext>)
  }

  /**
   * Runs `connect`, taking as this log's client the one whose connection attempt
   * starts during the call: RedisClient.connect() publishes `start` synchronously,
   * before its promise exists, and the first events come before it resolves.
   */
  claim(connect: () => Promise<RedisClient>): Promise<RedisClient> {
    this.claiming = true
    let connecting: Promise<RedisClient>
    try {
      connecting = connect()
    } finally {
      this.claiming = false
    }
    return connecting.then(
      (client) => {
        this.client ??= client
        logs.set(client, this)
        return client
      },
      (e: unknown) => {
        this.stop()
        throw e
      },
    )
  }

  stop(): void {
    connectChannel.unsubscribe(this.handlers as TracingChannelSubscribers<ConnectTraceContext>)
  }

  private mine(ctx: ConnectTraceContext): boolean {
    if (this.client === undefined && this.claiming) this.client = ctx.client
    return ctx.client === this.client
  }

  private started(ctx: ConnectTraceContext): void {
    if (!this.mine(ctx)) return
    if (ctx.reconnect) this.logger.warn(`connection to ${where(ctx)} lost; reconnecting`)
    else this.logger.debug(`connecting to ${where(ctx)}`)
  }

  private settled(ctx: ConnectTraceContext): void {
    if (!this.mine(ctx)) return
    if (ctx.error !== undefined) {
      // The client's errors never hold a password.
      this.logger.error(`${ctx.reconnect ? 'reconnecting' : 'connecting'} to ${where(ctx)} failed: ${ctx.error.message}`)
    } else {
      this.logger.log(`${ctx.reconnect ? 'reconnected' : 'ready'}: ${where(ctx)}, db ${ctx.database}`)
    }
  }
}

/** `host:port` as a connection's events name it (Sentinel and memory:// connections have none). */
function where(ctx: ConnectTraceContext): string {
  if (ctx.serverAddress === undefined) return 'the server'
  const host = ctx.serverAddress.includes(':') ? `[${ctx.serverAddress}]` : ctx.serverAddress
  return `${host}:${ctx.serverPort}`
}

/**
 * Connects with `connect` and logs that connection's events through Nest's
 * Logger until {@link stopConnectionLog}. @internal
 */
export function connectLogged(name: string, connect: () => Promise<RedisClient>): Promise<RedisClient> {
  return new ConnectionLog(name).claim(connect)
}

/** Stops logging a connection's events (it is closing). @internal */
export function stopConnectionLog(client: RedisClient): void {
  logs.get(client)?.stop()
  logs.delete(client)
}
