// What BullMQ's IRedisClient expects in and out, and what this package speaks:
// script arguments as ioredis sends them, replies in ioredis' (RESP2) shapes
// whatever the connection speaks (a cluster's connections speak RESP3), and
// connection errors that BullMQ recognizes as such.
import { ErrorCode } from '../core/errors'
import type { RedisValue } from '../core/types'

/**
 * BullMQ's word for "the connection is gone" (ioredis' message, which BullMQ's
 * `isNotConnectionError` compares with): such failures are retried by its
 * loops, not reported as errors.
 */
export const CONNECTION_CLOSED_MESSAGE = 'Connection is closed.'

/**
 * A call that failed because the connection was lost or closed (`code`
 * `ERR_CONNECTION` or `ERR_CLOSED`, the package's error in `cause`), worded as
 * BullMQ expects so that its workers wait and retry instead of reporting it.
 */
export class ConnectionClosedError extends Error {
  readonly code: string
  declare readonly cause: unknown

  constructor(code: string, cause?: unknown) {
    super(CONNECTION_CLOSED_MESSAGE)
    this.name = 'ConnectionClosedError'
    this.code = code
    if (cause !== undefined) Object.defineProperty(this, 'cause', { value: cause, configurable: true, writable: true })
  }
}

/** The error BullMQ should see for `e`: connection losses reworded, the rest as they are. @internal */
export function forBullMQ(e: unknown): unknown {
  const code = (e as { code?: unknown } | null)?.code
  if (code === ErrorCode.Connection || code === ErrorCode.Closed) return new ConnectionClosedError(code, e)
  return e
}

/** Rejects with the error BullMQ should see. @internal */
export function rethrow(e: unknown): never {
  throw forBullMQ(e)
}

/** Script arguments as ioredis sends them: Buffers and finite numbers as they are, nullish as '', the rest as text. @internal */
export function scriptArg(a: unknown): RedisValue | number {
  if (typeof a === 'string') return a
  if (typeof a === 'number') return Number.isFinite(a) ? a : String(a)
  if (a === undefined || a === null) return ''
  if (Buffer.isBuffer(a)) return a
  return String(a)
}

/** `fn(...args)` and `fn([...args])` alike (ioredis' defined commands take both). @internal */
export function argList(args: unknown[]): unknown[] {
  return args.length === 1 && Array.isArray(args[0]) ? args[0] : args
}

/** ioredis-style varargs, arrays flattened one level (`lpush(k, [a, b])` is `lpush(k, a, b)`). @internal */
export function flatArgs(args: unknown[]): Array<RedisValue | number> {
  const out: Array<RedisValue | number> = []
  for (const a of args) {
    if (Array.isArray(a)) for (const x of a) out.push(scriptArg(x))
    else out.push(scriptArg(a))
  }
  return out
}

/** A hash's fields for HSET: values as text (BullMQ passes numbers), Buffers kept. @internal */
export function hashFields(data: Record<string, unknown>): Array<RedisValue | number> {
  const out: Array<RedisValue | number> = []
  for (const k of Object.keys(data)) out.push(k, scriptArg(data[k]))
  return out
}

/** A score as RESP2 sends it (text); RESP3 answers a number. @internal */
export function scoreText(v: unknown): string {
  if (typeof v === 'string') return v
  if (typeof v === 'number') return v === Infinity ? 'inf' : v === -Infinity ? '-inf' : String(v)
  return Buffer.isBuffer(v) ? v.toString('utf8') : String(v)
}

/** `[m, s, m, s]` with text scores, from RESP2's flat list or RESP3's `[[m, s], …]`. @internal */
export function flatWithScores(v: unknown): string[] {
  if (!Array.isArray(v)) return []
  const out: string[] = []
  if (v.length > 0 && Array.isArray(v[0])) {
    for (const p of v as unknown[][]) out.push(String(p[0]), scoreText(p[1]))
  } else {
    for (let i = 0; i + 1 < v.length; i += 2) out.push(String(v[i]), scoreText(v[i + 1]))
  }
  return out
}

/**
 * A reply in RESP2's shape, as ioredis gives it: RESP3 maps (objects here) as
 * flat `[k, v, …]` lists, at any depth. Strings, numbers, Buffers, null pass.
 * @internal
 */
export function resp2(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Buffer.isBuffer(v)) return v
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i]
      if (x !== null && typeof x === 'object' && !Buffer.isBuffer(x)) v[i] = resp2(x)
    }
    return v
  }
  if (v instanceof Set) return [...v].map(resp2)
  const out: unknown[] = []
  for (const k of Object.keys(v)) out.push(k, resp2((v as Record<string, unknown>)[k]))
  return out
}

/** XREAD's reply as ioredis gives it: `[[stream, [[id, [f, v, …]], …]], …]`, or null. @internal */
export function streamsReply(v: unknown): unknown {
  if (v === null || v === undefined) return null
  const list = resp2(v) as unknown[]
  if (!Array.isArray(list) || list.length === 0) return null
  // RESP3 maps became [name, entries, name, entries]; RESP2 is already [[name, entries], …].
  if (!Array.isArray(list[0])) {
    const pairs: unknown[] = []
    for (let i = 0; i + 1 < list.length; i += 2) pairs.push([list[i], list[i + 1]])
    return pairs
  }
  return list
}
