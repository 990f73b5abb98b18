// multi()…exec() and pipeline()…exec(): a builder that offers the client's own
// command methods. Each call runs the client's method against a recorder that
// stands in for the client: the method checks and shapes exactly as on the
// client, but what it would send is recorded instead. exec() sends everything
// as ONE native op (`Transaction`): the native layer checks and encodes every
// command, refuses the whole op if any is bad (nothing is sent), and writes
// MULTI, the commands and EXEC contiguously on the client's connection. The
// raw replies then flow back through the recorded promises, so the typed
// methods' shaping (numbers, pairs, records) applies unchanged.
import { OP, OP_ARITY, routingKeys } from './binding'
import { TypedCommands } from './commands'
import { RedisError, invalidArgument } from './errors'
import type { RedisKey, RedisValue } from './types'
import type { RedisClient } from './client'

/** Transaction modes of the native op. */
const MULTI = 0
const PIPELINE = 1

/** The commands of RedisClient itself (the seed's methods) a builder offers. */
const CLIENT_COMMANDS = [
  'get',
  'getBuffer',
  'set',
  'del',
  'exists',
  'expire',
  'pexpire',
  'ttl',
  'pttl',
  'incr',
  'incrBy',
  'mget',
  'mset',
  'getDel',
  'getEx',
  'hget',
  'hset',
  'hgetall',
  'hdel',
  'sadd',
  'srem',
  'smembers',
] as const

/** Methods of TypedCommands that are helpers or iterators, not one command each. */
type NotQueued = 'command' | 'hscan' | 'sscan' | 'zscan' | keyof NodeJS.EventEmitter

/** Names of a type's methods that resolve a Promise. */
type PromiseMethods<T> = { [K in keyof T]-?: T[K] extends (...args: never[]) => Promise<unknown> ? K : never }[keyof T]

/** The command methods a builder offers: the client's own and every typed command. */
export type QueueableCommand = (typeof CLIENT_COMMANDS)[number] | Exclude<PromiseMethods<TypedCommands>, NotQueued | symbol>

/** Parameters of every overload (up to four) of a method, as a union of tuples. */
type OverloadParameters<F> = F extends {
  (...a: infer A1): unknown
  (...a: infer A2): unknown
  (...a: infer A3): unknown
  (...a: infer A4): unknown
}
  ? A1 | A2 | A3 | A4
  : F extends (...a: infer A) => unknown
    ? A
    : never

/** Each command method, queuing its command and returning the builder. */
export type CommandQueue<B> = {
  [K in QueueableCommand]: (...args: OverloadParameters<RedisClient[K]>) => B
}

/** What the builder needs of its client (TypeScript-private there). @internal */
interface BuilderClient {
  send<T>(op: number, ...args: unknown[]): Promise<T>
  /** The slot of a key on a cluster (keyPrefix included); undefined on a standalone client. */
  clusterSlot(key: unknown): number | undefined
  /** Whether a WATCH of this connection was lost (a reconnect) since watch(); clears the watch. */
  takeWatch(): boolean
}

/**
 * A synchronous promise-like: what the recorder hands the client's methods in
 * place of the reply's promise. Their `.then(shape)` chains run synchronously
 * when exec() settles it, so a queued command costs no Promise and no
 * microtask; a real Promise that adopts one (`Promise.resolve(d)`) still works.
 * @internal
 */
export class Deferred {
  /** 0 pending, 1 fulfilled, 2 rejected. */
  state = 0
  value: unknown = undefined
  private next?: Array<[((v: unknown) => unknown) | undefined, ((e: unknown) => unknown) | undefined, Deferred]>

  then(onFulfilled?: (v: unknown) => unknown, onRejected?: (e: unknown) => unknown): Deferred {
    const child = new Deferred()
    if (this.state === 0) (this.next ??= []).push([onFulfilled, onRejected, child])
    else this.run(onFulfilled, onRejected, child)
    return child
  }

  catch(onRejected?: (e: unknown) => unknown): Deferred {
    return this.then(undefined, onRejected)
  }

  finally(onFinally?: () => void): Deferred {
    return this.then(
      (v) => {
        onFinally?.()
        return v
      },
      (e) => {
        onFinally?.()
        throw e
      },
    )
  }

  resolve(v: unknown): void {
    if (this.state !== 0) return
    if (v !== null && typeof v === 'object' && typeof (v as PromiseLike<unknown>).then === 'function') {
      ;(v as PromiseLike<unknown>).then(
        (x) => this.resolve(x),
        (e) => this.reject(e),
      )
      return
    }
    this.settle(1, v)
  }

  reject(e: unknown): void {
    if (this.state === 0) this.settle(2, e)
  }

  private settle(state: number, value: unknown): void {
    this.state = state
    this.value = value
    const next = this.next
    this.next = undefined
    if (next !== undefined) for (const [f, r, child] of next) this.run(f, r, child)
  }

  private run(onFulfilled: ((v: unknown) => unknown) | undefined, onRejected: ((e: unknown) => unknown) | undefined, child: Deferred): void {
    const fn = this.state === 1 ? onFulfilled : onRejected
    if (fn === undefined) {
      if (this.state === 1) child.resolve(this.value)
      else child.reject(this.value)
      return
    }
    try {
      child.resolve(fn(this.value))
    } catch (e) {
      child.reject(e)
    }
  }
}

/** One builder call: what the client method returned, and whether it recorded exactly one command. */
interface Call {
  result: unknown
  recorded: boolean
  method: string
}

/** Where the recorder writes: the builder whose method is running. */
interface Recording {
  ops: unknown[]
  replies: Deferred[]
}

/**
 * A client's recorder: an object whose prototype is the client, so its
 * methods (and helpers, and the features' members) run as on the client,
 * except that `send` records into the builder being called. One per client.
 */
const recorders = new WeakMap<RedisClient, { into?: Recording }>()

function recorderOf(client: RedisClient): { into?: Recording } {
  let r = recorders.get(client)
  if (r === undefined) {
    const rec: { into?: Recording } = Object.create(client, {
      send: {
        value(op: number, ...args: unknown[]): Deferred {
          const into = rec.into!
          into.ops.push(op, ...args)
          const d = new Deferred()
          into.replies.push(d)
          return d
        },
      },
      // A transaction's GET reads the server, never the client-side cache.
      localCache: { value: undefined },
      into: { value: undefined, writable: true },
    })
    r = rec
    recorders.set(client, r)
  }
  return r
}

/**
 * The builder of `client.multi()` (atomic: MULTI/EXEC) and `client.pipeline()`
 * (not atomic): call the client's command methods on it — each returns the
 * builder — then `exec()`.
 *
 * ```ts
 * const [n, , value] = (await redis.multi().incr('visits').expire('visits', 60).get('visits').exec())!
 * ```
 *
 * `exec()` resolves one entry per queued command, in order: its value, shaped
 * as the client method would resolve it, or the `RedisError` it failed with
 * (`code: 'ERR_REPLY'`, `serverCode: 'WRONGTYPE'`, …) in its place. A
 * transaction resolves `null` when a key `watch()`ed on its client changed
 * before EXEC. Bad input rejects `exec()` with `ERR_INVALID_ARGUMENT`, and
 * nothing is sent. On a Redis Cluster, a transaction's keys must all be in one
 * slot (use a `{hash tag}`).
 */
export class Pipeline {
  private readonly calls: Call[] = []
  private readonly recording: Recording = { ops: [], replies: [] }
  private executed = false

  /** @internal */
  constructor(
    private readonly client: RedisClient,
    /** MULTI/EXEC (true) or a plain pipeline (false). */
    readonly atomic: boolean,
  ) {}

  /** Number of commands queued. */
  get length(): number {
    return this.calls.length
  }

  /** Queues any command (as `client.command()`: keys prefixed, raw reply). */
  command(name: string, ...args: Array<RedisValue | number>): this {
    return this.queue('command', [name, ...args])
  }

  /** Queues a Lua script (EVAL: the script text travels with the transaction); the keyPrefix applies to `keys`. */
  eval(script: string, keys: RedisKey[] = [], args: Array<RedisValue | number> = []): this {
    if (typeof script !== 'string' || script === '') {
      return this.push('eval', Promise.reject(invalidArgument('eval(): script must be a non-empty string of Lua')), this.recording.replies.length)
    }
    return this.record('eval', (rec) => rec.send(OP.Eval, script, keys, args, true))
  }

  /** @internal */
  queue(method: string, args: unknown[]): this {
    return this.record(method, (rec) => (this.client as unknown as Record<string, (...a: unknown[]) => unknown>)[method].apply(rec, args))
  }

  /** Runs `call` against the client's recorder, recording into this builder. */
  private record(method: string, call: (recorder: BuilderClient) => unknown): this {
    const before = this.recording.replies.length
    const rec = recorderOf(this.client)
    const outer = rec.into
    rec.into = this.recording
    let result: unknown
    try {
      result = call(rec as unknown as BuilderClient)
    } catch (e) {
      result = Promise.reject(e)
    } finally {
      rec.into = outer
    }
    return this.push(method, result, before)
  }

  private push(method: string, result: unknown, before: number): this {
    // Observed by exec(); never an unhandled rejection meanwhile.
    if (result instanceof Promise) result.catch(() => {})
    if (this.executed) {
      throw invalidArgument(`${method}(): this ${this.atomic ? 'multi()' : 'pipeline()'} was already executed; start a new one`)
    }
    const n = this.recording.replies.length - before
    this.calls.push({ result, recorded: n === 1, method })
    return this
  }

  /**
   * Sends the queued commands. Resolves one entry per command, in order — its
   * value or the `RedisError` it failed with — or `null` when a watched key
   * changed (transactions only). Rejects with ERR_INVALID_ARGUMENT (nothing
   * sent) on bad input, with ERR_REPLY `EXECABORT` when the server refused a
   * command while queuing it (nothing ran), or with the connection's error.
   */
  async exec(): Promise<unknown[] | null> {
    if (this.executed) throw invalidArgument('exec(): this builder was already executed; start a new one')
    this.executed = true
    const client = this.client as unknown as BuilderClient
    const calls = this.calls
    // Refused by the client method itself (a bad option, a wrong count…).
    for (const c of calls) {
      if (!c.recorded) {
        const why = await Promise.resolve(c.result).then(
          () => invalidArgument(`exec(): ${c.method}() cannot be queued in a ${this.atomic ? 'transaction' : 'pipeline'}`),
          (e: unknown) => RedisError.from(e),
        )
        throw why
      }
    }
    if (calls.length === 0) {
      if (this.atomic) client.takeWatch()
      return []
    }
    const { ops, replies } = this.recording
    const onCluster = client.clusterSlot('k') !== undefined
    if (this.atomic && onCluster) checkOneSlot(client, ops)
    if (this.atomic && client.takeWatch()) {
      // The connection that held the WATCH was replaced: the watch is gone.
      return null
    }
    if (!this.atomic && onCluster) {
      // Cluster pipeline: each command goes to its own slot's node.
      await Promise.all(
        eachOp(ops, (op, args, i) =>
          client.send(op, ...args).then(
            (v) => replies[i].resolve(v),
            (e) => replies[i].reject(RedisError.from(e)),
          ),
        ),
      )
    } else {
      let reply: GroupReply
      try {
        reply = await client.send<GroupReply>(OP.Transaction, this.atomic ? MULTI : PIPELINE, ops)
      } catch (e) {
        throw RedisError.from(e)
      }
      if (reply === null) return null
      const [values, errors, abort] = reply
      if (abort !== undefined) throw aborted(abort, errors)
      let nextError = errors === undefined ? -1 : (errors[0] as number)
      let e = 0
      for (let i = 0; i < replies.length; i++) {
        if (i === nextError) {
          replies[i].reject(RedisError.from(errors!.slice(e + 1, e + 4)))
          e += 4
          nextError = e < errors!.length ? (errors![e] as number) : -1
        } else {
          replies[i].resolve(values?.[i])
        }
      }
    }
    const out = new Array<unknown>(calls.length)
    for (let i = 0; i < calls.length; i++) {
      const r = calls[i].result
      if (r instanceof Deferred && r.state !== 0) {
        out[i] = r.state === 1 ? r.value : RedisError.from(r.value)
      } else {
        // A method that wrapped the reply in a Promise of its own.
        out[i] = await Promise.resolve(r).then(
          (v) => v,
          (err: unknown) => RedisError.from(err),
        )
      }
    }
    return out
  }
}

/** Calls `fn(op, args, index)` for each command of a flat `[op, ...args, op, ...args]` list. */
function eachOp<T>(ops: unknown[], fn: (op: number, args: unknown[], index: number) => T): T[] {
  const out: T[] = []
  for (let i = 0; i < ops.length; ) {
    const op = ops[i] as number
    const n = OP_ARITY[op] ?? 0
    out.push(fn(op, ops.slice(i + 1, i + 1 + n), out.length))
    i += 1 + n
  }
  return out
}

/** A transaction's reply from the native layer (see src/napi/group.rs). */
type GroupReply = null | [values: unknown[] | null, errors: unknown[] | undefined, abort?: unknown[]]

function aborted(abort: unknown[], errors: unknown[] | undefined): RedisError {
  const e = RedisError.from(abort)
  const why: string[] = []
  if (errors !== undefined) {
    for (let i = 0; i < errors.length; i += 4) why.push(`command #${(errors[i] as number) + 1}: ${String(errors[i + 2])}`)
  }
  const msg = e.detail + (why.length > 0 ? ` (${why.join('; ')})` : '')
  return new RedisError(e.code, msg, e.serverCode)
}

/** On a cluster, a transaction runs on one node: its keys must share a slot. */
function checkOneSlot(client: BuilderClient, ops: unknown[]): void {
  const slots = new Map<number, unknown[]>()
  for (const k of keysOfOps(ops)) {
    const s = client.clusterSlot(k)
    if (s === undefined || s < 0) continue
    const list = slots.get(s)
    if (list === undefined) slots.set(s, [k])
    else if (list.length < 3) list.push(k)
  }
  if (slots.size <= 1) return
  const named = [...slots].map(([s, keys]) => `${keys.map((k) => JSON.stringify(String(k))).join(', ')} (slot ${s})`)
  throw invalidArgument(
    `exec(): on a Redis Cluster a transaction's keys must be in one slot, these are not: ${named.join('; ')}. ` +
      'Give them a common {hash tag}, e.g. {user:1}:profile and {user:1}:visits',
  )
}

const KEY_FIRST = new Set(
  ['Get', 'GetBuffer', 'Set', 'SetWith', 'Expire', 'PExpire', 'Ttl', 'PTtl', 'Incr', 'IncrBy', 'HGet', 'HSet', 'HGetAll', 'HDel', 'SAdd', 'SRem', 'SMembers', 'GetDel', 'GetEx'].map(
    (n) => OP[n],
  ),
)
const KEY_LIST_FIRST = new Set(['Del', 'Exists', 'MGet', 'Watch'].map((n) => OP[n]))
const KEY_LIST_SECOND = new Set(['Script', 'Eval'].map((n) => OP[n]))

/** The keys one op names (without the keyPrefix), for slot checks and cluster routing. @internal */
export function keysOf(op: number, args: unknown[]): unknown[] {
  if (KEY_FIRST.has(op)) return [args[0]]
  if (KEY_LIST_FIRST.has(op)) return Array.isArray(args[0]) ? args[0] : []
  if (KEY_LIST_SECOND.has(op)) return Array.isArray(args[1]) ? args[1] : []
  if (op === OP.MSet) {
    const e = args[0]
    if (Array.isArray(e)) return e.filter((_, i) => i % 2 === 0)
    return e !== null && typeof e === 'object' ? Object.keys(e) : []
  }
  if (op === OP.Command) {
    const [name, list] = args
    if (typeof name !== 'string' || !Array.isArray(list)) return []
    const idx = routingKeys(
      name,
      list.map((a) => (Buffer.isBuffer(a) ? a.toString('latin1') : String(a))),
    )
    return idx === null || idx === undefined ? [] : idx.map((i) => list[i])
  }
  return []
}

/** The keys of a flat `[op, ...args, op, ...args]` list (a transaction's commands). @internal */
export function keysOfOps(ops: unknown): unknown[] {
  if (!Array.isArray(ops)) return []
  return eachOp(ops, keysOf).flat()
}

/** TypedCommands' private helpers (not commands of their own). */
const HELPERS: ReadonlySet<string> = new Set(['popCommand', 'zpopCommand', 'streamRange'])

// The builder's command methods: every typed command and the client's own,
// each running the client's method against the recorder.
{
  const names = new Set<string>(CLIENT_COMMANDS)
  for (const name of Object.getOwnPropertyNames(TypedCommands.prototype)) {
    const f = (TypedCommands.prototype as unknown as Record<string, unknown>)[name]
    if (name === 'constructor' || name === 'command' || typeof f !== 'function') continue
    if (f.constructor?.name === 'AsyncGeneratorFunction' || HELPERS.has(name)) continue
    names.add(name)
  }
  for (const name of names) {
    Object.defineProperty(Pipeline.prototype, name, {
      value: function (this: Pipeline, ...args: unknown[]) {
        return this.queue(name, args)
      },
      writable: true,
      configurable: true,
    })
  }
}

export interface Pipeline extends CommandQueue<Pipeline> {}
