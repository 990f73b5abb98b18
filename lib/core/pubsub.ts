// Pub/sub: the listeners of a client's subscriptions, over a subscriber of its own
// (src/engine/pubsub.rs: a connection, or one per shard on a cluster, made with the
// client's settings and resubscribed after every reconnect). The client's other calls
// never wait behind it. Channels are not prefixed by keyPrefix (as with ioredis).
import { NativeSubscriber } from './binding'
import { checkOptionKeys, isArray, isPlainObject, show } from './args'
import { ErrorCode, RedisError, invalidArgument } from './errors'

/** A channel or a pattern: a string (UTF-8) or a Buffer (binary-safe). */
export type RedisChannel = string | Buffer

/** Called with each message of a channel (or shard channel) subscription. */
export type MessageListener<T extends string | Buffer = string> = (message: T, channel: T) => void

/** Called with each message of a pattern subscription: the channel it was published on, and the pattern. */
export type PatternListener<T extends string | Buffer = string> = (message: T, channel: T, pattern: T) => void

export interface SubscribeOptions {
  /**
   * Messages, channels and patterns as Buffers rather than UTF-8 strings (node-redis'
   * `bufferMode`; `true` as the third argument means the same).
   */
  buffers?: boolean
}

/** The options that make a listener get Buffers. */
export type BufferMode = true | { buffers: true }

/** The kinds of subscription, numbered as src/engine/pubsub.rs numbers them. @internal */
export const KIND = { channel: 0, pattern: 1, shard: 2 } as const
type Kind = (typeof KIND)[keyof typeof KIND]

type AnyListener = (message: any, channel: any, pattern?: any) => void

/** One subscription: a channel, pattern or shard channel, and its listeners. */
class Subscription {
  /** The listeners, each with whether it wants Buffers. */
  readonly listeners = new Map<AnyListener, boolean>()
  /** Whether the native side delivers Buffers (some listener asked for them). */
  buffers = false
  /** The name as a string (UTF-8). */
  readonly text: string
  private buffer?: Buffer

  constructor(
    readonly id: number,
    readonly kind: Kind,
    readonly key: string,
    /** As given: a string, or a copy of the Buffer given. */
    readonly name: RedisChannel,
  ) {
    this.text = typeof name === 'string' ? name : name.toString()
  }

  /** The name as a Buffer, for listeners that want Buffers. */
  get bytes(): Buffer {
    return (this.buffer ??= Buffer.isBuffer(this.name) ? this.name : Buffer.from(this.name))
  }
}

/**
 * A name's key in the maps of subscriptions: a string is its own key, and so is the
 * UTF-8 text of a Buffer (the same channel); other bytes get a key that starts with
 * a lone surrogate, which no UTF-8 bytes decode to.
 */
function keyOf(name: RedisChannel): string {
  if (typeof name === 'string') return name
  const text = name.toString()
  if (Buffer.byteLength(text) === name.length && Buffer.from(text).equals(name)) return text
  return `\ud800${name.toString('latin1')}`
}

/** A request to the subscriber, waiting for its answer. */
interface Request {
  resolve: () => void
  reject: (e: RedisError) => void
  /** For a subscribe: its subscriptions (a refusal of one of them is reported by the request). */
  subs?: ReadonlySet<Subscription>
}

/** What PubSub needs of its client. @internal */
export interface PubSubHost {
  /** A native subscriber with the client's settings, delivering to `onEvents`. */
  open(onEvents: (messages: unknown[], events?: unknown[]) => void): NativeSubscriber
  /** Emits a client event ('reconnecting', 'error', 'resubscribed'). */
  emit(event: string, ...args: unknown[]): void
  /** Whether the client is closed (or closing). */
  closed(): boolean
}

const ID_MASK = 0x3fffffff
const SUBSCRIBE_OPTIONS = new Set(['buffers'])

function closedError(): RedisError {
  return new RedisError(ErrorCode.Closed, 'the client is closed')
}

/** A message or name as a listener wants it. */
function as(v: string | Buffer, buffers: boolean): string | Buffer {
  if (buffers) return typeof v === 'string' ? Buffer.from(v) : v
  return typeof v === 'string' ? v : v.toString()
}

/**
 * A client's subscriptions, made on first use. The methods of RedisClient
 * (`subscribe`, `psubscribe`, `ssubscribe`, their `un…` and `publish`) call these.
 * @internal
 */
export class PubSub {
  private native?: NativeSubscriber
  /** By kind, then by name (keyOf). */
  private readonly subs: Array<Map<string, Subscription>> = [new Map(), new Map(), new Map()]
  private readonly byId = new Map<number, Subscription>()
  private readonly requests = new Map<number, Request>()
  private nextId = 0
  private nextOp = 0
  private holding = false
  private closing?: Promise<void>
  private closeWaiter?: () => void

  constructor(private readonly host: PubSubHost) {}

  subscribe(kind: Kind, method: string, channels: unknown, listener: unknown, options: unknown): Promise<void> {
    let names: RedisChannel[]
    let buffers: boolean
    try {
      names = channelList(method, channels)
      if (typeof listener !== 'function') throw invalidArgument(`${method}: listener must be a function, got ${show(listener)}`)
      buffers = bufferMode(method, options)
    } catch (e) {
      return Promise.reject(e)
    }
    if (this.closing !== undefined || this.host.closed()) return Promise.reject(closedError())
    const map = this.subs[kind]
    const subs: Subscription[] = []
    for (const name of names) {
      const key = keyOf(name)
      let sub = map.get(key)
      if (sub === undefined) {
        sub = new Subscription(this.nextId, kind, key, Buffer.isBuffer(name) ? Buffer.from(name) : name)
        this.nextId = (this.nextId + 1) & ID_MASK
        map.set(key, sub)
        this.byId.set(sub.id, sub)
      }
      sub.listeners.set(listener as AnyListener, buffers)
      if (buffers) sub.buffers = true
      subs.push(sub)
    }
    this.updateHold()
    return this.request(
      (op) => this.subscriber().subscribe(op, kind, subs.map((s) => s.name), subs.map((s) => s.id), buffers),
      subs,
    )
  }

  /**
   * Removes `listener` (or every listener) from `channels` (or from every
   * subscription of the kind); subscriptions left without listeners are
   * unsubscribed, and deliver nothing more from now on.
   */
  unsubscribe(kind: Kind, method: string, channels: unknown, listener: unknown): Promise<void> {
    let names: RedisChannel[] | undefined
    try {
      names = channels === undefined || channels === null ? undefined : channelList(method, channels)
      if (listener !== undefined && typeof listener !== 'function') {
        throw invalidArgument(`${method}: listener must be a function, got ${show(listener)}`)
      }
    } catch (e) {
      return Promise.reject(e)
    }
    if (this.closing !== undefined || this.host.closed()) return Promise.reject(closedError())
    const map = this.subs[kind]
    const targets = new Set<Subscription>()
    for (const name of names ?? []) {
      const sub = map.get(keyOf(name))
      if (sub !== undefined) targets.add(sub)
    }
    if (names === undefined) for (const sub of map.values()) targets.add(sub)
    const gone: Subscription[] = []
    for (const sub of targets) {
      if (listener !== undefined) sub.listeners.delete(listener as AnyListener)
      if (listener === undefined || sub.listeners.size === 0) {
        this.forget(sub)
        gone.push(sub)
      }
    }
    if (gone.length === 0) return Promise.resolve()
    this.updateHold()
    return this.request((op) => this.subscriber().unsubscribe(op, kind, gone.map((s) => s.name)))
  }

  /** Ends the subscriber's connections; every subscription goes. */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing
    for (const map of this.subs) map.clear()
    this.byId.clear()
    const native = this.native
    if (native === undefined) {
      this.closing = Promise.resolve()
      return this.closing
    }
    this.closing = new Promise<void>((resolve) => {
      this.closeWaiter = resolve
    })
    native.close()
    return this.closing
  }

  private subscriber(): NativeSubscriber {
    if (this.native === undefined) {
      this.native = this.host.open(this.onEvents)
      if (this.holding) this.native.keepAlive(true)
    }
    return this.native
  }

  private forget(sub: Subscription): void {
    if (this.subs[sub.kind].get(sub.key) === sub) this.subs[sub.kind].delete(sub.key)
    this.byId.delete(sub.id)
  }

  /** Subscriptions keep the process alive; none, and it can exit. */
  private updateHold(): void {
    const hold = this.byId.size > 0
    if (hold === this.holding) return
    this.holding = hold
    this.native?.keepAlive(hold)
  }

  private request(send: (op: number) => void, subs?: Subscription[]): Promise<void> {
    const op = this.nextOp
    this.nextOp = (op + 1) & ID_MASK
    return new Promise<void>((resolve, reject) => {
      this.requests.set(op, { resolve, reject, subs: subs && new Set(subs) })
      try {
        send(op)
      } catch (e) {
        this.requests.delete(op)
        if (subs !== undefined) for (const sub of subs) this.forget(sub)
        this.updateHold()
        reject(RedisError.from(e))
      }
    })
  }

  /** Everything the subscriber hands back, one call per burst. */
  private onEvents = (messages: unknown[], events?: unknown[]): void => {
    const byId = this.byId
    for (let i = 0; i < messages.length; i += 3) {
      const sub = byId.get(messages[i] as number)
      if (sub === undefined) continue // unsubscribed meanwhile
      const channel = messages[i + 1] as string | Buffer | undefined
      const payload = messages[i + 2] as string | Buffer
      for (const [listener, buffers] of sub.listeners) {
        const name = buffers ? sub.bytes : sub.text
        try {
          if (channel === undefined) listener(as(payload, buffers), name)
          else listener(as(payload, buffers), as(channel, buffers), name)
        } catch (e) {
          // As an EventEmitter listener's would: uncaught, but the other listeners still run.
          process.nextTick(() => {
            throw e
          })
        }
      }
    }
    if (events !== undefined) for (const ev of events) this.onEvent(ev)
  }

  private onEvent(ev: unknown): void {
    if (Array.isArray(ev) && ev[0] === 'done') {
      const r = this.requests.get(ev[1] as number)
      if (r === undefined) return
      this.requests.delete(ev[1] as number)
      if (ev[2] === undefined) r.resolve()
      else r.reject(RedisError.from(ev[2]))
    } else if (Array.isArray(ev) && ev[0] === 'dropped') {
      const sub = this.byId.get(ev[1] as number)
      if (sub === undefined) return
      this.forget(sub)
      this.updateHold()
      // A request waiting for it rejects; a resubscription nobody waits for is told as an 'error'.
      const waited = [...this.requests.values()].some((r) => r.subs?.has(sub))
      if (!waited) this.host.emit('error', RedisError.from(ev[2]))
    } else if (Array.isArray(ev) && ev[0] === 'lost') {
      const err = RedisError.from(ev[1])
      this.host.emit('reconnecting', err)
      this.host.emit('error', err)
    } else if (ev === 'resubscribed') {
      this.host.emit('resubscribed')
    } else if (ev === 'closed') {
      for (const r of this.requests.values()) r.reject(closedError())
      this.requests.clear()
      this.closeWaiter?.()
      this.closeWaiter = undefined
    }
  }
}

/** `channels` as a non-empty list of strings and Buffers. */
function channelList(method: string, channels: unknown): RedisChannel[] {
  const list = isArray(channels) ? channels : [channels]
  if (list.length === 0) throw invalidArgument(`${method}: channels must not be empty`)
  for (const c of list) {
    if (typeof c !== 'string' && !Buffer.isBuffer(c)) {
      throw invalidArgument(`${method}: a channel must be a string or a Buffer, got ${show(c)}`)
    }
  }
  return list as RedisChannel[]
}

/** `true`, `{ buffers: true }` → Buffers; `undefined`, `false`, `{}` → strings. */
function bufferMode(method: string, options: unknown): boolean {
  if (options === undefined || typeof options === 'boolean') return options === true
  if (!isPlainObject(options)) throw invalidArgument(`${method}: options must be { buffers?: boolean } or a boolean, got ${show(options)}`)
  checkOptionKeys(method, options, SUBSCRIBE_OPTIONS)
  const b = options.buffers
  if (b !== undefined && typeof b !== 'boolean') throw invalidArgument(`${method}: buffers must be a boolean, got ${show(b)}`)
  return b === true
}
