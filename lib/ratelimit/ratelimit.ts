// Rate limiting over the package's `ratelimit` Lua script: rule validation, the
// script's argument packing, result shaping, the in-process cache of denied
// keys, the fail policy, and the IETF RateLimit headers. Installs
// `client.rateLimit` and `client.rateLimitAll` on RedisClient.
import { checkNonEmptyString, checkOptionKeys, isArray, isInt, show, showReply } from '../core/args'
import type { RedisClient } from '../core/client'
import { ErrorCode, RedisError, checkArgs, invalidArgument, isUnavailable } from '../core/errors'
import { extendClient } from '../core/extend'
import { hashTag } from '../core/hash-tag'
import { ScriptPacer } from '../core/pacer'

declare module '../core/client' {
  interface RedisClient {
    /**
     * Counts one request against `rule` for `key`, atomically and with the Redis
     * server's clock; resolves whether it may go ahead. A denied key is answered
     * from memory (no round trip) until its retry time. When Redis is unreachable
     * or slower than `commandTimeoutMs`, `rule.onUnavailable` ('allow') decides.
     *
     * ```ts
     * const r = await redis.rateLimit(`login:${ip}`, { limit: 5, windowMs: 60_000 })
     * if (!r.allowed) throw new TooManyRequests(r.retryAfterMs)
     * ```
     */
    rateLimit(key: string, rule: RateLimitRule): Promise<RateLimitResult>
    /** Several limits (at most 64) for one key in one atomic script: if any denies, none is charged. */
    rateLimitAll(key: string, rules: RateLimitRule[]): Promise<RateLimitResult[]>
  }
}

/** How a rule counts. See docs/rate-limiting.md, "Choosing an algorithm". */
export type RateLimitAlgorithm = 'gcra' | 'fixed-window' | 'sliding-window'

/** What to answer when Redis cannot: unreachable, or slower than `commandTimeoutMs`. */
export type UnavailablePolicy = 'allow' | 'deny'

export interface RateLimitRule {
  /** Requests (cost units) per window: a positive integer. */
  limit: number
  /** The window in milliseconds: a positive integer. */
  windowMs: number
  /** Default `'gcra'`. */
  algorithm?: RateLimitAlgorithm
  /**
   * GCRA only: how many requests may arrive at once after a quiet period
   * (default `limit`). Requests are spaced `windowMs / limit` apart beyond it.
   */
  burst?: number
  /** Units this request uses (default 1; 0 checks without charging). At most `burst` (GCRA) or `limit`. */
  cost?: number
  /** When this rule denies, deny every call for the key for this long (ms); default 0: no block. */
  blockMs?: number
  /** Names the rule: its Redis state (so changing `limit` keeps the count) and its policy in the headers. */
  name?: string
  /** Default `'allow'`. */
  onUnavailable?: UnavailablePolicy
}

/**
 * Why a call was answered the way it was (absent when it was allowed by Redis):
 * - `limit`: this rule has no room for the request;
 * - `blocked`: this rule is inside its `blockMs`;
 * - `other-rule`: this rule had room, but another rule of the same `rateLimitAll` denied, so none was charged;
 * - `cached-deny`: answered from this process' memory of an earlier denial, without a round trip;
 * - `unavailable`: Redis could not answer in time; `onUnavailable` decided.
 */
export type RateLimitReason = 'limit' | 'blocked' | 'other-rule' | 'cached-deny' | 'unavailable'

export interface RateLimitResult {
  /** Whether the request may go ahead. In `rateLimitAll`, the same for every rule: all pass or none. */
  allowed: boolean
  /** The rule's `limit`. */
  limit: number
  /** The rule's `windowMs`: what `rateLimitHeaders(results)` states as each policy's window (`w=`). */
  windowMs: number
  /** Requests of cost 1 this rule allows right now (after this one, when it was charged). */
  remaining: number
  /** Milliseconds until this rule's limit is whole again. */
  resetMs: number
  /** Milliseconds until a retry can succeed; 0 when allowed. */
  retryAfterMs: number
  /** The rule's `name`, when it has one. */
  name?: string
  reason?: RateLimitReason
}

/** Denied answers remembered per client (LRU). @internal */
export const RATE_LIMIT_CACHE_SIZE = 10_000
/** `retryAfterMs` of a denial made by `onUnavailable: 'deny'`. @internal */
export const UNAVAILABLE_RETRY_MS = 1000

const RULE_FIELDS = new Set(['limit', 'windowMs', 'algorithm', 'burst', 'cost', 'blockMs', 'name', 'onUnavailable'])
const ALGORITHMS: Record<RateLimitAlgorithm, number> = { gcra: 1, 'fixed-window': 2, 'sliding-window': 3 }
const ALGO_TAG = ['', 'g', 'f', 's']
const VERDICT_REASON: Array<RateLimitReason | undefined> = [/* 0 */ 'limit', /* 1 */ undefined, /* 2 */ 'blocked', /* 3 */ 'other-rule']

interface Rule {
  algo: number
  limit: number
  windowMs: number
  burst: number
  cost: number
  blockMs: number
  name: string | undefined
  onUnavailable: UnavailablePolicy
  /** The state's key suffix and the cache's identity of this rule. */
  id: string
}

function validateRule(rule: unknown, where: string): Rule {
  if (rule === null || typeof rule !== 'object' || isArray(rule)) throw invalidArgument(`${where}: a rule must be an object`)
  const r = rule as Record<string, unknown>
  checkOptionKeys(where, r, RULE_FIELDS, 'rule field')
  if (!isInt(r.limit, 1)) throw invalidArgument(`${where}: limit must be a positive integer, got ${show(r.limit)}`)
  if (!isInt(r.windowMs, 1)) throw invalidArgument(`${where}: windowMs must be a positive integer, got ${show(r.windowMs)}`)
  const algorithm = r.algorithm === undefined ? 'gcra' : r.algorithm
  const algo = ALGORITHMS[algorithm as RateLimitAlgorithm]
  if (typeof algorithm !== 'string' || !Object.hasOwn(ALGORITHMS, algorithm)) {
    throw invalidArgument(`${where}: algorithm must be 'gcra', 'fixed-window' or 'sliding-window', got ${show(r.algorithm)}`)
  }
  let burst = r.limit
  if (r.burst !== undefined) {
    if (algo !== 1) throw invalidArgument(`${where}: burst applies to the 'gcra' algorithm only`)
    if (!isInt(r.burst, 1)) throw invalidArgument(`${where}: burst must be a positive integer, got ${show(r.burst)}`)
    burst = r.burst
  }
  const cost = r.cost === undefined ? 1 : r.cost
  if (!isInt(cost, 0)) throw invalidArgument(`${where}: cost must be a non-negative integer, got ${show(r.cost)}`)
  if (cost > burst) {
    throw invalidArgument(
      algo === 1
        ? `${where}: cost ${cost} is above the burst (${burst}): no request could ever pass`
        : `${where}: cost ${cost} is above the limit (${burst}): no request could ever pass`,
    )
  }
  const blockMs = r.blockMs === undefined ? 0 : r.blockMs
  if (!isInt(blockMs, 0)) throw invalidArgument(`${where}: blockMs must be a non-negative integer, got ${show(r.blockMs)}`)
  if (r.name !== undefined && (typeof r.name !== 'string' || r.name.length === 0)) {
    throw invalidArgument(`${where}: name must be a non-empty string`)
  }
  const onUnavailable = r.onUnavailable === undefined ? 'allow' : r.onUnavailable
  if (onUnavailable !== 'allow' && onUnavailable !== 'deny') {
    throw invalidArgument(`${where}: onUnavailable must be 'allow' or 'deny', got ${show(r.onUnavailable)}`)
  }
  const name = r.name as string | undefined
  return {
    algo,
    limit: r.limit,
    windowMs: r.windowMs,
    burst,
    cost,
    blockMs,
    name,
    onUnavailable,
    id: `${ALGO_TAG[algo]}:${name === undefined ? `${r.limit}/${r.windowMs}` : `n:${name}`}`,
  }
}

// ---- the denied-key cache ------------------------------------------------------------

interface Denial {
  /** performance.now() before which the call is certainly still denied. */
  until: number
  /** performance.now() at which the call was sent. */
  at: number
  results: RateLimitResult[]
}

/** Per-client memory of denied calls (bounded, least recently used first out). @internal */
export class DeniedCache {
  private readonly map = new Map<string, Denial>()
  constructor(private readonly max = RATE_LIMIT_CACHE_SIZE) {}

  get size(): number {
    return this.map.size
  }

  lookup(id: string, now: number): RateLimitResult[] | undefined {
    const d = this.map.get(id)
    if (d === undefined) return undefined
    if (now >= d.until) {
      this.map.delete(id)
      return undefined
    }
    this.map.delete(id) // refresh its place in the LRU order
    this.map.set(id, d)
    const elapsed = now - d.at
    return d.results.map((r) => ({
      ...r,
      resetMs: Math.max(0, Math.ceil(r.resetMs - elapsed)),
      retryAfterMs: r.retryAfterMs > 0 ? Math.max(1, Math.ceil(r.retryAfterMs - elapsed)) : 0,
      reason: r.reason === 'limit' || r.reason === 'blocked' ? 'cached-deny' : r.reason,
    }))
  }

  remember(id: string, at: number, results: RateLimitResult[]): void {
    let wait = 0
    for (const r of results) if (r.reason === 'limit' || r.reason === 'blocked') wait = Math.max(wait, r.retryAfterMs)
    // retryAfterMs is rounded up and counted from the server's clock, a little after `at`:
    // one millisecond less keeps the cached answer strictly inside the denial.
    if (wait <= 1) return
    this.map.delete(id)
    this.map.set(id, { until: at + wait - 1, at, results })
    if (this.map.size > this.max) {
      // evict expired entries first, then the least recently used
      for (const [k, d] of this.map) {
        if (this.map.size <= this.max) break
        if (at >= d.until) this.map.delete(k)
      }
      while (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string)
    }
  }
}

// ---- per-client state --------------------------------------------------------------------

/** Rate-limit script calls started per client per turn of the event loop (see ScriptPacer). @internal */
export const SCRIPT_BATCH = 32

/** The client's DeniedCache and ScriptPacer, in its `featureState`. */
const DENIED = Symbol('ratelimit.denied')
const PACER = Symbol('ratelimit.pacer')

// ---- the calls -------------------------------------------------------------------------

/** `client.rateLimit(key, rule)`. */
async function rateLimit(client: RedisClient, key: string, rule: RateLimitRule): Promise<RateLimitResult> {
  const rules = checkArgs('rateLimit()', () => {
    checkNonEmptyString(key, 'rateLimit()')
    return [validateRule(rule, 'rateLimit()')]
  })
  return (await run(client, key, rules))[0]
}

/** Rules one `rateLimitAll` takes at most: a handful in practice (per second, per minute, per day). */
const MAX_RULES = 64

/** `client.rateLimitAll(key, rules)`. */
async function rateLimitAll(client: RedisClient, key: string, rules: RateLimitRule[]): Promise<RateLimitResult[]> {
  const checked = checkArgs('rateLimitAll()', () => {
    checkNonEmptyString(key, 'rateLimitAll()')
    if (!Array.isArray(rules) || rules.length === 0) throw invalidArgument('rateLimitAll(): rules must be a non-empty array')
    // Before any walk over it: a sparse array may claim 2^32 - 1 elements.
    if (rules.length > MAX_RULES) throw invalidArgument(`rateLimitAll(): at most ${MAX_RULES} rules, got ${rules.length}`)
    const list = rules.map((r, i) => validateRule(r, `rateLimitAll() rules[${i}]`))
    const ids = new Set<string>()
    for (const r of list) {
      if (ids.has(r.id)) {
        throw invalidArgument(
          `rateLimitAll(): two rules share ${r.name === undefined ? `limit ${r.limit} per ${r.windowMs} ms` : `the name ${JSON.stringify(r.name)}`}; give them distinct names`,
        )
      }
      ids.add(r.id)
    }
    return list
  })
  return run(client, key, checked)
}

async function run(client: RedisClient, key: string, rules: Rule[]): Promise<RateLimitResult[]> {
  const cache = client.featureState(DENIED, () => new DeniedCache())
  let cacheId = key
  for (const r of rules) cacheId += `\n${r.id}|${r.limit}|${r.windowMs}|${r.burst}|${r.cost}|${r.blockMs}`
  const at = performance.now()
  const cached = cache.lookup(cacheId, at)
  if (cached !== undefined) {
    client.rateLimitCacheHits++
    return cached
  }

  const tag = hashTag(key)
  const keys: string[] = new Array(rules.length)
  const args: number[] = new Array(rules.length * 6)
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]
    keys[i] = `rl:${tag}:${r.id}`
    const a = i * 6
    args[a] = r.algo
    args[a + 1] = r.limit
    args[a + 2] = r.windowMs
    args[a + 3] = r.burst
    args[a + 4] = r.cost
    args[a + 5] = r.blockMs
  }
  let reply: number[]
  try {
    const pacer = client.featureState(PACER, () => new ScriptPacer(SCRIPT_BATCH))
    reply = (await pacer.run(() => client.runScript('ratelimit', keys, args))) as number[]
  } catch (e) {
    if (isUnavailable(e)) return unavailable(rules)
    throw e
  }
  if (!Array.isArray(reply) || reply.length !== rules.length * 4) {
    throw new RedisError(ErrorCode.Reply, `ratelimit script: unexpected reply ${showReply(reply)}`)
  }
  let allowed = true
  for (let i = 0; i < reply.length; i += 4) if (reply[i] !== 1) allowed = false
  const results: RateLimitResult[] = new Array(rules.length)
  for (let i = 0; i < rules.length; i++) {
    const o = i * 4
    const res: RateLimitResult = {
      allowed,
      limit: rules[i].limit,
      windowMs: rules[i].windowMs,
      remaining: Number(reply[o + 1]),
      resetMs: Number(reply[o + 2]),
      retryAfterMs: Number(reply[o + 3]),
    }
    if (rules[i].name !== undefined) res.name = rules[i].name
    const reason = VERDICT_REASON[reply[o]]
    if (reason !== undefined) res.reason = reason
    results[i] = res
  }
  if (!allowed) cache.remember(cacheId, at, results)
  return results
}

/** The fail policy's answer: allowed unless a rule says `onUnavailable: 'deny'`. */
function unavailable(rules: Rule[]): RateLimitResult[] {
  const allowed = rules.every((r) => r.onUnavailable === 'allow')
  return rules.map((r) => {
    const res: RateLimitResult = {
      allowed,
      limit: r.limit,
      windowMs: r.windowMs,
      remaining: allowed ? Math.max(0, r.limit - r.cost) : 0,
      resetMs: 0,
      retryAfterMs: allowed ? 0 : UNAVAILABLE_RETRY_MS,
      reason: 'unavailable',
    }
    if (r.name !== undefined) res.name = r.name
    return res
  })
}

extendClient({
  rateLimit(key: string, rule: RateLimitRule): Promise<RateLimitResult> {
    return rateLimit(this, key, rule)
  },
  rateLimitAll(key: string, rules: RateLimitRule[]): Promise<RateLimitResult[]> {
    return rateLimitAll(this, key, rules)
  },
})

// ---- headers ----------------------------------------------------------------------------

/**
 * The `RateLimit-Policy` and `RateLimit` response headers of the IETF httpapi
 * ratelimit-headers draft (draft-ietf-httpapi-ratelimit-headers-10), plus
 * `Retry-After` (whole seconds, rounded up) when the request was denied.
 *
 * ```ts
 * const rules = [{ limit: 10, windowMs: 1000 }, { limit: 1000, windowMs: 86_400_000, name: 'daily' }]
 * const results = await redis.rateLimitAll(ip, rules)
 * res.set(rateLimitHeaders(results))
 * // RateLimit-Policy: "10-per-1s";q=10;w=1, "daily";q=1000;w=86400
 * // RateLimit: "10-per-1s";r=9;t=1, "daily";r=999;t=86400
 * ```
 *
 * Each result carries its rule's `limit` and `windowMs`, which give the
 * policy's `q=` and `w=` and the name of an unnamed policy (`"10-per-1s"`).
 * `rules` (same order) is optional, kept for callers that passed it before
 * results carried their window: a rule's `windowMs` takes precedence over its
 * result's, and its `name` names a result that has none. A result without a window (one built by hand) gives a
 * policy with `q=` only, called `"policy-1"`, `"policy-2"`… when unnamed.
 * Results answered by the fail policy (`reason: 'unavailable'`) are left out of
 * `RateLimit`: nothing is known about them.
 */
export function rateLimitHeaders(
  results: RateLimitResult | RateLimitResult[],
  rules?: RateLimitRule | RateLimitRule[],
): Record<string, string> {
  return checkArgs('rateLimitHeaders()', () => headersOf(results, rules))
}

function headersOf(results: RateLimitResult | RateLimitResult[], rules?: RateLimitRule | RateLimitRule[]): Record<string, string> {
  const list = Array.isArray(results) ? results : [results]
  const ruleList = rules === undefined ? [] : Array.isArray(rules) ? rules : [rules]
  if (list.length === 0) throw invalidArgument('rateLimitHeaders(): no results')
  if (rules !== undefined && ruleList.length !== list.length) {
    throw invalidArgument(`rateLimitHeaders(): ${list.length} results but ${ruleList.length} rules`)
  }
  const policies: string[] = []
  const current: string[] = []
  let denied = false
  let retryMs = 0
  list.forEach((result, i) => {
    const r = resultArg(result, i)
    const rule: unknown = ruleList[i]
    if (rule !== undefined && (rule === null || typeof rule !== 'object')) throw invalidArgument(`rateLimitHeaders(): rules[${i}] is not a rule`)
    const { windowMs: ruleWindowMs, name: ruleName } = (rule ?? {}) as Partial<RateLimitRule>
    if (ruleWindowMs !== undefined && !isInt(ruleWindowMs, 1)) throw invalidArgument(`rateLimitHeaders(): rules[${i}].windowMs must be a positive integer`)
    if (ruleName !== undefined && typeof ruleName !== 'string') throw invalidArgument(`rateLimitHeaders(): rules[${i}].name must be a string`)
    const windowMs = ruleWindowMs ?? r.windowMs
    const name = sfString(r.name ?? ruleName ?? defaultPolicyName(r.limit, windowMs, i))
    const w = windowMs !== undefined ? `;w=${Math.max(1, Math.ceil(windowMs / 1000))}` : ''
    policies.push(`${name};q=${r.limit}${w}`)
    if (r.reason !== 'unavailable') {
      current.push(`${name};r=${Math.max(0, Math.floor(r.remaining))};t=${Math.max(0, Math.ceil(r.resetMs / 1000))}`)
    }
    if (!r.allowed) {
      denied = true
      retryMs = Math.max(retryMs, r.retryAfterMs)
    }
  })
  const headers: Record<string, string> = { 'RateLimit-Policy': policies.join(', ') }
  if (current.length > 0) headers.RateLimit = current.join(', ')
  if (denied) headers['Retry-After'] = String(Math.max(1, Math.ceil(retryMs / 1000)))
  return headers
}

/** The fields of a RateLimitResult that the headers use, checked and read once each. */
function resultArg(
  v: unknown,
  i: number,
): Pick<RateLimitResult, 'allowed' | 'limit' | 'remaining' | 'resetMs' | 'retryAfterMs' | 'name' | 'reason'> & { windowMs?: number } {
  if (v === null || typeof v !== 'object') throw invalidArgument(`rateLimitHeaders(): results[${i}] is not a result`)
  const { allowed, limit, windowMs, remaining, resetMs, retryAfterMs, name, reason } = v as Record<string, unknown>
  const bad = (field: string, want: string) => invalidArgument(`rateLimitHeaders(): results[${i}].${field} must be ${want}`)
  if (typeof allowed !== 'boolean') throw bad('allowed', 'a boolean')
  if (!isInt(limit, 0)) throw bad('limit', 'a non-negative integer')
  // absent on a result built by hand: the policy then has no `w=`
  if (windowMs !== undefined && !isInt(windowMs, 1)) throw bad('windowMs', 'a positive integer')
  for (const [field, n] of [['remaining', remaining], ['resetMs', resetMs], ['retryAfterMs', retryAfterMs]] as const) {
    if (typeof n !== 'number' || !Number.isFinite(n)) throw bad(field, 'a finite number')
  }
  if (name !== undefined && typeof name !== 'string') throw bad('name', 'a string')
  if (reason !== undefined && typeof reason !== 'string') throw bad('reason', 'a string')
  return {
    allowed,
    limit,
    windowMs: windowMs as number | undefined,
    remaining: remaining as number,
    resetMs: resetMs as number,
    retryAfterMs: retryAfterMs as number,
    name,
    reason: reason as RateLimitResult['reason'],
  }
}

function defaultPolicyName(limit: number, windowMs: number | undefined, i: number): string {
  if (!windowMs) return `policy-${i + 1}`
  const units: Array<[number, string]> = [[86_400_000, 'd'], [3_600_000, 'h'], [60_000, 'm'], [1000, 's']]
  for (const [ms, u] of units) if (windowMs % ms === 0) return `${limit}-per-${windowMs / ms}${u}`
  return `${limit}-per-${windowMs}ms`
}

/** An RFC 8941 sf-string: printable ASCII, with `"` and `\` escaped. */
function sfString(s: string): string {
  return `"${s.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, (c) => `\\${c}`)}"`
}
