// `@atlas-erp/redis/better-auth`: Better Auth 1.7's `secondaryStorage` over a
// RedisClient, and `sessionVerifier`, which checks Better Auth's signed session
// cookie and reads the session Better Auth stored, without Better Auth. Nothing
// here imports better-auth: the shapes below mirror its SecondaryStorage
// interface (@better-auth/core/db) and getSession's result.
import { createHmac, timingSafeEqual } from 'node:crypto'
import '../features' // a package entry: the client it is given has every feature
import { checkNonEmptyString, checkOptions, clientArg, show } from '../core/args'
import type { RedisClient } from '../core/client'
import { ErrorCode, RedisError, invalidArgument } from '../core/errors'

type ClientLike = RedisClient | { readonly client: RedisClient }

function checkPrefix(who: string, prefix: unknown): string {
  if (prefix === undefined) return DEFAULT_KEY_PREFIX
  if (typeof prefix !== 'string') throw invalidArgument(`${who}: keyPrefix must be a string, got ${show(prefix)}`)
  return prefix
}

/** Better Auth's keys live under this prefix unless told otherwise (as in @better-auth/redis-storage). */
export const DEFAULT_KEY_PREFIX = 'better-auth:'

// ---- secondaryStorage ----------------------------------------------------------------------

export interface RedisSecondaryStorageOptions {
  /** Prepended to Better Auth's keys (after the client's own keyPrefix); default `'better-auth:'`. */
  keyPrefix?: string
}

/**
 * Better Auth 1.7's `SecondaryStorage` (get, set, delete, getAndDelete,
 * increment), plus `listKeys` and `clear` over this storage's prefix.
 */
export interface RedisSecondaryStorage {
  /** The value, or null. */
  get(key: string): Promise<string | null>
  /**
   * Stores `value`; `ttl` in seconds. No ttl: no expiry. A ttl of 0 or less
   * deletes the key instead (nothing is stored for ever by mistake).
   */
  set(key: string, value: string, ttl?: number): Promise<void>
  delete(key: string): Promise<void>
  /** The value, deleted in the same step (GETDEL), or null. */
  getAndDelete(key: string): Promise<string | null>
  /**
   * Atomically adds one and resolves the new count. A new counter starts at 1
   * and expires `ttl` seconds later; later increments keep that expiry.
   */
  increment(key: string, ttl: number): Promise<number>
  /** The keys under the prefix (without it), by SCAN; each once, in no order. */
  listKeys(): Promise<string[]>
  /** Deletes the keys under the prefix, by SCAN (never FLUSHDB); refused with an empty prefix. */
  clear(): Promise<void>
}

const STORAGE_OPTIONS = new Set(['keyPrefix'])
/** Keys deleted per SCAN page in clear(). */
const SCAN_COUNT = 500

function checkKey(key: unknown, method: string): asserts key is string {
  checkNonEmptyString(key, `secondaryStorage.${method}()`)
}

/** A glob pattern matching `prefix` literally, then anything. */
function prefixPattern(prefix: string): string {
  return `${prefix.replace(/[\\*?[\]]/g, '\\$&')}*`
}

/**
 * Better Auth's `secondaryStorage` on this client: sessions, rate-limit
 * counters and verification values live in Redis under `keyPrefix`, shared by
 * every instance of the API.
 *
 * ```ts
 * const auth = betterAuth({ database, secondaryStorage: redisSecondaryStorage(redis) })
 * ```
 */
export function redisSecondaryStorage(redis: ClientLike, options?: RedisSecondaryStorageOptions): RedisSecondaryStorage {
  const who = 'redisSecondaryStorage()'
  const client = clientArg(redis, who)
  const prefix = checkPrefix(who, checkOptions(who, options, STORAGE_OPTIONS).keyPrefix)

  async function* keys(): AsyncIterableIterator<string[]> {
    const page: string[] = []
    for await (const key of client.scan({ match: prefixPattern(prefix), count: SCAN_COUNT })) {
      page.push(key)
      if (page.length >= SCAN_COUNT) yield page.splice(0)
    }
    if (page.length > 0) yield page
  }

  return {
    async get(key) {
      checkKey(key, 'get')
      return client.get(prefix + key)
    },

    async set(key, value, ttl) {
      checkKey(key, 'set')
      if (typeof value !== 'string') throw invalidArgument(`secondaryStorage.set(): value must be a string, got ${show(value)}`)
      if (ttl === undefined || ttl === null) {
        await client.set(prefix + key, value)
        return
      }
      if (typeof ttl !== 'number' || Number.isNaN(ttl) || ttl === Infinity) {
        throw invalidArgument(`secondaryStorage.set(): ttl must be a number of seconds, got ${show(ttl)}`)
      }
      if (ttl <= 0) {
        await client.del(prefix + key)
        return
      }
      if (Number.isSafeInteger(ttl)) await client.set(prefix + key, value, ttl)
      else await client.set(prefix + key, value, { ttlMs: Math.max(1, Math.round(ttl * 1000)) })
    },

    async delete(key) {
      checkKey(key, 'delete')
      await client.del(prefix + key)
    },

    async getAndDelete(key) {
      checkKey(key, 'getAndDelete')
      return client.getDel(prefix + key)
    },

    async increment(key, ttl) {
      checkKey(key, 'increment')
      if (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl <= 0) {
        throw invalidArgument(`secondaryStorage.increment(): ttl must be a positive integer (seconds), got ${show(ttl)}`)
      }
      const n = await client.runScript('better_auth_incr', [prefix + key], [ttl])
      if (typeof n !== 'number') throw new RedisError(ErrorCode.Reply, `secondaryStorage.increment(): unexpected reply ${show(n)}`)
      return n
    },

    async listKeys() {
      const seen = new Set<string>()
      for await (const page of keys()) for (const k of page) seen.add(k.slice(prefix.length))
      return [...seen]
    },

    async clear() {
      if (prefix === '') {
        throw invalidArgument('secondaryStorage.clear(): refused with an empty keyPrefix (it would delete every key)')
      }
      // one DEL per key (keys of a page may be on different cluster slots), a page per batch
      for await (const page of keys()) await Promise.all(page.map((k) => client.del(k)))
    },
  }
}

// ---- sessionVerifier -------------------------------------------------------------------------

export interface SessionVerifierOptions {
  /** Better Auth's `secret` (BETTER_AUTH_SECRET): the session cookie's HMAC key. */
  secret: string
  /** The secondaryStorage's keyPrefix; default `'better-auth:'`. */
  keyPrefix?: string
  /**
   * The session cookie's name; default `'better-auth.session_token'`. Unless it
   * starts with `__Secure-` or `__Host-`, the `__Secure-` variant (what Better
   * Auth sets on https) is looked for first, as Better Auth's `getSessionCookie` does.
   */
  cookieName?: string
  /**
   * Fields Better Auth leaves out of getSession's result (`returned: false` in
   * your `user.additionalFields` / `session.additionalFields` or a plugin's
   * schema). The core schema has none.
   */
  hiddenFields?: { user?: string[]; session?: string[] }
}

/** Better Auth's session, as `auth.api.getSession` returns it (dates as Date objects). */
export interface BetterAuthSessionRecord {
  id: string
  token: string
  userId: string
  expiresAt: Date
  createdAt: Date
  updatedAt: Date
  ipAddress?: string | null
  userAgent?: string | null
  [field: string]: unknown
}

/** Better Auth's user, as `auth.api.getSession` returns it. */
export interface BetterAuthUser {
  id: string
  email: string
  emailVerified: boolean
  name: string
  image?: string | null
  createdAt: Date
  updatedAt: Date
  [field: string]: unknown
}

export interface VerifiedSession {
  session: BetterAuthSessionRecord
  user: BetterAuthUser
}

export interface SessionVerifier {
  /**
   * `{ session, user }` as `auth.api.getSession({ headers })` returns it for the
   * same cookie, or null: no cookie, a bad signature, an unknown, expired or
   * signed-out session. Takes a `Cookie` header, a cookie value
   * (`token.signature`, URI-encoded or not, as the bearer plugin's
   * `set-auth-token` header gives it) or `Bearer <that value>`. Input that
   * cannot be valid is answered without a round trip. Read-only: unlike
   * getSession, it never refreshes a session nor sets a cookie.
   */
  verify(cookieHeaderOrToken: string | null | undefined): Promise<VerifiedSession | null>
}

const VERIFIER_OPTIONS = new Set(['secret', 'keyPrefix', 'cookieName', 'hiddenFields'])
const DEFAULT_COOKIE_NAME = 'better-auth.session_token'
/** Inputs longer than this are no cookie header a server would accept. */
const MAX_INPUT = 64 * 1024
/** A base64 HMAC-SHA256: 43 characters and one `=` (what better-call accepts). */
const SIGNATURE_RE = /^[A-Za-z0-9+/]{43}=$/
/** Tokens → user ids remembered per verifier, to read a session and its user's revocation in one round trip. */
const USER_MEMO_SIZE = 10_000
/** Better Auth's date reviver (@better-auth/core/utils/json): ISO-8601 UTC strings anywhere become Dates. */
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z$/

/**
 * JSON.parse(raw, reviveDate) of Better Auth's safeJSONParse, as a walk over the
 * parsed value (a reviver makes JSON.parse several times slower).
 */
function revive(value: unknown): unknown {
  if (typeof value === 'string') {
    if (value.length >= 20 && ISO_8601.test(value)) {
      const d = new Date(value)
      if (!Number.isNaN(d.getTime())) return d
    }
    return value
  }
  if (value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = revive(value[i])
    return value
  }
  const o = value as Record<string, unknown>
  for (const k of Object.keys(o)) {
    const v = o[k]
    const r = revive(v)
    if (r === v) continue
    if (k === '__proto__') Object.defineProperty(o, k, { value: r, writable: true, enumerable: true, configurable: true })
    else o[k] = r
  }
  return o
}

const toDate = (v: unknown): Date => (v instanceof Date ? v : new Date(v as string))

function tryDecode(s: string): string {
  try {
    return s.includes('%') ? decodeURIComponent(s) : s
  } catch {
    return s
  }
}

/**
 * The value of the first of `names` present in a Cookie header, parsed as
 * better-call's parseCookies does (first occurrence wins, quotes stripped,
 * URI-decoded when it holds a `%`).
 */
function findCookie(header: string, names: readonly string[]): string | undefined {
  let found: Array<string | undefined> | undefined
  let index = 0
  while (index < header.length) {
    const eq = header.indexOf('=', index)
    if (eq === -1) break
    let end = header.indexOf(';', index)
    if (end === -1) end = header.length
    else if (end < eq) {
      index = header.lastIndexOf(';', eq - 1) + 1
      continue
    }
    const name = header.slice(index, eq).trim()
    const i = names.indexOf(name)
    if (i >= 0 && found?.[i] === undefined) {
      let value = header.slice(eq + 1, end).trim()
      if (value.charCodeAt(0) === 34) value = value.slice(1, -1)
      found ??= new Array(names.length)
      found[i] = tryDecode(value)
    }
    index = end + 1
  }
  if (found !== undefined) for (const v of found) if (v !== undefined) return v
  return undefined
}

function omit(record: Record<string, unknown>, fields: readonly string[]): void {
  for (const f of fields) delete record[f]
}

/**
 * A fast check of Better Auth sessions for guards: the signed session cookie
 * is verified here (HMAC-SHA256 with Better Auth's secret), then the session
 * record Better Auth stored through `redisSecondaryStorage` is read and
 * checked as getSession checks it (expiry, and the user's "revoked before"
 * mark that sign-out-everywhere leaves).
 *
 * ```ts
 * const verifier = sessionVerifier(redis, { secret: process.env.BETTER_AUTH_SECRET! })
 * const s = await verifier.verify(req.headers.cookie)   // { session, user } | null
 * ```
 */
export function sessionVerifier(redis: ClientLike, options: SessionVerifierOptions): SessionVerifier {
  const who = 'sessionVerifier()'
  const client = clientArg(redis, who)
  if (options === undefined) throw invalidArgument(`${who}: options with a secret are required`)
  const o = checkOptions(who, options, VERIFIER_OPTIONS)
  const secret = o.secret
  if (typeof secret !== 'string' || secret.length === 0) {
    throw invalidArgument(`${who}: secret must be a non-empty string (Better Auth's secret), got ${show(secret)}`)
  }
  const prefix = checkPrefix(who, o.keyPrefix)
  const cookieName = o.cookieName ?? DEFAULT_COOKIE_NAME
  if (typeof cookieName !== 'string' || cookieName.length === 0 || /[=;,\s]/.test(cookieName)) {
    throw invalidArgument(`${who}: cookieName must be a cookie name, got ${show(o.cookieName)}`)
  }
  const names = /^__(Secure|Host)-/.test(cookieName) ? [cookieName] : [`__Secure-${cookieName}`, cookieName]
  const hidden = o.hiddenFields as SessionVerifierOptions['hiddenFields']
  if (hidden !== undefined) {
    const ok = (v: unknown) => v === undefined || (Array.isArray(v) && v.every((f) => typeof f === 'string'))
    if (hidden === null || typeof hidden !== 'object' || !ok(hidden.user) || !ok(hidden.session)) {
      throw invalidArgument(`${who}: hiddenFields must be { user?: string[], session?: string[] }`)
    }
  }
  const hiddenUser = hidden?.user ?? []
  const hiddenSession = hidden?.session ?? []
  const key = Buffer.from(secret, 'utf8')
  /** HMAC of a token → its user id (LRU): both reads then leave in one batch. */
  const userOf = new Map<string, string>()

  /** The session token of a valid signed value, else undefined. */
  function signedToken(input: string): { token: string; signature: string } | undefined {
    let value: string | undefined
    const bare = !input.includes(';') && (input.indexOf('=') === -1 || input.indexOf('=') === input.length - 1)
    if (bare) {
      value = tryDecode(input.trim())
    } else {
      value = findCookie(input, names)
      if (value === undefined) return undefined
    }
    const dot = value.lastIndexOf('.')
    if (dot < 1) return undefined
    const signature = value.slice(dot + 1)
    if (!SIGNATURE_RE.test(signature)) return undefined
    const token = value.slice(0, dot)
    const expected = createHmac('sha256', key).update(token, 'utf8').digest()
    if (!timingSafeEqual(expected, Buffer.from(signature, 'base64'))) return undefined
    return { token, signature }
  }

  function remember(signature: string, userId: string): void {
    userOf.delete(signature)
    userOf.set(signature, userId)
    if (userOf.size > USER_MEMO_SIZE) userOf.delete(userOf.keys().next().value as string)
  }

  const revokedKey = (userId: string) => `${prefix}revoked-sessions-before-${userId}`

  async function verify(input: string | null | undefined): Promise<VerifiedSession | null> {
    if (input === undefined || input === null) return null
    if (typeof input !== 'string') throw invalidArgument(`verify(): expected a Cookie header or a token string, got ${show(input)}`)
    if (input.length === 0 || input.length > MAX_INPUT) return null
    if (input.length > 7 && input.slice(0, 7).toLowerCase() === 'bearer ') input = input.slice(7).trim()
    const signed = signedToken(input)
    if (signed === undefined) return null
    const { token, signature } = signed

    // The session, and (when this token's user is known) the user's revocation mark, in one batch.
    const knownUser = userOf.get(signature)
    const [raw, knownMark] = await Promise.all([
      client.get(prefix + token),
      knownUser === undefined ? undefined : client.get(revokedKey(knownUser)),
    ])
    if (raw === null) {
      userOf.delete(signature)
      return null
    }
    let record: { session?: Record<string, unknown>; user?: Record<string, unknown> } | null
    try {
      record = revive(JSON.parse(raw)) as typeof record
    } catch {
      return null
    }
    const s = record?.session
    const u = record?.user
    if (s === null || typeof s !== 'object' || u === null || typeof u !== 'object') return null
    const userId = s.userId
    if (typeof userId !== 'string') return null
    // what findSession returns: these fields as Dates (Invalid Date when absent)
    const session = s as BetterAuthSessionRecord
    session.expiresAt = toDate(s.expiresAt)
    session.createdAt = toDate(s.createdAt)
    session.updatedAt = toDate(s.updatedAt)
    const expires = session.expiresAt.getTime()
    if (!(expires >= Date.now())) return null // expired (or no valid expiry)
    remember(signature, userId)
    const mark = knownUser === userId ? knownMark : await client.get(revokedKey(userId))
    // Better Auth: a session created before the user's "revoked before" time is revoked
    if (session.createdAt.getTime() < Number(mark)) return null
    const user = u as BetterAuthUser
    user.createdAt = toDate(u.createdAt)
    user.updatedAt = toDate(u.updatedAt)
    if (hiddenSession.length > 0) omit(session, hiddenSession)
    if (hiddenUser.length > 0) omit(user, hiddenUser)
    return { session, user }
  }

  return { verify }
}
