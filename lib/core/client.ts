import { NativeClient, OP, SCRIPT, slotTag } from './binding'
import { checkOptionKeys, isArray, isPlainObject } from './args'
import { TypedCommands } from './commands'
import { commandChannel, commandName, connectChannel, connectSettled, connectStarted, describeEndpoint, type CommandTraceContext, type ConnectTraceContext, type RedisEndpoint } from './diagnostics'
import { ErrorCode, RedisError, argumentError, checkArgs, invalidArgument } from './errors'
import { LocalCache } from './local-cache'
import { PendingTable, type Pending } from './pending'
import type { ClientCacheOptions, ClientStats, ConnectOptions, GetExOptions, RedisKey, RedisValue, ScanOptions, SetOptions } from './types'

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

type State = 'connecting' | 'ready' | 'closing' | 'closed'

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
  private queue: unknown[] = []
  private scheduled = false
  private firstId = 0
  private nextId = 0
  private readonly pending = new PendingTable()
  /** Set when `clientCache` is configured. @internal */
  protected localCache?: LocalCache
  private connectWaiter?: Omit<Pending, "id">
  /** Connected to a Redis Cluster (routing is native; scripts need their keys in one slot). */
  private cluster = false
  /** The key prefix, where siblingKey needs it (cluster mode). */
  private keyPrefix = ''
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
        let source: string
        let payload: string
        if (options === undefined) {
          source = 'env'
          payload = JSON.stringify(envSnapshot())
        } else if (typeof options === 'string') {
          source = 'url'
          payload = options
        } else if (isPlainObject(options)) {
          source = 'options'
          payload = serializeOptions(options)
        } else {
          throw invalidArgument('connect(): options must be a URL string or a ConnectOptions object')
        }
        client.endpoint = describeEndpoint(options)
        if (connectChannel.hasSubscribers) client.connectTrace = connectStarted(client, client.endpoint, false)
        client.native = new NativeClient(source, payload, client.onEvents)
        client.cluster = isPlainObject(options) ? options.cluster !== undefined : options === undefined && !!process.env.REDIS_CLUSTER_NODES?.trim()
        if (client.cluster) client.keyPrefix = isPlainObject(options) ? ((options as ConnectOptions).keyPrefix ?? '') : options === undefined ? (process.env.REDIS_KEY_PREFIX ?? '') : ''
        const cacheOptions = isPlainObject(options) ? (options as ConnectOptions).clientCache : undefined
        if (cacheOptions !== undefined) client.enableLocalCache(cacheOptions)
      } catch (e) {
        client.state = 'closed'
        reject(RedisError.from(e))
      }
    })
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
    if (!this.cluster) return key + suffix
    const full = this.keyPrefix + key
    // A key with a hash tag (or an unclosed `{`, after which no tag can be added) keeps it.
    if (full.includes('{')) return key + suffix
    return `${key}${suffix}{${slotTag(full)}}`
  }

  /**
   * Waits for every reply in flight, then disconnects. Later calls reject
   * with `ERR_CLOSED`; an idle process can exit at once.
   */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve()
    const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve))
    if (this.state !== 'closing') {
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
    if (this.state !== 'ready') {
      return Promise.reject(
        this.state === 'connecting'
          ? new RedisError(ErrorCode.Connection, 'the client is still connecting')
          : new RedisError(ErrorCode.Closed, 'the client is closed'),
      )
    }
    const id = this.nextId
    this.nextId = (id + 1) & ID_MASK
    if (!this.scheduled) {
      this.scheduled = true
      this.firstId = id
      queueMicrotask(this.flush)
    }
    const q = this.queue
    q.push(op)
    for (let i = 0; i < args.length; i++) q.push(args[i])
    return new Promise<T>((resolve, reject) => {
      this.pending.add({ id, resolve: resolve as (v: unknown) => void, reject })
    })
  }

  private flush = (): void => {
    if (!this.scheduled) return
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

  /** Everything the native layer hands back, one call per burst. */
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
    } else if (ev === 'ready') {
      this.state = 'ready'
      this.settleConnectTrace()
      this.connectWaiter?.resolve(this)
      this.connectWaiter = undefined
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
