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

/** One recorded command: the native op, its arguments and the settlers of its raw reply. */
interface Recorded {
  op: number
  args: unknown[]
  resolve(v: unknown): void
  reject(e: unknown): void
}

/** One builder call: the client method's (shaped) promise, and whether it recorded a command. */
interface Call {
  result: Promise<unknown>
  recorded: boolean
  method: string
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
  private readonly recorded: Recorded[] = []
  private readonly recorder: object
  private executed = false

  /** @internal */
  constructor(
    private readonly client: RedisClient,
    /** MULTI/EXEC (true) or a plain pipeline (false). */
    readonly atomic: boolean,
  ) {
    const recorded = this.recorded
    // The client's methods run against this: `send` records instead of sending;
    // everything else (helpers, the command table) reads through to the client.
    this.recorder = Object.create(client, {
      send: {
        value: (op: number, ...args: unknown[]) =>
          new Promise((resolve, reject) => {
            recorded.push({ op, args, resolve, reject })
          }),
      },
      localCache: { value: undefined },
    })
  }

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
    const before = this.recorded.length
    let result: Promise<unknown>
    if (typeof script !== 'string' || script === '') {
      result = Promise.reject(invalidArgument('eval(): script must be a non-empty string of Lua'))
    } else {
      const rec = this.recorder as BuilderClient
      result = rec.send(OP.Eval, script, keys, args, true)
    }
    return this.push('eval', result, before)
  }

  /** @internal */
  queue(method: string, args: unknown[]): this {
    const before = this.recorded.length
    let result: unknown
    try {
      result = (this.client as unknown as Record<string, (...a: unknown[]) => unknown>)[method].apply(this.recorder, args)
    } catch (e) {
      result = Promise.reject(e)
    }
    return this.push(method, Promise.resolve(result), before)
  }

  private push(method: string, result: Promise<unknown>, before: number): this {
    if (this.executed) {
      result.catch(() => {})
      throw invalidArgument(`${method}(): this ${this.atomic ? 'multi()' : 'pipeline()'} was already executed; start a new one`)
    }
    const n = this.recorded.length - before
    // Observed by exec(); never an unhandled rejection meanwhile.
    result.catch(() => {})
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
    // Refused by the client method itself (a bad option, a wrong count…).
    for (const c of this.calls) {
      if (!c.recorded) {
        const why = await c.result.then(
          () => invalidArgument(`exec(): ${c.method}() cannot be queued in a ${this.atomic ? 'transaction' : 'pipeline'}`),
          (e: unknown) => RedisError.from(e),
        )
        throw why
      }
    }
    if (this.calls.length === 0) {
      if (this.atomic) client.takeWatch()
      return []
    }
    const recorded = this.recorded
    const onCluster = client.clusterSlot('k') !== undefined
    if (this.atomic && onCluster) checkOneSlot(client, recorded)
    if (this.atomic && client.takeWatch()) {
      // The connection that held the WATCH was replaced: the watch is gone.
      return null
    }
    if (!this.atomic && onCluster) {
      // Cluster pipeline: each command goes to its own slot's node.
      for (const r of recorded) client.send(r.op, ...r.args).then(r.resolve, r.reject)
    } else {
      const ops: unknown[] = []
      for (const r of recorded) ops.push(r.op, ...r.args)
      const reply = await client
        .send<GroupReply>(OP.Transaction, this.atomic ? MULTI : PIPELINE, ops)
        .catch((e: unknown) => {
          const err = RedisError.from(e)
          for (const r of recorded) r.reject(err)
          throw err
        })
      if (reply === null) return null
      const [values, errors, abort] = reply
      if (abort !== undefined) throw aborted(abort, errors)
      const failed = new Map<number, RedisError>()
      if (errors !== undefined) {
        for (let i = 0; i < errors.length; i += 4) failed.set(errors[i] as number, RedisError.from(errors.slice(i + 1, i + 4)))
      }
      for (let i = 0; i < recorded.length; i++) {
        const e = failed.get(i)
        if (e !== undefined) recorded[i].reject(e)
        else recorded[i].resolve(values?.[i])
      }
    }
    const settled = await Promise.allSettled(this.calls.map((c) => c.result))
    return settled.map((s) => (s.status === 'fulfilled' ? s.value : RedisError.from(s.reason)))
  }
}

/** A transaction's reply from the native layer (see src/napi/group.rs). */
type GroupReply = null | [values: unknown[] | null, errors: unknown[] | undefined, abort?: unknown[]]

function aborted(abort: unknown[], errors: unknown[] | undefined): RedisError {
  const e = RedisError.from(abort)
  const why: string[] = []
  if (errors !== undefined) {
    for (let i = 0; i < errors.length; i += 4) why.push(`command #${(errors[i] as number) + 1}: ${String(errors[i + 2])}`)
  }
  const msg = e.message.replace(/^ERR_REPLY: /, '') + (why.length > 0 ? ` (${why.join('; ')})` : '')
  return new RedisError(e.code, msg, e.serverCode)
}

/** On a cluster, a transaction runs on one node: its keys must share a slot. */
function checkOneSlot(client: BuilderClient, recorded: Recorded[]): void {
  const slots = new Map<number, unknown[]>()
  for (const r of recorded) {
    for (const k of keysOf(r.op, r.args)) {
      const s = client.clusterSlot(k)
      if (s === undefined || s < 0) continue
      const list = slots.get(s)
      if (list === undefined) slots.set(s, [k])
      else if (list.length < 3) list.push(k)
    }
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
  const keys: unknown[] = []
  for (let i = 0; i < ops.length; ) {
    const op = ops[i] as number
    const n = OP_ARITY[op] ?? 0
    keys.push(...keysOf(op, ops.slice(i + 1, i + 1 + n)))
    i += 1 + n
  }
  return keys
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
