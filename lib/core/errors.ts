/**
 * Every rejection of this package is a `RedisError` with a string `code`.
 * Compare codes, not classes: `expect(p).rejects.toMatchObject({ code: 'ERR_TIMEOUT' })`.
 */
export const ErrorCode = {
  /** Bad input; nothing was sent. */
  InvalidArgument: 'ERR_INVALID_ARGUMENT',
  /** The server could not be reached, or the connection dropped before the reply. */
  Connection: 'ERR_CONNECTION',
  /** No reply within `commandTimeoutMs`. */
  Timeout: 'ERR_TIMEOUT',
  /** The server refused the credentials, or wants some. */
  Auth: 'ERR_AUTH',
  /** TLS handshake or certificate failure. */
  Tls: 'ERR_TLS',
  /** The server answered with an error; its text is in the message. */
  Reply: 'ERR_REPLY',
  /** The client was closed. */
  Closed: 'ERR_CLOSED',
  /** A bug in this package (a caught Rust panic); the process and other calls are unaffected. */
  Internal: 'ERR_INTERNAL',
  /**
   * Too many calls already wait in a queue of this client (a rate limiter's pacer), or
   * this one waited there too long; nothing was sent. Like ERR_TIMEOUT, it means
   * "Redis cannot answer now": the features' fail policies apply.
   */
  Overloaded: 'ERR_OVERLOADED',
} as const

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

const CODES = new Set<string>(Object.values(ErrorCode))

export class RedisError extends Error {
  readonly code: ErrorCode
  /**
   * For `ERR_REPLY` (and server refusals classified as `ERR_AUTH`): the first word of the
   * server's error reply — `WRONGTYPE`, `NOSCRIPT`, `READONLY`, `MOVED`, `NOPERM`…
   */
  readonly serverCode?: string

  constructor(code: ErrorCode, message: string, serverCode?: string) {
    super(`${code}: ${message}`)
    this.name = 'RedisError'
    this.code = code
    if (serverCode !== undefined) this.serverCode = serverCode
  }

  /**
   * The message without its `ERR_…: ` prefix, to quote inside another message.
   * @internal
   */
  get detail(): string {
    const prefix = `${this.code}: `
    return this.message.startsWith(prefix) ? this.message.slice(prefix.length) : this.message
  }

  /**
   * From what the native layer hands over: a `[code, message, serverCode?]` tuple, or a
   * thrown error whose `code` property holds the code. Never parsed out of message text.
   */
  static from(value: unknown): RedisError {
    if (value instanceof RedisError) return value
    if (Array.isArray(value)) {
      return new RedisError(value[0] as ErrorCode, String(value[1]), value[2] === undefined ? undefined : String(value[2]))
    }
    // Not `instanceof Error`: errors made in native code may belong to another realm (jest).
    const isObject = typeof value === 'object' && value !== null
    const message = isObject && typeof (value as Error).message === 'string' ? (value as Error).message : String(value)
    const code = isObject ? (value as { code?: unknown }).code : undefined
    if (typeof code === 'string' && CODES.has(code)) return new RedisError(code as ErrorCode, message)
    return new RedisError(ErrorCode.Internal, message)
  }
}

/** @internal */
export function invalidArgument(message: string): RedisError {
  return new RedisError(ErrorCode.InvalidArgument, message)
}

/**
 * What an argument check threw, as a RedisError: the package's own refusals pass
 * as they are; anything else — a throwing getter, a revoked Proxy, a throwing
 * `toString` met while reading the caller's arguments — becomes
 * ERR_INVALID_ARGUMENT naming the method, so that every refusal has a code.
 * @internal
 */
export function argumentError(e: unknown, method: string): RedisError {
  if (e instanceof RedisError) return e
  let why = 'it threw while being read'
  try {
    const m = (e as Error)?.message
    if (typeof m === 'string') why = m
  } catch {
    // the thrown value is hostile too
  }
  return invalidArgument(`${method}: an argument could not be read (${why})`)
}

/** Runs an argument check, converting what it throws with `argumentError`. @internal */
export function checkArgs<T>(method: string, check: () => T): T {
  try {
    return check()
  } catch (e) {
    throw argumentError(e, method)
  }
}

/** Server replies that mean "not now" rather than "wrong": treated like an unreachable server. */
const UNAVAILABLE_REPLY = new Set(['LOADING', 'BUSY', 'MASTERDOWN', 'CLUSTERDOWN', 'TRYAGAIN'])

/**
 * Whether an error means "Redis cannot answer now" (unreachable, too slow, or
 * busy) rather than a bug: the features' fail policies apply to these.
 * @internal
 */
export function isUnavailable(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code
  if (code === ErrorCode.Connection || code === ErrorCode.Timeout || code === ErrorCode.Overloaded) return true
  const serverCode = (e as { serverCode?: unknown } | null)?.serverCode
  return code === ErrorCode.Reply && typeof serverCode === 'string' && UNAVAILABLE_REPLY.has(serverCode)
}
