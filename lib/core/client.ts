import { NativeClient, NativeSubscriber, OP, SCRIPT, keySlot, slotTag } from './binding'
import { checkOptionKeys, isArray, isPlainObject } from './args'
import { TypedCommands } from './commands'
import { commandChannel, commandName, connectChannel, connectSettled, connectStarted, describeEndpoint, type CommandTraceContext, type ConnectTraceContext, type RedisEndpoint } from './diagnostics'
import { ErrorCode, RedisError, argumentError, checkArgs, invalidArgument } from './errors'
import { LocalCache } from './local-cache'
import { PendingTable, type Pending } from './pending'
import { Pipeline } from './transaction'
import { KIND, PubSub, type BufferMode, type MessageListener, type PatternListener, type RedisChannel, type SubscribeOptions } from './pubsub'
import { Script, scriptSha1, type ScriptOptions } from './script'
import { duplicateOptions, reconnectDelay } from './lifecycle'
import type { ClientCacheOptions, ClientStats, ClientStatus, ConnectOptions, GetExOptions, RedisKey, RedisValue, ScanOptions, SetOptions } from './types'

/** Command ids wrap at 2^30, as in the native layer. */
const ID_MASK = 0x3fffffff

/** The environment variables `RedisClient.connect()` reads when given nothing. */
export const ENV_VARS = [
  'REDIS_URL',
  'REDIS_HOST',
  'REDIS_PORT',
  'REDIS_PASSWORD',
  'REDIS_USERNAME',
  'REDIS_DB',
  'REDIS_TLS',
  'REDIS_KEY_PREFIX',
  'REDIS_SENTINELS',
  'REDIS_SENTINEL_MASTER',
  'REDIS_SENTINEL_USERNAME',
  'REDIS_SENTINEL_PASSWORD',
  'REDIS_CLUSTER_NODES',
] as const

const SET_OPTIONS = new Set(['ttlMs', 'ttlSeconds', 'nx', 'xx', 'keepTtl'])
const GETEX_OPTIONS = new Set(['ttlMs', 'ttlSeconds', 'persist'])
const SCAN_OPTIONS = new Set(['match', 'count', 'type'])

type State = 'connecting' | 'ready' | 'reconnecting' | 'closing' | 'closed'

/** Where a client's settings came from, kept for duplicate() and create()'s retries. */
interface Origin {
  options: string | ConnectOptions | undefined
  source: string
  payload: string
}

/**
 * Each client's Origin, outside the object: the settings may hold a password,
 * and nothing that prints or serializes a client (util.inspect, JSON) may show it.
 */
const origins = new WeakMap<RedisClient, Origin>()

/** The environment's REDIS_* variables, for the native config reader. */
function envSnapshot(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const k of ENV_VARS) {
    const v = process.env[k]
    if (v !== undefined) env[k] = v
  }
  return env
}

function serializeOptions(options: ConnectOptions): string {
  const tls = options.tls
  const plain: Record<string, unknown> = { ...options }
  if (tls && typeof tls === 'object') {
    const pem = (v: unknown) => (Buffer.isBuffer(v) ? v.toString('utf8') : v)
    plain.tls = { ...tls, ca: pem(tls.ca), cert: pem(tls.cert), key: pem(tls.key) }
  }
  // JSON would turn NaN and Infinity into null, i.e. "not given": refuse them here.
  try {
    return JSON.stringify(plain, (key, value) => {
      if (typeof value === 'number' && !Number.isFinite(value)) {
        throw invalidArgument(`connect(): option ${key} must be a finite number, got ${value}`)
      }
      return value
    })
  } catch (e) {
    throw argumentError(e, 'connect()')
  }
}

/**
 * A Redis client backed by a native (Rust) connection.
 *
 * Commands issued in the same tick travel to the native layer as one batch
 * and are written to the socket together; replies that arrive together come
 * back in one wake of the event loop. Each call still gets its own promise,
 * resolved in order, with its own error.
 *
 * ```ts
 * const redis = await RedisClient.connect()          // REDIS_URL or REDIS_HOST/PORT/PASSWORD
 * await redis.set('greeting', 'hello', 60)            // 60 s TTL
 * await redis.get('greeting')                          // 'hello'
 * await redis.close()
 * ```
 */
export class RedisClient extends TypedCommands {
  /** @internal */
  protected native!: NativeClient
  /** @internal */
  protected state: State = 'connecting'
  /** Made by create()/duplicate(): calls wait for the first connection, which is retried until it comes. */
  private lazy = false
  private connectTimeoutMs = 5000
  private reconnectMinMs = 50
  private reconnectMaxMs = 2000
  private attempt = 0
  private retryTimer?: NodeJS.Timeout
  /** Rejects the calls held while connecting once connectTimeoutMs has passed. */
  private holdTimer?: NodeJS.Timeout
  private lastError?: RedisError
  /** `reconnects` when watch() was called; unset when nothing is watched. */
  private watchedAt?: number
  /** On a cluster: the keyPrefix, for slot checks (undefined on a standalone client). @internal */
  protected slotPrefix?: string
  private queue: unknown[] = []
  private scheduled = false
  private firstId = 0
  private nextId = 0
  private readonly pending = new PendingTable()
  /** Set when `clientCache` is configured. @internal */
  protected localCache?: LocalCache
  private connectWaiter?: Omit<Pending, "id">
  private closeWaiters: Array<() => void> = []
  /** Where it connects, for the diagnostics channels (read once from the options). @internal */
  protected endpoint: RedisEndpoint = { database: 0 }
  /** The connection attempt being traced on `atlas-erp:redis:connect`, if anyone listened when it began. */
  private connectTrace?: ConnectTraceContext
  /** The traced commands of this tick's batch, which learn the batch's size when it is written. */
  private batchTraces?: CommandTraceContext[]

  protected constructor() {
    super()
  }

  /**
   * Connects and resolves once the server answered the handshake.
   *
   * - no argument: `REDIS_URL`, else `REDIS_HOST`, `REDIS_PORT` (6379), `REDIS_PASSWORD`,
   *   `REDIS_USERNAME`, `REDIS_DB`, `REDIS_TLS`; `REDIS_KEY_PREFIX` in both cases;
   * - a string: a `redis://` or `rediss://` URL, or `memory://[name][/db]` for the embedded
   *   in-process store (clients of one name in one process share it);
   * - an object: {@link ConnectOptions}.
   *
   * Rejects with `ERR_CONNECTION`, `ERR_AUTH`, `ERR_TLS` or `ERR_INVALID_ARGUMENT`.
   */
  static connect(options?: string | ConnectOptions): Promise<RedisClient> {
    const client = new RedisClient()
    return new Promise<RedisClient>((resolve, reject) => {
      client.connectWaiter = { resolve: () => resolve(client), reject }
      try {
        client.open(options, 'connect()')
      } catch (e) {
        client.state = 'closed'
        reject(RedisError.from(e))
      }
    })
  }

  /**
   * A client, at once: it connects in the background (and keeps trying until
   * it can, with the `reconnect` backoff). Calls made before it is ready wait
   * for it, up to `connectTimeoutMs` each, then reject with the last connect
   * error. Options as for {@link RedisClient.connect}; bad options throw
   * `ERR_INVALID_ARGUMENT` here.
   *
   * ```ts
   * const redis = RedisClient.create({ url: process.env.REDIS_URL, connectionName: 'api' })
   * redis.on('error', (e) => console.warn('redis:', e.message))
   * await redis.set('boot', String(Date.now()))   // waits for the connection
   * ```
   */
  static create(options?: string | ConnectOptions): RedisClient {
    const client = new RedisClient()
    client.lazy = true
    try {
      client.open(options, 'create()')
    } catch (e) {
      client.state = 'closed'
      throw RedisError.from(e)
    }
    return client
  }

  /**
   * A new client with the same settings (and `overrides`), on a connection of
   * its own, made at once like {@link RedisClient.create}: for `watch()`, or
   * for anything that must not share this client's connection.
   */
  duplicate(overrides?: Partial<ConnectOptions>): RedisClient {
    const origin = origins.get(this)
    if (origin === undefined) throw invalidArgument('duplicate(): this client has no settings of its own to copy')
    if (overrides !== undefined && !isPlainObject(overrides)) throw invalidArgument('duplicate(): overrides must be a plain ConnectOptions object')
    return RedisClient.create(duplicateOptions(origin.options, overrides))
  }

  /** 'connecting' (not ready yet), 'ready', 'reconnecting' (the connection was lost) or 'end' (closed). */
  get status(): ClientStatus {
    const s = this.state
    return s === 'closing' || s === 'closed' ? 'end' : s
  }

  /** Reads the settings, keeps them for duplicate(), and starts connecting. */
  private open(options: string | ConnectOptions | undefined, method: string): void {
    let source: string
    let payload: string
    if (options === undefined) {
      source = 'env'
      payload = JSON.stringify(envSnapshot())
      const prefix = process.env.REDIS_KEY_PREFIX
      if (process.env.REDIS_CLUSTER_NODES?.trim()) this.slotPrefix = prefix ?? ''
    } else if (typeof options === 'string') {
      source = 'url'
      payload = options
    } else if (isPlainObject(options)) {
      source = 'options'
      payload = serializeOptions(options)
      if (typeof options.connectTimeoutMs === 'number') this.connectTimeoutMs = options.connectTimeoutMs
      const r = options.reconnect
      if (isPlainObject(r)) {
        if (typeof r.minDelayMs === 'number') this.reconnectMinMs = r.minDelayMs
        if (typeof r.maxDelayMs === 'number') this.reconnectMaxMs = r.maxDelayMs
      }
      if (options.cluster !== undefined) this.slotPrefix = typeof options.keyPrefix === 'string' ? options.keyPrefix : ''
    } else {
      throw invalidArgument(`${method}: options must be a URL string or a ConnectOptions object`)
    }
    origins.set(this, { options, source, payload })
    this.startNative()
  }

  /** A native client for the settings (again, after a failed first connect of create()). */
  private startNative(): void {
    const { options, source, payload } = origins.get(this)!
    this.endpoint = describeEndpoint(options)
    if (connectChannel.hasSubscribers) this.connectTrace = connectStarted(this, this.endpoint, false)
    this.native = new NativeClient(source, payload, this.onEvents)
    const cacheOptions = isPlainObject(options) ? (options as ConnectOptions).clientCache : undefined
    if (cacheOptions !== undefined) this.enableLocalCache(cacheOptions)
  }

  // ---- events --------------------------------------------------------------------

  /**
   * `'ready'` (connected, and again after every reconnect), `'reconnecting'`
   * (the connection was lost: calls in flight failed, later ones wait for the
   * next connection; with the error. Also when the subscriber's connection is
   * lost: messages may be missed until `'resubscribed'`), `'error'` (a
   * connection error: a lost connection, a failed connect of `create()`, a
   * subscription refused on resubscribing), `'end'` (closed). An `'error'`
   * nobody listens to is dropped, never thrown.
   */
  on(event: 'ready' | 'end' | 'resubscribed', listener: () => void): this
  on(event: 'error' | 'reconnecting', listener: (error: RedisError) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this {
    return super.on(event, listener)
  }

  once(event: 'ready' | 'end' | 'resubscribed', listener: () => void): this
  once(event: 'error' | 'reconnecting', listener: (error: RedisError) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this {
    return super.once(event, listener)
  }

  /** 'error' only to listeners: EventEmitter would throw it when there are none. */
  private emitError(error: RedisError): void {
    if (this.listenerCount('error') > 0) this.emit('error', error)
  }

  // ---- transactions and scripts ----------------------------------------------------

  /**
   * A transaction: the commands queued on it run atomically (MULTI/EXEC) when
   * `exec()` is called; see {@link Pipeline}.
   *
   * ```ts
   * const [, visits] = (await redis.multi().set('seen', '1').incr('visits').exec())!
   * ```
   */
  multi(): Pipeline {
    return new Pipeline(this, true)
  }

  /** A pipeline: the builder of {@link multi}, without atomicity (each command runs on its own). */
  pipeline(): Pipeline {
    return new Pipeline(this, false)
  }

  /**
   * WATCHes keys on this client's connection: the next `multi().exec()` of
   * this client resolves `null` if any of them changed meanwhile (or if the
   * connection was replaced since). The watch belongs to the connection, so
   * use it on a client of its own (`duplicate()`).
   */
  watch(...keys: Array<RedisKey | RedisKey[]>): Promise<void> {
    if (this.watchedAt === undefined && this.state !== 'closed' && this.state !== 'closing') this.watchedAt = this.reconnectCount()
    return this.send(OP.Watch, flatten(keys))
  }

  /** Forgets every watched key (EXEC does too). */
  unwatch(): Promise<void> {
    this.watchedAt = undefined
    return this.send(OP.Unwatch)
  }

  /**
   * Runs a Lua script: EVALSHA, and EVAL when the server does not have the
   * script yet (NOSCRIPT: nothing ran, so this is no retry). The keyPrefix
   * applies to `keys` (the script's KEYS); `args` (ARGV) go as they are.
   *
   * ```ts
   * await redis.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", ['hits'], [5])
   * ```
   */
  eval(script: string, keys: RedisKey[] = [], args: Array<RedisValue | number> = []): Promise<unknown> {
    let sha: string
    try {
      sha = scriptSha1(script, 'eval()')
      if (!isArray(keys)) throw invalidArgument('eval(): keys must be an array')
      if (!isArray(args)) throw invalidArgument('eval(): args must be an array')
    } catch (e) {
      return Promise.reject(argumentError(e, 'eval()'))
    }
    return this.evalSha(sha, script, keys, args)
  }

  /** EVALSHA `sha`, then EVAL `script` on NOSCRIPT. @internal */
  evalSha(sha: string, script: string, keys: RedisKey[], args: Array<RedisValue | number>): Promise<unknown> {
    return this.send(OP.Eval, sha, keys, args, false).catch((e: RedisError) =>
      e?.serverCode === 'NOSCRIPT' ? this.send(OP.Eval, script, keys, args, true) : Promise.reject(e),
    )
  }

  /**
   * A script to run many times: `run(keys, args)` sends EVALSHA (EVAL only
   * when the server lacks it). With `keys`, every run must pass that many keys.
   *
   * ```ts
   * const takeToken = redis.defineScript("return redis.call('DECR', KEYS[1])", { keys: 1 })
   * await takeToken.run(['tokens:user:1'])
   * ```
   */
  defineScript(script: string, options?: ScriptOptions): Script {
    return new Script(this, script, options)
  }

  // ---- pub/sub (lib/core/pubsub.ts, docs/pubsub.md) --------------------------------

  /**
   * Subscribes `listener` to `channels`. Subscriptions live on a connection of
   * their own (this client's other calls go on as before), are made again after
   * every reconnect (`'reconnecting'` then `'resubscribed'`: messages published
   * in between are missed), and keep the process running until unsubscribed or
   * `close()`d. Resolves once the server confirmed. Channels are not prefixed by
   * `keyPrefix`. `{ buffers: true }` (or `true`): Buffers instead of strings.
   *
   * ```ts
   * await redis.subscribe('invalidate', (message, channel) => cache.delete(message))
   * await other.publish('invalidate', 'user:42')   // 1: one subscriber heard it
   * ```
   */
  subscribe(channels: RedisChannel | RedisChannel[], listener: MessageListener<Buffer>, options: BufferMode): Promise<void>
  subscribe(channels: RedisChannel | RedisChannel[], listener: MessageListener, options?: SubscribeOptions | boolean): Promise<void>
  subscribe(channels: RedisChannel | RedisChannel[], listener: MessageListener<any>, options?: SubscribeOptions | boolean): Promise<void> {
    return this.pubsub().subscribe(KIND.channel, 'subscribe()', channels, listener, options)
  }

  /** Subscribes `listener` to the channels matching glob `patterns` (PSUBSCRIBE); see {@link subscribe}. */
  psubscribe(patterns: RedisChannel | RedisChannel[], listener: PatternListener<Buffer>, options: BufferMode): Promise<void>
  psubscribe(patterns: RedisChannel | RedisChannel[], listener: PatternListener, options?: SubscribeOptions | boolean): Promise<void>
  psubscribe(patterns: RedisChannel | RedisChannel[], listener: PatternListener<any>, options?: SubscribeOptions | boolean): Promise<void> {
    return this.pubsub().subscribe(KIND.pattern, 'psubscribe()', patterns, listener, options)
  }

  /**
   * Subscribes `listener` to shard `channels` (SSUBSCRIBE, Redis 7): on a
   * cluster, each on the master of its slot, following the slot when a reshard
   * moves it; see {@link subscribe}.
   */
  ssubscribe(channels: RedisChannel | RedisChannel[], listener: MessageListener<Buffer>, options: BufferMode): Promise<void>
  ssubscribe(channels: RedisChannel | RedisChannel[], listener: MessageListener, options?: SubscribeOptions | boolean): Promise<void>
  ssubscribe(channels: RedisChannel | RedisChannel[], listener: MessageListener<any>, options?: SubscribeOptions | boolean): Promise<void> {
    return this.pubsub().subscribe(KIND.shard, 'ssubscribe()', channels, listener, options)
  }

  /**
   * Removes `listener` (or every listener) from `channels` (or from every
   * channel); a channel left without listeners is unsubscribed and delivers
   * nothing more from the moment of this call.
   */
  unsubscribe(channels?: RedisChannel | RedisChannel[], listener?: MessageListener<any>): Promise<void> {
    return this.pubsub().unsubscribe(KIND.channel, 'unsubscribe()', channels, listener)
  }

  /** {@link unsubscribe} for patterns. */
  punsubscribe(patterns?: RedisChannel | RedisChannel[], listener?: PatternListener<any>): Promise<void> {
    return this.pubsub().unsubscribe(KIND.pattern, 'punsubscribe()', patterns, listener)
  }

  /** {@link unsubscribe} for shard channels. */
  sunsubscribe(channels?: RedisChannel | RedisChannel[], listener?: MessageListener<any>): Promise<void> {
    return this.pubsub().unsubscribe(KIND.shard, 'sunsubscribe()', channels, listener)
  }

  /** PUBLISH: resolves how many subscribers received the message (on a cluster, those of the node that took it). */
  publish(channel: RedisChannel, message: RedisValue): Promise<number> {
    return this.command('PUBLISH', channel, message) as Promise<number>
  }

  /** SPUBLISH (Redis 7): publishes to a shard channel, at the master of its slot on a cluster. */
  spublish(channel: RedisChannel, message: RedisValue): Promise<number> {
    return this.command('SPUBLISH', channel, message) as Promise<number>
  }

  /** This client's subscriptions, made on first use. */
  private pubsubState?: PubSub

  private pubsub(): PubSub {
    return (this.pubsubState ??= new PubSub({
      open: (onEvents) => {
        const { source, payload } = origins.get(this)!
        return new NativeSubscriber(source, payload, onEvents)
      },
      emit: (event, ...args) => {
        if (event === 'error') this.emitError(args[0] as RedisError)
        else this.emit(event, ...args)
      },
      closed: () => this.state === 'closing' || this.state === 'closed',
    }))
  }

  /** The slot of `key` (keyPrefix included) on a cluster; undefined on a standalone client. @internal */
  clusterSlot(key: unknown): number | undefined {
    const prefix = this.slotPrefix
    if (prefix === undefined) return undefined
    if (typeof key === 'string') return keySlot(Buffer.from(prefix + key))
    if (Buffer.isBuffer(key)) return keySlot(prefix === '' ? key : Buffer.concat([Buffer.from(prefix), key]))
    if (typeof key === 'number') return keySlot(Buffer.from(prefix + String(key)))
    return -1
  }

  /** Whether a watch() of this client was lost to a reconnect; forgets the watch either way. @internal */
  takeWatch(): boolean {
    const at = this.watchedAt
    this.watchedAt = undefined
    return at !== undefined && at !== this.reconnectCount()
  }

  private reconnectCount(): number {
    try {
      return this.stats().reconnects
    } catch {
      return 0
    }
  }

  // ---- strings ----------------------------------------------------------------

  /** The value of `key` as a UTF-8 string, or null when it does not exist. */
  get(key: RedisKey): Promise<string | null> {
    const cache = this.localCache
    if (cache !== undefined && typeof key === 'string' && cache.covers(key)) return this.cachedGet(cache, key)
    return this.send(OP.Get, key)
  }

  /** Whether `get(key)` is served by the client-side cache. @internal */
  cachesKey(key: string): boolean {
    return this.localCache !== undefined && this.localCache.covers(key)
  }

  /** GET through the client-side cache: served from memory when the server has not invalidated it. */
  private cachedGet(cache: LocalCache, key: string): Promise<string | null> {
    const hit = cache.lookup(key)
    if (hit !== undefined) {
      cache.hits++
      return Promise.resolve(hit.value)
    }
    cache.misses++
    const generation = cache.generation
    return this.send<string | null>(OP.Get, key).then((value) => {
      cache.store(key, value, generation)
      return value
    })
  }

  /** The value of `key` as raw bytes, or null when it does not exist. */
  getBuffer(key: RedisKey): Promise<Buffer | null> {
    return this.send(OP.GetBuffer, key)
  }

  /**
   * `set(key, value, ttlSeconds?)` stores the value (optionally expiring after
   * `ttlSeconds`). `set(key, value, { ttlMs | ttlSeconds, nx | xx, keepTtl })`
   * resolves whether it wrote (false when NX/XX prevented it).
   */
  set(key: RedisKey, value: RedisValue, ttlSeconds?: number): Promise<void>
  set(key: RedisKey, value: RedisValue, options: SetOptions): Promise<boolean>
  set(key: RedisKey, value: RedisValue, ttl?: number | SetOptions): Promise<void | boolean> {
    if (typeof ttl !== 'object' || ttl === null) return this.send(OP.Set, key, value, ttl)
    let o: Record<string, unknown>
    try {
      if (!isPlainObject(ttl)) return this.send(OP.Set, key, value, ttl) // the native check names it
      checkOptionKeys('set()', ttl, SET_OPTIONS)
      o = { ttlSeconds: ttl.ttlSeconds, ttlMs: ttl.ttlMs, nx: ttl.nx, xx: ttl.xx, keepTtl: ttl.keepTtl }
    } catch (e) {
      return Promise.reject(argumentError(e, 'set()'))
    }
    return this.send(OP.SetWith, key, value, o.ttlSeconds, o.ttlMs, o.nx, o.xx, o.keepTtl)
  }

  /** Deletes keys; resolves how many existed. */
  del(...keys: Array<RedisKey | RedisKey[]>): Promise<number> {
    return this.send(OP.Del, flatten(keys))
  }

  /** How many of the keys exist (a key named twice counts twice). */
  exists(...keys: Array<RedisKey | RedisKey[]>): Promise<number> {
    return this.send(OP.Exists, flatten(keys))
  }

  /** Sets a TTL in seconds; resolves false when the key does not exist. */
  expire(key: RedisKey, seconds: number): Promise<boolean> {
    return this.send(OP.Expire, key, seconds)
  }

  /** Sets a TTL in milliseconds; resolves false when the key does not exist. */
  pexpire(key: RedisKey, milliseconds: number): Promise<boolean> {
    return this.send(OP.PExpire, key, milliseconds)
  }

  /** Seconds to live; -1 without expiry, -2 when the key does not exist. */
  ttl(key: RedisKey): Promise<number> {
    return this.send(OP.Ttl, key)
  }

  /** Milliseconds to live; -1 without expiry, -2 when the key does not exist. */
  pttl(key: RedisKey): Promise<number> {
    return this.send(OP.PTtl, key)
  }

  incr(key: RedisKey): Promise<number> {
    return this.send(OP.Incr, key)
  }

  incrBy(key: RedisKey, increment: number): Promise<number> {
    return this.send(OP.IncrBy, key, increment)
  }

  /** Values of several keys, null where a key does not exist. */
  mget(...keys: Array<RedisKey | RedisKey[]>): Promise<Array<string | null>> {
    return this.send(OP.MGet, flatten(keys))
  }

  /** Sets several keys at once (atomically). */
  mset(entries: Record<string, RedisValue> | Map<RedisKey, RedisValue> | Array<[RedisKey, RedisValue]>): Promise<void> {
    return this.send(OP.MSet, pairsArg(entries))
  }

  /** Deletes the key and returns its value (null if it did not exist). */
  getDel(key: RedisKey): Promise<string | null> {
    return this.send(OP.GetDel, key)
  }

  /** Returns the value and changes its TTL (`ttlSeconds`, `ttlMs`) or removes it (`persist`). */
  getEx(key: RedisKey, options: GetExOptions = {}): Promise<string | null> {
    let o: Record<string, unknown>
    try {
      if (!isPlainObject(options)) throw invalidArgument('getEx(): options must be a plain object')
      checkOptionKeys('getEx()', options, GETEX_OPTIONS)
      o = { ttlSeconds: options.ttlSeconds, ttlMs: options.ttlMs, persist: options.persist }
    } catch (e) {
      return Promise.reject(argumentError(e, 'getEx()'))
    }
    return this.send(OP.GetEx, key, o.ttlSeconds, o.ttlMs, o.persist)
  }

  // ---- hashes and sets ----------------------------------------------------------

  hget(key: RedisKey, field: RedisValue): Promise<string | null> {
    return this.send(OP.HGet, key, field)
  }

  /** `hset(key, field, value)` or `hset(key, { field: value, … })`; resolves how many fields were added. */
  hset(key: RedisKey, field: RedisValue, value: RedisValue): Promise<number>
  hset(key: RedisKey, fields: Record<string, RedisValue> | Map<RedisValue, RedisValue>): Promise<number>
  hset(key: RedisKey, field: unknown, value?: RedisValue): Promise<number> {
    if (isMap(field)) return this.send(OP.HSet, key, pairsArg(field), undefined)
    return this.send(OP.HSet, key, field, value)
  }

  /** All fields of a hash ({} when the key does not exist). */
  hgetall(key: RedisKey): Promise<Record<string, string>> {
    return this.send(OP.HGetAll, key)
  }

  hdel(key: RedisKey, ...fields: Array<RedisValue | RedisValue[]>): Promise<number> {
    return this.send(OP.HDel, key, flatten(fields))
  }

  sadd(key: RedisKey, ...members: Array<RedisValue | RedisValue[]>): Promise<number> {
    return this.send(OP.SAdd, key, flatten(members))
  }

  srem(key: RedisKey, ...members: Array<RedisValue | RedisValue[]>): Promise<number> {
    return this.send(OP.SRem, key, flatten(members))
  }

  smembers(key: RedisKey): Promise<string[]> {
    return this.send(OP.SMembers, key)
  }

  // ---- keys, generic, admin --------------------------------------------------------

  /**
   * Iterates over keys with SCAN (never KEYS). With a `keyPrefix`, only that
   * prefix's keys are visited and they are yielded without it.
   *
   * ```ts
   * for await (const key of redis.scan({ match: 'session:*', count: 500 })) { … }
   * ```
   */
  async *scan(options: ScanOptions = {}): AsyncIterableIterator<string> {
    const o = checkArgs('scan()', () => {
      if (!isPlainObject(options)) throw invalidArgument('scan(): options must be a plain object')
      checkOptionKeys('scan()', options, SCAN_OPTIONS)
      return { match: options.match, count: options.count, type: options.type }
    })
    let cursor = '0'
    do {
      const [next, keys] = await this.send<[string, string[]]>(OP.Scan, cursor, o.match, o.count, o.type)
      cursor = next
      yield* keys
    } while (cursor !== '0')
  }

  /**
   * Any other command. Arguments are strings, Buffers or numbers; keys are
   * prefixed by `keyPrefix` for the commands whose key positions are known.
   *
   * ```ts
   * await redis.command('LPUSH', 'jobs', 'a', 'b')   // 2
   * ```
   */
  command(name: string, ...args: Array<RedisValue | number>): Promise<unknown> {
    return this.send(OP.Command, name, args)
  }

  /** Round trip to the server, in milliseconds. */
  async ping(): Promise<number> {
    const start = process.hrtime.bigint()
    await this.send(OP.Ping)
    return Number(process.hrtime.bigint() - start) / 1e6
  }

  /** Counters since connect: commands, errors, timeouts, reconnects, in-flight, latency. */
  stats(): ClientStats {
    const s = this.native.stats()
    const stats = this.statsWith(s, this.pending.size, {
      p50Ms: s.latencyP50Us / 1000,
      p99Ms: s.latencyP99Us / 1000,
      maxMs: s.latencyMaxUs / 1000,
    })
    const c = s.cluster
    if (c) stats.cluster = { masters: c[0], moved: c[1], ask: c[2], retries: c[3], refreshes: c[4] }
    return stats
  }

  /** @internal */
  protected statsWith(
    s: { commands: number; batches: number; replies: number; errors: number; timeouts: number; reconnects: number },
    inFlight: number,
    latency: ClientStats['latency'],
  ): ClientStats {
    return {
      commands: s.commands,
      batches: s.batches,
      replies: s.replies,
      errors: s.errors,
      timeouts: s.timeouts,
      reconnects: s.reconnects,
      inFlight,
      latency,
      rateLimitCacheHits: this.rateLimitCacheHits,
      clientCache: this.localCache && {
        hits: this.localCache.hits,
        misses: this.localCache.misses,
        invalidations: this.localCache.invalidations,
        entries: this.localCache.size,
      },
    }
  }

  /**
   * Rate-limit calls answered from memory without a round trip (by `rateLimit`
   * and by the throttler storage), which `stats()` reports. Counted by those
   * features, so that the client needs none of them. @internal
   */
  rateLimitCacheHits = 0

  /** Per-client state of the package's features, by key. */
  private readonly features = new Map<symbol, unknown>()

  /**
   * A feature's state for this client (its caches, its pacer…), made by `init`
   * on first use: features keep what belongs to one client here, so it lives
   * and goes with the client. @internal
   */
  featureState<T>(key: symbol, init: () => T): T {
    let value = this.features.get(key) as T | undefined
    if (value === undefined) {
      value = init()
      this.features.set(key, value)
    }
    return value
  }

  /**
   * A key for data that a script uses together with `key` (e.g. a lock): `key`
   * + `suffix`, and on a cluster also in `key`'s slot. @internal
   */
  siblingKey(key: string, suffix: string): string {
    if (this.slotPrefix === undefined) return key + suffix
    const full = this.slotPrefix + key
    // A key with a hash tag (or an unclosed `{`, after which no tag can be added) keeps it.
    if (full.includes('{')) return key + suffix
    return `${key}${suffix}{${slotTag(full)}}`
  }

  /**
   * Waits for every reply in flight, then disconnects (subscriptions end at
   * once). Later calls reject with `ERR_CLOSED`; an idle process can exit at once.
   */
  close(): Promise<void> {
    const subscriber = this.pubsubState?.close()
    if (subscriber !== undefined) return Promise.all([subscriber, this.closeClient()]).then(() => undefined)
    return this.closeClient()
  }

  private closeClient(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve()
    if (this.retryTimer !== undefined) {
      // create() between two connect attempts: no native client is alive.
      clearTimeout(this.retryTimer)
      this.retryTimer = undefined
      this.state = 'closed'
      this.rejectHeld(new RedisError(ErrorCode.Closed, 'the client is closed'))
      this.emit('end')
      return Promise.resolve()
    }
    const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve))
    if (this.state !== 'closing') {
      if (this.state === 'connecting') this.rejectHeld(new RedisError(ErrorCode.Closed, 'the client is closed'))
      this.state = 'closing'
      if (this.scheduled) this.flush()
      this.native.close()
    }
    return done
  }

  /**
   * Runs one of the package's Lua scripts by EVALSHA, and by EVAL when the
   * server does not have it (NOSCRIPT means nothing ran, so this is no retry).
   * Keys get the key prefix. For the package's own modules.
   * @internal
   */
  runScript(name: string, keys: RedisKey[], args: Array<RedisValue | number>): Promise<unknown> {
    const id = SCRIPT[name]
    if (id === undefined) return Promise.reject(invalidArgument(`unknown script ${JSON.stringify(name)}`))
    return this.send(OP.Script, id, keys, args, false).catch((e: RedisError) =>
      e.serverCode === 'NOSCRIPT'
        ? this.send(OP.Script, id, keys, args, true)
        : Promise.reject(e),
    )
  }

  // ---- plumbing ------------------------------------------------------------------

  /** Queues one command for this tick's batch. @internal */
  protected send<T>(op: number, ...args: unknown[]): Promise<T> {
    if (commandChannel.hasSubscribers) return this.sendTraced<T>(op, args)
    return this.enqueue<T>(op, args)
  }

  /** send() while someone listens on `atlas-erp:redis:command`: one trace per command (see docs/observability.md). */
  private sendTraced<T>(op: number, args: unknown[]): Promise<T> {
    const trace: CommandTraceContext = { command: commandName(op, args), ...this.endpoint, client: this }
    return commandChannel.tracePromise(() => {
      const id = this.nextId
      const sent = this.enqueue<T>(op, args)
      if (this.nextId !== id) (this.batchTraces ??= []).push(trace) // queued, not refused
      return sent
    }, trace)
  }

  private enqueue<T>(op: number, args: unknown[]): Promise<T> {
    const state = this.state
    const held = state === 'connecting'
    if (state !== 'ready' && state !== 'reconnecting' && !(held && this.lazy)) {
      return Promise.reject(
        held
          ? new RedisError(ErrorCode.Connection, 'the client is still connecting')
          : new RedisError(ErrorCode.Closed, 'the client is closed'),
      )
    }
    const id = this.nextId
    this.nextId = (id + 1) & ID_MASK
    if (!this.scheduled) {
      this.scheduled = true
      this.firstId = id
      // Before the first connection (create()), the batch waits for 'ready'.
      if (held) this.holdUntilReady()
      else queueMicrotask(this.flush)
    }
    const q = this.queue
    q.push(op)
    for (let i = 0; i < args.length; i++) q.push(args[i])
    return new Promise<T>((resolve, reject) => {
      this.pending.add({ id, resolve: resolve as (v: unknown) => void, reject })
    })
  }

  /** Starts the connectTimeoutMs clock of the calls held while connecting. */
  private holdUntilReady(): void {
    if (this.holdTimer !== undefined) return
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined
      if (this.state !== 'connecting' || !this.scheduled) return
      const last = this.lastError
      const err = new RedisError(
        last !== undefined && last.code !== ErrorCode.InvalidArgument ? last.code : ErrorCode.Connection,
        `not connected within connectTimeoutMs (${this.connectTimeoutMs} ms)` + (last !== undefined ? `: ${last.detail}` : ''),
        last?.serverCode,
      )
      this.rejectHeld(err)
    }, this.connectTimeoutMs)
  }

  /** Rejects every call held while connecting. */
  private rejectHeld(err: RedisError): void {
    if (this.holdTimer !== undefined) clearTimeout(this.holdTimer)
    this.holdTimer = undefined
    if (!this.scheduled) return
    this.scheduled = false
    this.queue = []
    for (let id = this.firstId; id !== this.nextId; id = (id + 1) & ID_MASK) this.settle(id, err)
  }

  private flush = (): void => {
    if (!this.scheduled || this.state === 'connecting') return
    this.scheduled = false
    const q = this.queue
    this.queue = []
    const first = this.firstId
    const traces = this.batchTraces
    if (traces !== undefined) {
      this.batchTraces = undefined
      const size = (this.nextId - first) & ID_MASK
      for (const t of traces) t.batchSize = size
    }
    let refused: Array<number | string> | undefined
    try {
      refused = this.native.submit(q, first)
    } catch (e) {
      // Not expected (input errors are per command); fail this batch, keep the client.
      const err = RedisError.from(e)
      for (let id = first; id !== this.nextId; id = (id + 1) & ID_MASK) this.settle(id, err)
      return
    }
    if (refused !== undefined) {
      for (let i = 0; i < refused.length; i += 3) {
        const id = (first + (refused[i] as number)) & ID_MASK
        this.settle(id, new RedisError(refused[i + 1] as ErrorCode, refused[i + 2] as string))
      }
    }
  }

  private settle(id: number, error: Error): void {
    this.pending.take(id)?.reject(error)
  }

  /** What the native layer hands back: a burst of replies, or a part of one (see `delivery_chunk` in src/napi/mod.rs). */
  private onEvents = (replies: unknown[], events?: unknown[]): void => {
    const pending = this.pending
    for (let i = 0; i < replies.length; i += 2) {
      const id = replies[i] as number
      if (id >= 0) {
        pending.take(id)?.resolve(replies[i + 1])
      } else {
        this.settle(-id - 1, RedisError.from(replies[i + 1]))
      }
    }
    if (events !== undefined) for (const ev of events) this.onEvent(ev)
  }

  private enableLocalCache(options: ClientCacheOptions): void {
    const native = this.native
    this.localCache = new LocalCache(
      { prefixes: options.prefixes, maxEntries: options.maxEntries ?? 10_000, ttlMs: options.ttlMs ?? 60_000 },
      new Uint32Array(native.cacheEpoch()),
      () => native.drain(),
    )
  }

  /** Ends the traced connection attempt, if one is traced. */
  private settleConnectTrace(error?: RedisError): void {
    const trace = this.connectTrace
    if (trace === undefined) return
    this.connectTrace = undefined
    connectSettled(trace, error)
  }

  private onEvent(ev: unknown): void {
    if (Array.isArray(ev) && ev[0] === 'invalidate') {
      this.localCache?.invalidate(ev[1] as string[] | null)
    } else if (ev === 'cacheReset') {
      this.localCache?.reset()
    } else if (Array.isArray(ev) && ev[0] === 'reconnecting') {
      if (this.state !== 'ready') return
      this.state = 'reconnecting'
      const err = RedisError.from(ev[1])
      // diagnostics: a reconnect is a connect attempt of its own, ended by 'ready' or 'closed'
      if (connectChannel.hasSubscribers) this.connectTrace = connectStarted(this, this.endpoint, true)
      this.emit('reconnecting', err)
      this.emitError(err)
    } else if (ev === 'ready') {
      if (this.state === 'closing' || this.state === 'closed') return // close() wins; 'closed' follows
      const first = this.state === 'connecting'
      this.state = 'ready'
      this.settleConnectTrace()
      if (first) {
        this.attempt = 0
        this.lastError = undefined
        this.connectWaiter?.resolve(this)
        this.connectWaiter = undefined
        if (this.holdTimer !== undefined) clearTimeout(this.holdTimer)
        this.holdTimer = undefined
        if (this.scheduled) this.flush()
      }
      this.emit('ready')
    } else if (Array.isArray(ev) && this.lazy && this.state === 'connecting') {
      // create(): the first connect failed; try again after a pause.
      const err = RedisError.from(ev)
      this.lastError = err
      this.emitError(err)
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined
        if (this.state === 'connecting') this.startNative()
      }, reconnectDelay(this.attempt++, this.reconnectMinMs, this.reconnectMaxMs))
      this.retryTimer.unref()
    } else if (ev === 'closed' || Array.isArray(ev)) {
      const wasConnecting = this.state === 'connecting'
      this.state = 'closed'
      if (wasConnecting && Array.isArray(ev)) {
        const error = RedisError.from(ev)
        this.settleConnectTrace(error)
        this.connectWaiter?.reject(error)
        this.connectWaiter = undefined
      }
      const err = new RedisError(ErrorCode.Closed, 'the client is closed')
      this.settleConnectTrace(err) // closed while connecting
      for (const p of this.pending.drain()) p.reject(err)
      for (const w of this.closeWaiters.splice(0)) w()
      this.emit('end')
    }
  }
}

// The argument helpers below never throw: what they cannot read (a revoked Proxy, a
// throwing getter or iterator) goes to the native layer as it is, which refuses that
// one call with ERR_INVALID_ARGUMENT and leaves the rest of its batch alone.

/** @internal */
export function flatten<T>(items: Array<T | T[]>): T[] {
  if (items.length === 1 && isArray(items[0])) return items[0] as T[]
  return items as T[]
}

function isMap(v: unknown): v is Map<unknown, unknown> {
  try {
    return v instanceof Map
  } catch {
    return false
  }
}

/** Maps and entry lists become flat `[k, v, …]` arrays; plain objects pass as they are. @internal */
export function pairsArg(entries: unknown): unknown {
  try {
    if (isMap(entries) || Array.isArray(entries)) {
      const flat: unknown[] = []
      for (const kv of entries as Iterable<unknown>) {
        if (!Array.isArray(kv) || kv.length !== 2) return entries // let the native check name the problem
        flat.push(kv[0], kv[1])
      }
      return flat
    }
  } catch {
    // unreadable: the native check refuses it
  }
  return entries
}
