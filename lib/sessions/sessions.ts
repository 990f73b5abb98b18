// `client.sessions`: the package's own session store, for apps without Better
// Auth. Tokens are 256-bit random (base64url); Redis only ever sees the SHA-256
// of a token. See docs/sessions.md.
//
// Keys (under the client's keyPrefix, `prefix` default 'sess:'):
//   sess:t:{<id>}       one session (a string: expiry, bound and creation time in a
//                       fixed-width header, then JSON [userId, data]; id = base64url
//                       SHA-256 of the token), so one GET reads all of it
//   sess:u:{<userId>}   the user's index (a sorted set of ids), hash-tagged by user
// Each script call touches one key, so every call is cluster-safe; operations
// that need both keys (create, revoke, revokeAll, list) make one call per key.
//
// Why revokeAll() cannot miss a live session although check() slides sessions
// without touching the index: a session's expiry `e` never passes its bound `x`,
// and `x` is only raised after the index entry's score was (see src/scripts/session.lua).
// A check that wants to slide past `x` answers at once with the expiry it could
// give, and raises the bound in the background (two more calls, at most once per
// slide period and session).
import { createHash, randomBytes } from 'node:crypto'
import { checkNonEmptyString, checkOptions, isInt, show, showReply } from '../core/args'
import type { RedisClient } from '../core/client'
import { ErrorCode, RedisError, argumentError, invalidArgument } from '../core/errors'
import { extendClient } from '../core/extend'
import { hashTag } from '../core/hash-tag'

declare module '../core/client' {
  interface RedisClient {
    /**
     * The package's session store, for apps without Better Auth: `create`,
     * `check` (one round trip), `touch`, `revoke`, `revokeAll`, `list`.
     * Redis holds the SHA-256 of each token, never the token.
     *
     * ```ts
     * const { token } = await redis.sessions.create(user.id, { role }, 8 * 3600)
     * const s = await redis.sessions.check(token, { slideSeconds: 3600 })   // Session | null
     * ```
     */
    readonly sessions: Sessions
  }
}

/** A live session, as `check` and `list` return it. */
export interface Session<T = unknown> {
  /**
   * The session's id: the SHA-256 of its token (base64url, 43 characters). Not a
   * secret and not usable as a token; `revokeById(userId, id)` takes it.
   */
  id: string
  userId: string
  /** What `create` was given (stored as JSON, so it comes back as JSON would). */
  data: T
  /** On the Redis server's clock. */
  createdAt: Date
  expiresAt: Date
}

export interface CreatedSession {
  /** Give this to the client (a cookie, a bearer token); it is not stored anywhere. */
  token: string
  expiresAt: Date
}

export interface CheckOptions {
  /**
   * Sliding expiry: when the session has less than this many seconds left, it
   * is extended to this many seconds from now (never shortened), in steps of a
   * second (a tenth of the slide if less), so a busy session is not rewritten
   * on every check. A positive integer.
   */
  slideSeconds?: number
}

export interface SessionsOptions {
  /** Prepended to the store's keys (after the client's own keyPrefix); default `'sess:'`. */
  prefix?: string
}

/** Characters of a token: 32 bytes in base64url, without padding. @internal */
export const TOKEN_LENGTH = 43
/** The last character of a canonical 32-byte base64url string: its low two bits are zero. */
const TOKEN_RE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/
const ID_RE = TOKEN_RE
/** TTLs up to 2^31 - 1 seconds (68 years). */
const MAX_TTL_SECONDS = 0x7fffffff
const CHECK_OPTIONS = new Set(['slideSeconds'])
const STORE_OPTIONS = new Set(['prefix'])

/** The id of a token: base64url SHA-256. @internal */
export function tokenId(token: string): string {
  return createHash('sha256').update(token, 'latin1').digest('base64url')
}

/** Whether `token` has the shape of a token this store made (no round trip for the rest). @internal */
export function isWellFormedToken(token: string): boolean {
  return token.length === TOKEN_LENGTH && TOKEN_RE.test(token)
}

function checkUserId(userId: unknown, method: string): asserts userId is string {
  checkNonEmptyString(userId, `sessions.${method}()`, 'userId')
}

function checkSeconds(v: unknown, method: string, name: string): asserts v is number {
  if (!isInt(v, 1) || v > MAX_TTL_SECONDS) {
    throw invalidArgument(`sessions.${method}(): ${name} must be a positive integer (seconds), got ${show(v)}`)
  }
}

/**
 * Token arguments: a string is looked at (malformed ones answer "no session"
 * without a round trip); `undefined`/`null` are "no token"; anything else is a
 * programming error.
 */
function tokenArg(token: unknown, method: string): string | undefined {
  if (typeof token === 'string') return isWellFormedToken(token) ? token : undefined
  if (token === undefined || token === null) return undefined
  throw invalidArgument(`sessions.${method}(): token must be a string, got ${show(token)}`)
}

function badReply(what: string, reply: unknown): RedisError {
  return new RedisError(ErrorCode.Reply, `sessions: unexpected ${what} reply ${showReply(reply)}`)
}

/** Width of a session value's header: e (15 digits, ms), x (15, ms), c (18, µs); see src/scripts/session.lua. */
const HEAD = 48

interface Stored {
  userId: string
  data: unknown
  /** Expiry and bound (ms), creation (µs), on the server's clock. */
  e: number
  x: number
  c: number
}

/** A session's value, or undefined when it is not one of this store's. @internal */
export function parseStored(v: unknown): Stored | undefined {
  if (typeof v !== 'string' || v.length <= HEAD) return undefined
  const e = Number(v.slice(0, 15))
  const x = Number(v.slice(15, 30))
  const c = Number(v.slice(30, HEAD))
  if (!Number.isSafeInteger(e) || !Number.isSafeInteger(x) || !Number.isSafeInteger(c)) return undefined
  let tail: unknown
  try {
    tail = JSON.parse(v.slice(HEAD))
  } catch {
    return undefined
  }
  if (!Array.isArray(tail) || tail.length !== 2 || typeof tail[0] !== 'string') return undefined
  return { userId: tail[0], data: tail[1], e, x, c }
}

function toSession<T>(id: string, r: Stored): Session<T> {
  return { id, userId: r.userId, data: r.data as T, createdAt: new Date(Math.floor(r.c / 1000)), expiresAt: new Date(r.e) }
}

/**
 * `client.sessions`: create, check, touch, revoke, revokeAll, list.
 *
 * ```ts
 * const { token, expiresAt } = await redis.sessions.create(user.id, { role: 'accountant' }, 8 * 3600)
 * const s = await redis.sessions.check(token, { slideSeconds: 3600 })   // Session | null, one round trip
 * await redis.sessions.revokeAll(user.id)                                // e.g. after a password change
 * ```
 */
export class Sessions {
  private readonly prefix: string
  /** Bound raises in flight, by session id: one per session at a time. */
  private readonly raising = new Map<string, Promise<unknown>>()

  /** Usually `client.sessions`; `new Sessions(client, { prefix })` for a second store. */
  constructor(
    private readonly client: RedisClient,
    options: SessionsOptions = {},
  ) {
    checkOptions('Sessions', options, STORE_OPTIONS)
    const prefix = options.prefix ?? 'sess:'
    if (typeof prefix !== 'string' || prefix.includes('{') || prefix.includes('}')) {
      throw invalidArgument('Sessions: prefix must be a string without braces')
    }
    this.prefix = prefix
  }

  private sessionKey(id: string): string {
    return `${this.prefix}t:{${id}}`
  }

  private indexKey(userId: string): string {
    return `${this.prefix}u:${hashTag(userId)}`
  }

  /**
   * Starts a session for `userId` that lives `ttlSeconds` (see `check`'s
   * `slideSeconds` and `touch` to extend it). `data` is stored as JSON and
   * returned by `check` and `list`. The token is 32 random bytes (base64url);
   * only its SHA-256 reaches Redis.
   */
  async create<T = unknown>(userId: string, data: T, ttlSeconds: number): Promise<CreatedSession> {
    checkUserId(userId, 'create')
    checkSeconds(ttlSeconds, 'create', 'ttlSeconds')
    let json: string | undefined
    try {
      json = JSON.stringify(data)
    } catch (e) {
      throw invalidArgument(`sessions.create(): data cannot be stored as JSON (${(e as Error).message})`)
    }
    if (json === undefined) throw invalidArgument(`sessions.create(): data cannot be stored as JSON, got ${show(data)}`)
    const tail = `[${JSON.stringify(userId)},${json}]`
    const token = randomBytes(32).toString('base64url')
    const id = tokenId(token)
    const ttlMs = ttlSeconds * 1000
    // Both calls leave in this tick's batch, index first: once the session exists,
    // its index entry does. The entry outlives the bound x = e + ttl given below.
    const indexed = this.client.runScript('session_index', [this.indexKey(userId)], ['add', id, 2 * ttlMs])
    const created = this.client.runScript('session', [this.sessionKey(id)], ['create', tail, ttlMs, ttlMs])
    const [, reply] = await Promise.all([indexed, created])
    const r = parseStored(reply)
    if (r === undefined) throw badReply('create', reply)
    return { token, expiresAt: new Date(r.e) }
  }

  /**
   * The session of `token`, or null when there is none: unknown, expired,
   * revoked, or not a token at all (a malformed token costs no round trip).
   * One script call reads the session, checks its expiry on the server's clock
   * and, with `slideSeconds`, extends it.
   */
  check<T = unknown>(token: string, options?: CheckOptions): Promise<Session<T> | null> {
    let slideMs = 0
    let t: string | undefined
    try {
      if (options !== undefined) {
        checkOptions('sessions.check()', options, CHECK_OPTIONS)
        if (options.slideSeconds !== undefined) {
          checkSeconds(options.slideSeconds, 'check', 'slideSeconds')
          slideMs = options.slideSeconds * 1000
        }
      }
      t = tokenArg(token, 'check')
    } catch (e) {
      return Promise.reject(argumentError(e, 'sessions.check()'))
    }
    if (t === undefined) return Promise.resolve(null)
    const id = tokenId(t)
    const key = this.sessionKey(id)
    if (this.client.cachesKey(key)) return this.checkCached<T>(id, key, slideMs)
    return this.checkByScript<T>(id, slideMs)
  }

  /**
   * check() when client-side caching covers the session keys: the session is
   * read with a plain GET, which is served from process memory while the server
   * has not invalidated it (a revoke or sign-out anywhere drops every instance's
   * copy). Only a check that must write (a slide due) goes to the script.
   */
  private checkCached<T>(id: string, key: string, slideMs: number): Promise<Session<T> | null> {
    return this.client.get(key).then((v) => {
      const r = parseStored(v)
      if (r === undefined) return null
      const now = Date.now()
      if (r.e <= now) return null // expired: the server drops the key, and with it this copy
      if (slideMs > 0 && now + slideMs - r.e >= Math.min(1000, slideMs / 10)) return this.checkByScript<T>(id, slideMs)
      return toSession<T>(id, r)
    })
  }

  private checkByScript<T>(id: string, slideMs: number): Promise<Session<T> | null> {
    return this.client.runScript('session', [this.sessionKey(id)], ['check', slideMs]).then((reply) => {
      if (reply === null) return null
      if (!Array.isArray(reply) || reply.length !== 2) throw badReply('check', reply)
      const r = parseStored(reply[0])
      if (r === undefined) return null
      const wanted = Number(reply[1])
      if (wanted > 0) this.raiseInBackground(id, r.userId, wanted + slideMs, wanted)
      return toSession<T>(id, r)
    })
  }

  /**
   * Sets the session to expire `ttlSeconds` from now (longer or shorter than
   * before). Resolves false when there is no such session.
   */
  async touch(token: string, ttlSeconds: number): Promise<boolean> {
    checkSeconds(ttlSeconds, 'touch', 'ttlSeconds')
    const t = tokenArg(token, 'touch')
    if (t === undefined) return false
    const id = tokenId(t)
    const ttlMs = ttlSeconds * 1000
    const reply = await this.client.runScript('session', [this.sessionKey(id)], ['touch', ttlMs])
    if (reply === null) return false
    if (!Array.isArray(reply) || reply.length !== 2) throw badReply('touch', reply)
    const r = parseStored(reply[0])
    if (r === undefined) throw badReply('touch', reply)
    const wanted = Number(reply[1])
    if (wanted === 0) return true
    return (await this.raise(id, r.userId, wanted + ttlMs, wanted)) !== null
  }

  /** Ends the session of `token` on every instance. Resolves whether there was one. */
  async revoke(token: string): Promise<boolean> {
    const t = tokenArg(token, 'revoke')
    if (t === undefined) return false
    return this.revokeId(tokenId(t), undefined)
  }

  /**
   * Ends one of `userId`'s sessions by its `id` (from `list`), e.g. "sign out
   * that device". Only a session of that user is ended. Resolves whether there was one.
   */
  async revokeById(userId: string, id: string): Promise<boolean> {
    checkUserId(userId, 'revokeById')
    if (typeof id !== 'string') throw invalidArgument(`sessions.revokeById(): id must be a string, got ${show(id)}`)
    if (id.length !== TOKEN_LENGTH || !ID_RE.test(id)) return false
    return this.revokeId(id, userId)
  }

  private async revokeId(id: string, owner: string | undefined): Promise<boolean> {
    // the value's JSON tail starts with `["<owner>",`: the script compares that prefix
    const args = owner === undefined ? ['revoke'] : ['revoke', `[${JSON.stringify(owner)},`]
    const reply = await this.client.runScript('session', [this.sessionKey(id)], args)
    if (reply === null) return false
    const r = parseStored(reply)
    if (r === undefined) return true // deleted something that was not a session of this store
    await this.client.runScript('session_index', [this.indexKey(r.userId)], ['remove', id])
    return true
  }

  /**
   * Ends every session of `userId` (sign out everywhere, e.g. after a password
   * change); resolves how many were live. Costs two round trips and one command
   * per session of this user, whatever the other users have. A session created
   * while this runs may survive it.
   */
  async revokeAll(userId: string): Promise<number> {
    checkUserId(userId, 'revokeAll')
    const reply = await this.client.runScript('session_index', [this.indexKey(userId)], ['take'])
    if (!Array.isArray(reply) || reply.length < 1) throw badReply('revokeAll', reply)
    const ids = (reply as string[]).slice(1)
    // one DEL per session (each its own cluster slot), all in this tick's batch
    const deleted = await Promise.all(ids.map((id) => this.client.del(this.sessionKey(id))))
    let n = 0
    for (const d of deleted) n += d
    return n
  }

  /**
   * The live sessions of `userId`, oldest first. Costs two round trips and one
   * command per session of this user; entries of sessions that ended are pruned
   * from the index on the way.
   */
  async list<T = unknown>(userId: string): Promise<Array<Session<T>>> {
    checkUserId(userId, 'list')
    const index = this.indexKey(userId)
    const reply = await this.client.runScript('session_index', [index], ['list'])
    if (!Array.isArray(reply) || reply.length < 1) throw badReply('list', reply)
    const now = Number(reply[0])
    const ids = (reply as string[]).slice(1)
    // one GET per session (each its own cluster slot), all in this tick's batch
    const values = await Promise.all(ids.map((id) => this.client.get(this.sessionKey(id))))
    const live: Array<{ id: string; r: Stored }> = []
    const gone: string[] = []
    for (let i = 0; i < ids.length; i++) {
      const r = values[i] === null ? undefined : parseStored(values[i])
      if (r === undefined || !(r.e > now)) {
        gone.push(ids[i]) // ended (revoked or expired): prune
        continue
      }
      if (r.userId === userId) live.push({ id: ids[i], r })
    }
    if (gone.length > 0) await this.client.runScript('session_index', [index], ['remove', ...gone])
    live.sort((a, b) => a.r.c - b.r.c || (a.id < b.id ? -1 : 1))
    return live.map(({ id, r }) => toSession<T>(id, r))
  }

  /**
   * Raises the bound of a session: the index entry first, then the session's
   * bound, and extends it to `wanted` (ms, server clock). Resolves the new
   * expiry, or null when the session is gone.
   */
  private async raise(id: string, userId: string, bound: number, wanted: number): Promise<number | null> {
    const b = await this.client.runScript('session_index', [this.indexKey(userId)], ['raise', id, bound])
    const v = await this.client.runScript('session', [this.sessionKey(id)], ['extend', Number(b), wanted])
    return parseStored(v)?.e ?? null
  }

  /** `raise` for check(): not awaited by the caller, one at a time per session, errors dropped. */
  private raiseInBackground(id: string, userId: string, bound: number, wanted: number): void {
    if (this.raising.has(id)) return
    const p = this.raise(id, userId, bound, wanted)
      .catch(() => undefined) // the next check asks again
      .finally(() => this.raising.delete(id))
    this.raising.set(id, p)
  }

  /** Resolves once the background work started so far (bound raises) is done. For tests and shutdown. */
  async settled(): Promise<void> {
    while (this.raising.size > 0) await Promise.all([...this.raising.values()])
  }
}

/** The client's Sessions, in its `featureState`. */
const SESSIONS = Symbol('sessions.sessions')

extendClient({
  get sessions(): Sessions {
    return this.featureState(SESSIONS, () => new Sessions(this))
  },
})
