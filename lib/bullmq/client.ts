// BullMQ 6's IRedisClient on this package's RedisClient: what BullMQ's Queue,
// Worker, QueueEvents and FlowProducer call, with the shapes and the
// connection life cycle (status, events, connect/disconnect/quit, duplicate)
// that BullMQ's RedisConnection expects of ioredis. Nothing is imported from
// 'bullmq' at run time: it stays an optional peer dependency.
import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import type { IRedisClient } from 'bullmq'
import { isPlainObject } from '../core/args'
import { RedisClient } from '../core/client'
import { ErrorCode, invalidArgument } from '../core/errors'
import { optionsFromEnv } from '../core/lifecycle'
import type { ConnectOptions, RedisValue } from '../core/types'
import { scriptDef, type ScriptDef } from './scripts'
import {
  ConnectionClosedError,
  argList,
  flatArgs,
  flatWithScores,
  hashFields,
  rethrow,
  resp2,
  scoreText,
  scriptArg,
  streamsReply,
} from './shapes'
import { BullMQTransaction } from './transaction'

/** The settings `new BullMQRedisClient()` takes: as `RedisClient.create()`, without `keyPrefix`. */
export type BullMQRedisOptions = string | Omit<ConnectOptions, 'keyPrefix'>

/** ConnectOptions' keys: what `duplicate(overrides)` takes of the overrides (BullMQ also passes ioredis options). */
const CONNECT_KEYS = [
  'url',
  'host',
  'port',
  'username',
  'password',
  'db',
  'tls',
  'connectTimeoutMs',
  'commandTimeoutMs',
  'reconnect',
  'clientCache',
  'sentinel',
  'cluster',
  'connectionName',
] as const

/** Each client's settings, outside the object: they may hold a password, which nothing that prints a client may show. */
const settingsOf = new WeakMap<BullMQRedisClient, ConnectOptions>()

/** The commands ioredis users (and BullMQ's tests) call on a client beyond IRedisClient: varargs in, RESP2-shaped replies out. */
const IOREDIS_COMMANDS = [
  'keys', 'exists', 'type', 'ttl', 'pttl', 'expire', 'pexpire', 'persist', 'incr', 'incrby', 'decr', 'decrby',
  'mget', 'getdel', 'hlen', 'hkeys', 'hvals', 'hincrby', 'hsetnx', 'zadd', 'zrem', 'zcount', 'zrank', 'zrevrank',
  'zrangebyscore', 'zrevrangebyscore', 'zincrby', 'zpopmin', 'sadd', 'srem', 'scard', 'sismember', 'lpush', 'rpush',
  'lpop', 'rpop', 'lindex', 'lrem', 'lset', 'xlen', 'xrange', 'xrevrange', 'xdel', 'xinfo', 'config', 'flushall',
  'flushdb', 'dbsize', 'ping', 'time', 'publish', 'script', 'object', 'memory',
] as const

/** Arguments of the ioredis-style commands: arrays are flattened one level, as ioredis does. */
export type IORedisArg = RedisValue | number | Array<RedisValue | number>

/** The ioredis-style commands a BullMQRedisClient also has (`keys`, `zadd`, `lpush`, `config`, …). */
export type IORedisStyleCommands = { [K in (typeof IOREDIS_COMMANDS)[number]]: (...args: IORedisArg[]) => Promise<any> }

/** The ioredis `status` words BullMQ reads: 'connecting', 'ready', 'reconnecting', 'end'. */
type Status = 'connecting' | 'ready' | 'reconnecting' | 'end'

interface Waiting {
  promise: Promise<RedisClient>
  resolve(raw: RedisClient): void
  reject(e: unknown): void
}

/**
 * BullMQ's Redis connection on this package's native client: pass it as
 * `connection` to `Queue`, `Worker`, `QueueEvents` and `FlowProducer`.
 *
 * ```ts
 * import { Queue, Worker } from 'bullmq'
 * import { BullMQRedisClient } from '@atlas-erp/redis/bullmq'
 *
 * const connection = new BullMQRedisClient()          // REDIS_URL or REDIS_HOST/PORT/PASSWORD…
 * const queue = new Queue('email', { connection })
 * const worker = new Worker('email', async (job) => send(job.data), { connection })
 * // on shutdown
 * await worker.close(); await queue.close(); await connection.quit()
 * ```
 *
 * It implements BullMQ 6's `IRedisClient`: BullMQ duplicates it for each
 * worker (a connection for its blocking wait, one for the rest) and loads its
 * Lua scripts on it (run by EVALSHA, EVAL when the server lacks them). Options
 * are `RedisClient.create()`'s — nothing: the REDIS_* environment; a URL; or
 * ConnectOptions, `cluster` included (give queues a `{hash tag}` prefix there:
 * `prefix: '{bull}'`) — except `keyPrefix`, which is refused: BullMQ's `prefix`
 * option does that job (from the environment, REDIS_KEY_PREFIX is left out).
 *
 * As ioredis with BullMQ's settings, calls made while the connection is down
 * wait for it to come back; calls in flight when it dropped fail with
 * `ConnectionClosedError` (message `'Connection is closed.'`, `code`
 * `ERR_CONNECTION`), which BullMQ's loops retry quietly.
 */
export class BullMQRedisClient extends EventEmitter implements IRedisClient {
  /** Whether it talks to a Redis Cluster (the `cluster` option, or REDIS_CLUSTER_NODES). */
  readonly isCluster: boolean
  /** The settings, without secrets (password, TLS keys), as ioredis' `options` for BullMQ to read. */
  options: Record<string, any>
  /** The connection of now; replaced when connect() follows a disconnect(). */
  private raw!: RedisClient
  /** disconnect() or quit() was called (until the next connect()). */
  private ended = false
  /** The last close of a connection, which quit() waits for. */
  private closing?: Promise<void>
  private readonly defs = new Map<string, ScriptDef>()
  /** SHAs of the scripts loaded on the connection of now (a new set per connection). */
  private loaded = new Set<string>()
  /** Calls that wait for the connection to be ready. */
  private waiting?: Waiting
  /** The connection's name (clientSetName(), or duplicate()'s `connectionName`), set again after every reconnect. */
  private name?: string

  constructor(options?: BullMQRedisOptions) {
    super()
    const settings = resolveSettings(options)
    settingsOf.set(this, settings)
    this.isCluster = settings.cluster !== undefined
    this.options = publicOptions(settings)
    this.open()
  }

  // ---- life cycle ------------------------------------------------------------------

  /** 'connecting', 'ready', 'reconnecting' (the connection was lost; calls wait) or 'end'. */
  get status(): Status {
    return this.ended ? 'end' : this.raw.status
  }

  /** BullMQ sets 'end' on a client it closed; setting it closes the connection if still open. */
  set status(value: string) {
    if (value === 'end' && !this.ended) this.disconnect()
  }

  /** Resolves once connected; after disconnect() or quit(), connects again. */
  connect(): Promise<void> {
    if (this.ended) this.open()
    const raw = this.raw
    if (raw.status === 'ready') return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const done = (error?: unknown) => {
        raw.off('ready', onReady)
        raw.off('error', onError)
        raw.off('end', onEnd)
        if (error === undefined) resolve()
        else reject(error)
      }
      const onReady = () => done()
      // As ioredis' connect(): the first failure rejects; the client keeps trying in the background.
      const onError = (e: unknown) => done(e)
      const onEnd = () => done(new ConnectionClosedError(ErrorCode.Closed))
      raw.on('ready', onReady)
      raw.on('error', onError)
      raw.on('end', onEnd)
    })
  }

  /**
   * Closes the connection now: blocking calls in flight (bzpopmin, xread with
   * BLOCK) are ended and reject with ConnectionClosedError; the others are
   * answered first. 'close' and 'end' are emitted at once. With `reconnect`,
   * connects again at once.
   */
  disconnect(reconnect = false): void {
    if (!this.ended) {
      void this.end()
      // At once, before anything can connect() again: BullMQ waits for 'end' to reconnect
      // its blocking connection, and a later 'end' would tell the new connection's waiters it is gone.
      this.emit('close')
      this.emit('end')
    }
    if (reconnect) this.connect().catch((e: unknown) => this.emitError(e))
  }

  /** Closes the connection once the calls in flight are answered (blocking ones interrupted); resolves 'OK'. */
  async quit(): Promise<string> {
    if (this.ended) {
      await this.closing
      return 'OK'
    }
    const raw = this.raw
    await this.end()
    // After quit() resolved, as ioredis does (callers listen for 'end' once it has).
    setImmediate(() => {
      this.emit('close')
      if (this.raw === raw && this.ended) this.emit('end')
    })
    return 'OK'
  }

  /**
   * A client with the same settings (and `overrides`: ConnectOptions such as
   * `connectionName`; ioredis-only options are ignored) on a connection of its
   * own, connecting at once, with the same scripts defined.
   */
  duplicate(overrides?: Record<string, unknown>): BullMQRedisClient {
    const settings: Record<string, unknown> = { ...settingsOf.get(this) }
    let name: string | undefined
    if (isPlainObject(overrides)) {
      for (const k of CONNECT_KEYS) if (k in overrides) settings[k] = overrides[k]
      // BullMQ names the duplicate a worker blocks on, and counts the connections of that name
      // as its workers: the name goes on the client's connection (CLIENT SETNAME), not on the
      // dedicated connections its blocking calls wait on as well — one worker, one entry. (On a
      // cluster, where CLIENT SETNAME would reach one node only, the setting names the dedicated
      // connections, the node connections redis-rs keeps having no name.)
      if (typeof overrides.connectionName === 'string' && !this.isCluster) {
        name = overrides.connectionName
        delete settings.connectionName
      }
    }
    const dup = new BullMQRedisClient(settings as ConnectOptions)
    if (name !== undefined) {
      dup.name = name
      dup.options.connectionName = name
    }
    for (const def of this.defs.values()) dup.register(def)
    return dup
  }

  /** A new connection with the settings; its events become this client's. */
  private open(): void {
    const raw = RedisClient.create(settingsOf.get(this)!)
    this.raw = raw
    this.ended = false
    this.loaded = new Set()
    let reconnected = false
    raw.on('ready', () => {
      if (raw !== this.raw) return
      // After a reconnect (maybe to a restarted server) no script is known loaded. Not on the
      // first ready: a preload waiting for it would mark its scripts in a discarded set.
      if (reconnected) this.loaded = new Set()
      reconnected = true
      if (this.name !== undefined) raw.command('CLIENT', 'SETNAME', this.name).catch(() => {})
      const w = this.waiting
      this.waiting = undefined
      w?.resolve(raw)
      this.emit('connect')
      this.emit('ready')
    })
    raw.on('reconnecting', () => {
      if (raw !== this.raw) return
      this.emit('close')
      this.emit('reconnecting')
    })
    raw.on('error', (e: unknown) => {
      if (raw === this.raw) this.emitError(e)
    })
    raw.on('end', () => {
      // Closed on its own (not by disconnect() or quit()).
      if (raw === this.raw && !this.ended) this.disconnect()
    })
  }

  /** Ends the connection of now (the caller emits 'close' and 'end'). */
  private end(): Promise<void> {
    this.ended = true
    const raw = this.raw
    const w = this.waiting
    this.waiting = undefined
    w?.reject(new ConnectionClosedError(ErrorCode.Closed))
    // close() ends the blocking calls at once (ERR_CLOSED); the others are answered first.
    this.closing = raw.close()
    return this.closing
  }

  /** 'error' only to listeners (EventEmitter would throw it when there are none). */
  private emitError(e: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', e)
  }

  /**
   * Runs `fn` on the connection: at once when it is ready; otherwise once it
   * is (as ioredis' offline queue, which BullMQ counts on), or rejects when
   * the client is ended. Errors as BullMQ reads them. @internal
   */
  send<T>(fn: (raw: RedisClient) => Promise<T>): Promise<T> {
    if (!this.ended && this.raw.status === 'ready') return fn(this.raw).catch(rethrow)
    return this.usable().then(fn).catch(rethrow)
  }

  private usable(): Promise<RedisClient> {
    const raw = this.raw
    if (this.ended || raw.status === 'end') return Promise.reject(new ConnectionClosedError(ErrorCode.Closed))
    if (raw.status === 'ready') return Promise.resolve(raw)
    if (this.waiting === undefined) {
      let resolve!: (raw: RedisClient) => void
      let reject!: (e: unknown) => void
      const promise = new Promise<RedisClient>((res, rej) => {
        resolve = res
        reject = rej
      })
      this.waiting = { promise, resolve, reject }
    }
    return this.waiting.promise
  }

  // ---- scripts ---------------------------------------------------------------------

  /**
   * Registers a Lua script under `name` for runCommand() (and, as in ioredis,
   * as a method: `client[name](...args)`). Nothing is sent: the script is run
   * by SHA, its source sent only when the server lacks it.
   */
  defineCommand(name: string, definition: { numberOfKeys: number; lua: string; readOnly?: boolean }): void {
    this.register(scriptDef(name, definition))
  }

  private register(def: ScriptDef): void {
    this.defs.set(def.name, def)
    // A method of its own, as ioredis makes (BullMQ checks for it), unless the name is one of the client's.
    if (!(def.name in BullMQRedisClient.prototype) && !(def.name in EventEmitter.prototype)) {
      Object.defineProperty(this, def.name, {
        value: (...args: unknown[]) => this.runCommand(def.name, args),
        configurable: true,
        writable: true,
      })
    }
  }

  /** Runs a script of defineCommand(): `args` are its KEYS, then its ARGV (also as one array). */
  runCommand(name: string, args: unknown[]): Promise<any> {
    const def = this.defs.get(name)
    if (def === undefined) return Promise.reject(invalidArgument(`runCommand(): no script named ${JSON.stringify(name)}; defineCommand() it first`))
    const all = argList(args)
    const n = def.numberOfKeys
    const keys = new Array<RedisValue>(n)
    for (let i = 0; i < n; i++) keys[i] = scriptArg(all[i]) as RedisValue
    const argv = new Array<RedisValue | number>(Math.max(0, all.length - n))
    for (let i = n; i < all.length; i++) argv[i - n] = scriptArg(all[i])
    return this.send((raw) => raw.evalSha(def.sha, def.lua, keys, argv))
  }

  /** The script registered under `name`. @internal */
  scriptNamed(name: string): ScriptDef {
    const def = this.defs.get(name)
    if (def === undefined) throw invalidArgument(`runCommand(): no script named ${JSON.stringify(name)}; defineCommand() it first`)
    return def
  }

  /** SCRIPT LOAD of the scripts not yet loaded on this connection (once per connection). @internal */
  async preload(defs: Iterable<ScriptDef>): Promise<void> {
    const missing: ScriptDef[] = []
    for (const d of defs) if (!this.loaded.has(d.sha)) missing.push(d)
    if (missing.length === 0) return
    const loaded = this.loaded
    await this.send((raw) => Promise.all(missing.map((d) => raw.command('SCRIPT', 'LOAD', d.lua))))
    for (const d of missing) loaded.add(d.sha)
  }

  // ---- transactions ----------------------------------------------------------------

  /** A MULTI/EXEC transaction of the commands BullMQ queues; exec() answers `[error, value]` pairs. */
  multi(): BullMQTransaction {
    return new BullMQTransaction(this, () => this.raw.multi(), true)
  }

  /** A pipeline (not atomic) of the same commands. */
  pipeline(): BullMQTransaction {
    return new BullMQTransaction(this, () => this.raw.pipeline(), false)
  }

  // ---- hashes, strings, sorted sets, lists, sets -----------------------------------

  hgetall(key: string): Promise<Record<string, string>> {
    return this.send((raw) => raw.hgetall(key))
  }

  hget(key: string, field: string): Promise<string | null> {
    return this.send((raw) => raw.hget(key, field))
  }

  hmget(key: string, ...fields: IORedisArg[]): Promise<(string | null)[]> {
    return this.send((raw) => raw.hmget(key, flatArgs(fields) as RedisValue[]))
  }

  /** `hset(key, { field: value, … })`, or ioredis' `hset(key, field, value, …)`; resolves how many fields were added. */
  hset(key: string, data: Record<string, string | number> | string, ...rest: IORedisArg[]): Promise<number> {
    const args = typeof data === 'object' && data !== null && !Buffer.isBuffer(data) ? hashFields(data) : flatArgs([data, ...rest])
    return this.send((raw) => raw.command('HSET', key, ...args) as Promise<number>)
  }

  hdel(key: string, ...fields: IORedisArg[]): Promise<number> {
    return this.send((raw) => raw.command('HDEL', key, ...flatArgs(fields)) as Promise<number>)
  }

  /** 1 or 0. */
  hexists(key: string, field: string): Promise<number> {
    return this.send((raw) => raw.command('HEXISTS', key, field) as Promise<number>)
  }

  get(key: string): Promise<string | null> {
    return this.send((raw) => raw.get(key))
  }

  /** `set(key, value, { PX } | { EX })`, or ioredis' `set(key, value, 'PX', ms, …)`; 'OK', or null when NX/XX prevented it. */
  set(key: string, value: string | number | Buffer, options?: { PX?: number; EX?: number } | string, ...rest: IORedisArg[]): Promise<string | null> {
    const args: Array<RedisValue | number> = [key, scriptArg(value)]
    if (typeof options === 'string') args.push(...flatArgs([options, ...rest]))
    else if (options?.PX != null) args.push('PX', options.PX)
    else if (options?.EX != null) args.push('EX', options.EX)
    return this.send((raw) => raw.command('SET', ...args) as Promise<string | null>)
  }

  del(...keys: IORedisArg[]): Promise<number> {
    const list = flatArgs(keys)
    if (list.length === 0) return Promise.resolve(0)
    return this.send((raw) => raw.command('DEL', ...list) as Promise<number>)
  }

  /** Members, or `[member, score, …]` with `{ WITHSCORES: true }` (or ioredis' 'WITHSCORES'), scores as text. */
  zrange(key: string, start: number, end: number, options?: { WITHSCORES?: boolean } | string): Promise<string[]> {
    return this.range('ZRANGE', key, start, end, options)
  }

  zrevrange(key: string, start: number, end: number, options?: { WITHSCORES?: boolean } | string): Promise<string[]> {
    return this.range('ZREVRANGE', key, start, end, options)
  }

  private range(name: string, key: string, start: number, end: number, options?: { WITHSCORES?: boolean } | string): Promise<string[]> {
    const withScores = typeof options === 'string' ? options.toUpperCase() === 'WITHSCORES' : options?.WITHSCORES === true
    if (!withScores) return this.send((raw) => raw.command(name, key, start, end) as Promise<string[]>)
    return this.send((raw) => raw.command(name, key, start, end, 'WITHSCORES').then(flatWithScores))
  }

  zcard(key: string): Promise<number> {
    return this.send((raw) => raw.command('ZCARD', key) as Promise<number>)
  }

  /** The score as text, or null. */
  zscore(key: string, member: string): Promise<string | null> {
    return this.send((raw) => raw.command('ZSCORE', key, member).then((v) => (v === null ? null : scoreText(v))))
  }

  lrange(key: string, start: number, end: number): Promise<string[]> {
    return this.send((raw) => raw.command('LRANGE', key, start, end) as Promise<string[]>)
  }

  llen(key: string): Promise<number> {
    return this.send((raw) => raw.command('LLEN', key) as Promise<number>)
  }

  ltrim(key: string, start: number, end: number): Promise<string> {
    return this.send((raw) => raw.command('LTRIM', key, start, end) as Promise<string>)
  }

  lpos(key: string, value: string): Promise<number | null> {
    return this.send((raw) => raw.command('LPOS', key, value) as Promise<number | null>)
  }

  smembers(key: string): Promise<string[]> {
    return this.send((raw) => raw.smembers(key))
  }

  // ---- streams ---------------------------------------------------------------------

  /** `xadd(key, id, { field: value }, { MAXLEN, approximate })` (approximate unless false), or ioredis' varargs. */
  xadd(key: string, id: string, fields: Record<string, string | number> | string, ...rest: any[]): Promise<string> {
    let args: Array<RedisValue | number>
    if (typeof fields === 'string') {
      args = [key, id, ...flatArgs([fields, ...rest])]
    } else {
      const o = rest[0] as { MAXLEN?: number; approximate?: boolean } | undefined
      args = [key]
      if (o?.MAXLEN != null) args.push('MAXLEN', o.approximate === false ? '=' : '~', o.MAXLEN)
      args.push(id, ...hashFields(fields))
    }
    return this.send((raw) => raw.command('XADD', ...args) as Promise<string>)
  }

  /**
   * Reads streams: `[[key, [[id, [field, value, …]], …]], …]` or null. With
   * `BLOCK` (ms) it waits on a dedicated connection of the client, as every
   * blocking command; disconnect() and quit() end it at once.
   */
  xread(streams: { key: string; id: string }[] | string, ...rest: any[]): Promise<any> {
    if (typeof streams === 'string') {
      return this.send((raw) => raw.command('XREAD', ...flatArgs([streams, ...rest])).then(streamsReply))
    }
    const o = rest[0] as { BLOCK?: number; COUNT?: number } | undefined
    const read = (ids: string[]) => {
      const args: Array<RedisValue | number> = []
      if (o?.COUNT != null) args.push('COUNT', o.COUNT)
      if (o?.BLOCK != null) args.push('BLOCK', Math.max(0, Math.ceil(o.BLOCK)))
      args.push('STREAMS')
      for (const s of streams) args.push(s.key)
      args.push(...ids)
      return this.send((raw) => raw.command('XREAD', ...args).then(streamsReply))
    }
    const ids = streams.map((s) => s.id)
    if (o?.BLOCK == null || !ids.includes('$')) return read(ids)
    // '$' is "what comes after now", and a blocking XREAD reaches the server later than the
    // calls made after it (it waits on a dedicated connection, opened on demand): now's last
    // id is read first, on the client's connection, so that no entry added meanwhile is missed
    // (QueueEvents starts from '$').
    return Promise.all(
      streams.map((s) =>
        s.id !== '$'
          ? s.id
          : this.send((raw) => raw.command('XREVRANGE', s.key, '+', '-', 'COUNT', 1)).then((v) => {
              const last = (v as unknown[][] | null)?.[0]?.[0]
              return last === undefined ? '0-0' : text(last)
            }),
      ),
    ).then(read)
  }

  /** `xtrim(key, 'MAXLEN', n, { approximate })` (exact unless approximate), or ioredis' varargs. */
  xtrim(key: string, strategy: 'MAXLEN', threshold: number | string, ...rest: any[]): Promise<number> {
    const args: Array<RedisValue | number> = [key, strategy]
    if (typeof threshold === 'string' || rest.length === 0 || typeof rest[0] !== 'object') args.push(...flatArgs([threshold, ...rest]))
    else args.push((rest[0] as { approximate?: boolean }).approximate === false ? '=' : '~', threshold)
    return this.send((raw) => raw.command('XTRIM', ...args) as Promise<number>)
  }

  // ---- blocking ----------------------------------------------------------------

  /**
   * BZPOPMIN: `[key, member, score]` (score as text), or null when nothing
   * came within `timeout` seconds. Like every blocking command it waits on a
   * dedicated connection of the client; disconnect() and quit() end it at once.
   */
  bzpopmin(key: string, timeout: number): Promise<[key: string, member: string, score: string] | null> {
    return this.send((raw) =>
      raw.command('BZPOPMIN', key, timeout).then((v) => {
        if (v === null || v === undefined) return null
        const r = v as unknown[]
        return [text(r[0]), text(r[1]), scoreText(r[2])] as [string, string, string]
      }),
    )
  }

  // ---- server ----------------------------------------------------------------------

  info(section?: string): Promise<string> {
    return this.send((raw) => (section === undefined ? raw.command('INFO') : raw.command('INFO', section)).then(text))
  }

  /** CLIENT SETNAME, set again after every reconnect. */
  clientSetName(name: string): Promise<any> {
    this.name = name
    return this.send((raw) => raw.command('CLIENT', 'SETNAME', name))
  }

  clientList(): Promise<string> {
    return this.send((raw) => raw.command('CLIENT', 'LIST').then(text))
  }

  clientInfo(): Promise<string> {
    return this.send((raw) => raw.command('CLIENT', 'INFO').then(text))
  }

  /** One SCAN step: `[nextCursor, keys]` (`scan(cursor, { MATCH, COUNT })`, or ioredis' varargs). */
  scan(cursor: string | number, ...rest: any[]): Promise<[string, string[]]> {
    let args: Array<RedisValue | number>
    if (rest.length === 0 || typeof rest[0] !== 'object' || rest[0] === null || Array.isArray(rest[0])) {
      args = [String(cursor), ...flatArgs(rest)]
    } else {
      const o = rest[0] as { MATCH?: string; COUNT?: number }
      args = [String(cursor)]
      if (o.MATCH != null) args.push('MATCH', o.MATCH)
      if (o.COUNT != null) args.push('COUNT', o.COUNT)
    }
    return this.send((raw) =>
      raw.command('SCAN', ...args).then((v) => {
        const [next, keys] = v as [unknown, unknown[]]
        return [text(next), keys.map(text)] as [string, string[]]
      }),
    )
  }

  /** The keys matching `match`, a page (an array of keys) per read, as ioredis' scanStream. */
  scanStream(options: { match: string; count?: number }): Readable {
    let cursor = '0'
    let started = false
    const scan = (): Promise<string[] | null> => {
      if (started && cursor === '0') return Promise.resolve(null)
      started = true
      return this.scan(cursor, { MATCH: options.match, COUNT: options.count }).then(([next, keys]) => {
        cursor = next
        // An empty page is no end: read on.
        return keys.length > 0 || next === '0' ? keys : scan()
      })
    }
    return new Readable({
      objectMode: true,
      read() {
        scan().then(
          (keys) => {
            if (keys !== null && keys.length > 0) this.push(keys)
            if (keys === null || cursor === '0') this.push(null)
          },
          (e: unknown) => this.destroy(e as Error),
        )
      },
    })
  }

  /** Any command, as ioredis' `call()`: arrays flattened, the reply in RESP2's shape. */
  call(name: string, ...args: IORedisArg[]): Promise<any> {
    return this.send((raw) => raw.command(name, ...flatArgs(args)).then(resp2))
  }
}

// The ioredis-style commands, each sending its command with flattened arguments.
for (const name of IOREDIS_COMMANDS) {
  if (name in BullMQRedisClient.prototype) continue
  Object.defineProperty(BullMQRedisClient.prototype, name, {
    value: function (this: BullMQRedisClient, ...args: IORedisArg[]) {
      return this.call(name.toUpperCase(), ...args)
    },
    configurable: true,
    writable: true,
  })
}

export interface BullMQRedisClient extends IORedisStyleCommands {}

/** A text reply (a Buffer when not UTF-8) as a string. */
function text(v: unknown): string {
  return typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : String(v)
}

/** The settings of `new BullMQRedisClient(options)`: ConnectOptions, keyPrefix refused. */
function resolveSettings(options: BullMQRedisOptions | undefined): ConnectOptions {
  if (options === undefined) {
    const settings = optionsFromEnv(process.env)
    delete settings.keyPrefix // BullMQ's `prefix` option does that job
    return settings
  }
  if (typeof options === 'string') return { url: options }
  if (!isPlainObject(options)) throw invalidArgument('BullMQRedisClient: options must be a URL string or a ConnectOptions object')
  if ((options as ConnectOptions).keyPrefix !== undefined) {
    throw invalidArgument("BullMQRedisClient: keyPrefix is not supported (BullMQ refuses prefixed clients); use BullMQ's `prefix` option")
  }
  return { ...options }
}

/** The settings without secrets, for `options`. */
function publicOptions(settings: ConnectOptions): Record<string, any> {
  const o: Record<string, any> = { ...settings }
  delete o.password
  if (typeof o.url === 'string') o.url = o.url.replace(/\/\/[^@/]*@/, '//')
  if (o.tls !== undefined && typeof o.tls === 'object') o.tls = true
  if (o.sentinel !== undefined) o.sentinel = { masterName: o.sentinel.masterName, sentinels: o.sentinel.sentinels }
  // BullMQ reads a cluster client's connection options under `redisOptions`.
  if (o.cluster !== undefined) o.redisOptions = { connectionName: o.connectionName, db: o.db }
  return o
}
