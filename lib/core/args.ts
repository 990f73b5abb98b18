// Argument checks and value descriptions shared by the client and every feature.
// The checks throw ERR_INVALID_ARGUMENT (see errors.ts) naming the caller first.
import type { RedisClient } from './client'
import { invalidArgument } from './errors'

/**
 * A short description of a value for an error message. It runs none of the
 * value's code (no getter, `toJSON` or `toString`) and never repeats a long
 * string, which may be a token or a secret.
 * @internal
 */
export function show(v: unknown): string {
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v)
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'function') return 'a function'
  if (typeof v === 'symbol') return 'a symbol'
  if (v === null || typeof v !== 'object') return String(v)
  return isArray(v) ? 'an array' : 'an object'
}

/** A server's reply in an "unexpected reply" message: its JSON, cut at 200 characters. @internal */
export function showReply(reply: unknown): string {
  try {
    return JSON.stringify(reply)?.slice(0, 200) ?? typeof reply
  } catch {
    return typeof reply
  }
}

/** A safe integer of at least `min`. @internal */
export function isInt(v: unknown, min: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min
}

/** @internal */
export function isFiniteNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v)
}

/** `Array.isArray` that answers false, rather than throwing, for a revoked Proxy. @internal */
export function isArray(v: unknown): v is unknown[] {
  try {
    return Array.isArray(v)
  } catch {
    return false
  }
}

/** Plain `{ … }` objects only: a Date or an array is not an options bag. @internal */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false
  let proto: unknown
  try {
    proto = Object.getPrototypeOf(v)
  } catch {
    return false // a revoked Proxy: not options; the native layer refuses it as an argument
  }
  return proto === Object.prototype || proto === null
}

/** Refuses a key of `options` that `allowed` does not hold: "`where`: unknown option "k"". @internal */
export function checkOptionKeys(where: string, options: object, allowed: ReadonlySet<string>, noun = 'option'): void {
  for (const k of Object.keys(options)) {
    if (!allowed.has(k)) throw invalidArgument(`${where}: unknown ${noun} ${JSON.stringify(k)}`)
  }
}

/** An optional options object: `{}` when absent; refused when not an object or with an unknown key. @internal */
export function checkOptions(where: string, options: unknown, allowed: ReadonlySet<string>): Record<string, unknown> {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object' || isArray(options)) throw invalidArgument(`${where}: options must be an object`)
  checkOptionKeys(where, options, allowed)
  return options as Record<string, unknown>
}

/** Refuses anything but a non-empty string: "`where`: `name` must be a non-empty string, got …". @internal */
export function checkNonEmptyString(v: unknown, where: string, name = 'key'): asserts v is string {
  if (typeof v !== 'string' || v.length === 0) throw invalidArgument(`${where}: ${name} must be a non-empty string, got ${show(v)}`)
}

/**
 * The client behind a feature's first argument: a `RedisClient`, or anything
 * holding one as `client` (the `RedisService` of `@atlas-erp/redis/nest`).
 * @internal
 */
export function clientArg(redis: unknown, where: string): RedisClient {
  const isClient = (v: unknown): v is RedisClient =>
    v !== null && typeof v === 'object' && typeof (v as RedisClient).runScript === 'function'
  if (isClient(redis)) return redis
  const inner = (redis as { client?: unknown } | null)?.client
  if (isClient(inner)) return inner
  throw invalidArgument(`${where}: the first argument must be a RedisClient (or a RedisService)`)
}
