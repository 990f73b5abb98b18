import 'reflect-metadata'
import {
  DynamicModule,
  Inject,
  Injectable,
  Module,
  type FactoryProvider,
  type ModuleMetadata,
  type OnApplicationShutdown,
  type Provider,
} from '@nestjs/common'

import { RedisClient } from '../core/client'
import { connectLogged, stopConnectionLog } from './connection-log'
import { ErrorCode, RedisError } from '../core/errors'
import type { ConnectOptions, RedisKey, RedisValue } from '../core/types'

/** What a connection is made from: options, a URL, or nothing (the environment). */
export type RedisConnection = ConnectOptions | string | undefined

/**
 * ConnectOptions (none at all: the environment, as apps/api/.env has it), plus:
 */
export interface RedisModuleOptions extends ConnectOptions {
  /** Name for a second (third, …) connection, injected with `@InjectRedis(name)`. */
  name?: string
  /** Make the providers available in every module without importing RedisModule there. */
  isGlobal?: boolean
  /**
   * Log the connection's events through Nest's `Logger` (context `Redis`, or
   * `Redis:<name>`): `ready` (log), `reconnecting` (warn), a failed connection
   * attempt (error, with the client's error, which never holds a password).
   * Read from the `atlas-erp:redis:connect` diagnostics channel. Default false.
   */
  logConnectionEvents?: boolean
}

export interface RedisModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  name?: string
  isGlobal?: boolean
  /** As {@link RedisModuleOptions.logConnectionEvents}. */
  logConnectionEvents?: boolean
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  inject?: FactoryProvider['inject']
  /** Resolves the connection (ConnectOptions, a URL, or undefined for the environment). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  useFactory: (...args: any[]) => RedisConnection | Promise<RedisConnection>
}

const DEFAULT = 'default'

/** The injection token of the `RedisClient` of connection `name`. */
export function getRedisToken(name: string = DEFAULT): string {
  return `AtlasRedisClient:${name}`
}

/** Injects the `RedisClient` of a connection: `constructor(@InjectRedis() redis: RedisClient)`. */
export function InjectRedis(name: string = DEFAULT): ParameterDecorator & PropertyDecorator {
  return Inject(getRedisToken(name))
}

/**
 * The seed's `RedisService`, kept call-compatible: `get(key)`, `set(key, value,
 * ttlSeconds?)`, and the full client as `client`.
 */
@Injectable()
export class RedisService {
  constructor(@InjectRedis() readonly client: RedisClient) {}

  get(key: RedisKey): Promise<string | null> {
    return this.client.get(key)
  }

  set(key: RedisKey, value: RedisValue, ttlSeconds?: number): Promise<void> {
    return this.client.set(key, value, ttlSeconds)
  }
}

/**
 * What `RedisHealthIndicator.isHealthy()` reports under its key. A type (not an
 * interface) so that it fits @nestjs/terminus' `HealthIndicatorResult`.
 */
export type RedisHealthDetails = {
  /** `'up'` when the health check's PING answered within `timeoutMs`. */
  status: 'up' | 'down'
  /** That PING's round trip in ms (when it answered). */
  latencyMs?: number
  /**
   * The client's connection state (`client.status`: `'connecting'`, `'ready'`,
   * `'reconnecting'`, `'end'`), reported only by a client that has one.
   */
  connection?: string
  /** `stats().reconnects`: connections re-established since connect. */
  reconnects?: number
  /** `stats().latency.p99Ms`: the 99th percentile round trip of every reply since connect. */
  p99Ms?: number
  /** Why it is down: the PING's error (`ERR_TIMEOUT …`, `ERR_CONNECTION …`, `ERR_CLOSED …`). */
  message?: string
}

/** Health of the default connection, for @nestjs/terminus (11+ style: results, not exceptions). */
@Injectable()
export class RedisHealthIndicator {
  constructor(@InjectRedis() private readonly client: RedisClient) {}

  /**
   * PINGs the server; `{ [key]: { status: 'up', latencyMs, reconnects, p99Ms } }`
   * (plus `connection`, the client's `status`, where the client has one), or
   * status `'down'` with the reason in `message` when the PING fails or takes
   * longer than `timeoutMs` (default 1000).
   *
   * ```ts
   * @Get('health') @HealthCheck()
   * check() { return this.health.check([() => this.redis.isHealthy('redis', { timeoutMs: 500 })]) }
   * ```
   */
  async isHealthy<K extends string = 'redis'>(
    key: K = 'redis' as K,
    options: { timeoutMs?: number } = {},
  ): Promise<Record<K, RedisHealthDetails>> {
    const timeoutMs = options.timeoutMs ?? 1000
    let timer: NodeJS.Timeout | undefined
    let details: RedisHealthDetails
    try {
      const latencyMs = await Promise.race([
        this.client.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new RedisError(ErrorCode.Timeout, `no PONG within ${timeoutMs} ms`)),
            timeoutMs,
          )
        }),
      ])
      details = { status: 'up', latencyMs: round(latencyMs) }
    } catch (e) {
      details = { status: 'down', message: (e as Error).message }
    } finally {
      clearTimeout(timer)
    }
    // Read after the PING, so that they describe the connection as it answered (or failed).
    const connection = connectionStatus(this.client)
    if (connection !== undefined) details.connection = connection
    const stats = this.client.stats()
    details.reconnects = stats.reconnects
    details.p99Ms = round(stats.latency.p99Ms)
    return { [key]: details } as Record<K, RedisHealthDetails>
  }
}

/**
 * The client's `status` where it has one (a string); undefined otherwise, and
 * then the PING alone tells up from down.
 */
function connectionStatus(client: RedisClient): string | undefined {
  const status: unknown = (client as unknown as { status?: unknown }).status
  return typeof status === 'string' ? status : undefined
}

/** Milliseconds to the microsecond, for a readable health payload. */
function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}

/** Closes a connection when the application shuts down, after its in-flight replies. */
class RedisCloser implements OnApplicationShutdown {
  constructor(private readonly client: RedisClient) {}

  async onApplicationShutdown(): Promise<void> {
    await this.client.close()
    stopConnectionLog(this.client)
  }
}

/** Connects, with the connection's events logged when asked. */
function connectWith(name: string, logConnectionEvents: boolean | undefined, connection: RedisConnection): Promise<RedisClient> {
  const connect = () => RedisClient.connect(connection)
  return logConnectionEvents === true ? connectLogged(name, connect) : connect()
}

function providersFor(name: string, factory: FactoryProvider): Provider[] {
  const token = getRedisToken(name)
  const providers: Provider[] = [
    { ...factory, provide: token },
    { provide: `AtlasRedisCloser:${name}`, useFactory: (c: RedisClient) => new RedisCloser(c), inject: [token] },
  ]
  if (name === DEFAULT) providers.push(RedisService, RedisHealthIndicator)
  return providers
}

function exportsFor(name: string): string[] | Array<string | typeof RedisService | typeof RedisHealthIndicator> {
  const token = getRedisToken(name)
  return name === DEFAULT ? [token, RedisService, RedisHealthIndicator] : [token]
}

/**
 * ```ts
 * @Module({ imports: [RedisModule.forRoot()] })               // REDIS_HOST / REDIS_PORT / REDIS_PASSWORD
 * @Module({ imports: [RedisModule.forRootAsync({
 *   imports: [ConfigModule], inject: [ConfigService],
 *   useFactory: (config: ConfigService) => config.get('REDIS_URL'),
 *   isGlobal: true,
 * })] })
 * ```
 */
@Module({})
export class RedisModule {
  static forRoot(options: RedisModuleOptions | string = {}): DynamicModule {
    const { name = DEFAULT, isGlobal, logConnectionEvents, ...rest } = typeof options === 'string' ? { url: options } : options
    // No connection option at all: read REDIS_URL / REDIS_HOST / REDIS_PORT / REDIS_PASSWORD.
    const connection: RedisConnection = Object.keys(rest).length > 0 ? rest : undefined
    return {
      module: RedisModule,
      global: isGlobal ?? false,
      providers: providersFor(name, { provide: '', useFactory: () => connectWith(name, logConnectionEvents, connection) }),
      exports: exportsFor(name),
    }
  }

  static forRootAsync(options: RedisModuleAsyncOptions): DynamicModule {
    const name = options.name ?? DEFAULT
    return {
      module: RedisModule,
      global: options.isGlobal ?? false,
      imports: options.imports ?? [],
      providers: providersFor(name, {
        provide: '',
        inject: options.inject ?? [],
        useFactory: async (...args: unknown[]) => connectWith(name, options.logConnectionEvents, await options.useFactory(...args)),
      }),
      exports: exportsFor(name),
    }
  }
}

export { RedisClient }
