// Option and result types of the typed commands (commands.ts). Results are
// shaped as node-redis v4 users know them: numbers, booleans, arrays,
// `[member, score]` pairs and `{ id, fields }` stream entries.
import type { RedisKey, RedisValue } from './types'

/** Field/value pairs: a plain object, a Map or `[field, value]` pairs. */
export type FieldValues = Record<string, RedisValue> | Map<RedisValue, RedisValue> | Array<[RedisValue, RedisValue]>

/** What HSCAN, SSCAN and ZSCAN take: a glob for the members and a COUNT hint. */
export interface MemberScanOptions {
  /** Glob pattern over fields (hscan) or members (sscan, zscan); default all. */
  match?: string
  /** Hint for items per round trip (COUNT); Redis' default is 10. */
  count?: number
}

/** The end of a list LMOVE takes from or puts to. */
export type ListSide = 'LEFT' | 'RIGHT'

/** What blpop / brpop resolve: the key of the list popped (as given) and the element. */
export type ListPop = [key: string, element: string]

/** What bzpopmin / bzpopmax resolve: the key of the sorted set popped (as given), the member and its score. */
export type ZSetPop = [key: string, member: string, score: number]

/** A member of a sorted set with its score, as zadd takes it. */
export interface ZMember {
  score: number
  value: RedisValue
}

/**
 * ZADD's options. `nx` and `xx` exclude each other; `gt`/`lt` exclude each
 * other and `nx`; `incr` takes exactly one member.
 */
export interface ZAddOptions {
  /** Only add new members (NX). */
  nx?: boolean
  /** Only update existing members (XX). */
  xx?: boolean
  /** Only update when the new score is greater (GT); new members are still added. */
  gt?: boolean
  /** Only update when the new score is less (LT); new members are still added. */
  lt?: boolean
  /** Count changed members, not only added ones (CH). */
  ch?: boolean
  /** Add the score to the member's (INCR): zadd then resolves the new score, or null when a condition prevented it. */
  incr?: boolean
}

/**
 * A ZRANGE bound: an index (rank range), a score (`by: 'score'`: a number,
 * `'-inf'`/`'+inf'`, `'(1.5'` for exclusive) or a lex bound (`by: 'lex'`:
 * `'[a'`, `'(a'`, `'-'`, `'+'`).
 */
export type ZRangeBound = number | string

/** A score bound of ZCOUNT and ZRANGE BYSCORE: a number (±Infinity included) or `'-inf'`, `'+inf'`, `'(5'` (exclusive). */
export type ScoreBound = number | string

export interface ZRangeOptions {
  /** Range by score (BYSCORE) or lexicographically (BYLEX); default by rank (index). */
  by?: 'score' | 'lex'
  /** Reverse order (REV): then `start` is the high end, as in Redis. */
  rev?: boolean
  /** LIMIT offset count (with `by` only). */
  limit?: { offset: number; count: number }
  /** Resolve `[member, score]` pairs (WITHSCORES; not with `by: 'lex'`). */
  withScores?: boolean
}

/** A member of a sorted set and its score. */
export type ZMemberScore = [member: string, score: number]

/**
 * How XADD and XTRIM trim a stream: keep `maxLen` entries (MAXLEN) or drop
 * entries with an ID below `minId` (MINID) — exactly one of the two.
 */
export interface StreamTrim {
  maxLen?: number
  minId?: string
  /** `~`: trim only whole macro nodes, which is cheaper (default exact, `=`). */
  approximate?: boolean
  /** LIMIT: at most this many entries evicted per call (with `approximate` only). */
  limit?: number
}

export interface XAddOptions {
  /** Do not create the stream when it does not exist (NOMKSTREAM): xadd then resolves null. */
  nomkstream?: boolean
  /** Trim the stream in the same call. */
  trim?: StreamTrim
}

/** A stream entry: its ID and its fields (a plain object; a field named `__proto__` is kept). */
export interface StreamEntry {
  id: string
  fields: Record<string, string>
}

/** An entry of a consumer's pending history (xreadgroup with an ID other than `>`) deleted since it was delivered. */
export interface DeletedStreamEntry {
  id: string
  fields: null
}

/** Where xread / xreadgroup read from: a stream and the ID after which to read (`'$'`: only new entries; `'>'` in a group: never delivered ones). */
export interface StreamFrom {
  key: RedisKey
  id: string
}

/** One stream's entries in an xread / xreadgroup reply. `name` is the key as given. */
export interface StreamMessages<E = StreamEntry> {
  name: string
  messages: E[]
}

export interface XReadOptions {
  /** At most this many entries per stream (COUNT). */
  count?: number
  /** Wait up to this many ms for an entry (BLOCK; 0: forever). A blocking command: see docs/commands.md. */
  block?: number
}

export interface XReadGroupOptions extends XReadOptions {
  /** Do not add the entries to the pending list (NOACK). */
  noack?: boolean
}

export interface XGroupCreateOptions {
  /** Create the stream when it does not exist (MKSTREAM). */
  mkstream?: boolean
}

/** XPENDING's summary of a group. */
export interface XPendingSummary {
  /** Entries delivered and not acknowledged. */
  pending: number
  /** Smallest and greatest pending ID; null when none is pending. */
  firstId: string | null
  lastId: string | null
  /** Consumers with pending entries, and how many each has. */
  consumers: Array<{ name: string; pending: number }>
}

/** XPENDING's extended form: a range of pending entries. */
export interface XPendingRange {
  /** Lowest and highest ID (`'-'`, `'+'`, or `'(id'` for exclusive). */
  start: string
  end: string
  count: number
  /** Only this consumer's entries. */
  consumer?: string
  /** Only entries idle at least this many ms (IDLE). */
  minIdleMs?: number
}

/** A pending entry, from XPENDING's extended form. */
export interface XPendingEntry {
  id: string
  consumer: string
  /** Milliseconds since it was last delivered. */
  idleMs: number
  /** How many times it was delivered. */
  deliveries: number
}

export interface XClaimOptions {
  /** Set the entries' idle time (IDLE ms). */
  idleMs?: number
  /** Set the entries' last delivery time (TIME, Unix ms). */
  timeMs?: number
  /** Set the delivery counter (RETRYCOUNT). */
  retryCount?: number
  /** Claim IDs that are not pending yet, if they exist (FORCE). */
  force?: boolean
  /** Resolve the IDs only and leave the delivery counter alone (JUSTID). */
  justId?: boolean
}

export interface XAutoClaimOptions {
  /** At most this many entries (COUNT; Redis' default 100). */
  count?: number
  /** Resolve the IDs only (JUSTID). */
  justId?: boolean
}

/** What xautoclaim resolves: the cursor for the next call (`'0-0'` when the scan is done), the claimed entries and IDs that no longer exist (removed from the pending list). */
export interface XAutoClaimResult {
  nextId: string
  entries: StreamEntry[]
  deletedIds: string[]
}

/** xautoclaim with `justId`: the claimed IDs instead of entries. */
export interface XAutoClaimIdsResult {
  nextId: string
  ids: string[]
  deletedIds: string[]
}

/** What TYPE answers: a built-in type, `'none'` for a missing key, or a module's type name. */
export type KeyType = 'none' | 'string' | 'list' | 'set' | 'zset' | 'hash' | 'stream' | (string & {})

/** EXPIREAT's condition (Redis 7): NX only without a TTL, XX only with one, GT/LT only later/earlier than the current one. */
export type ExpireCondition = 'NX' | 'XX' | 'GT' | 'LT'

export interface CopyOptions {
  /** Overwrite the destination (REPLACE); default false: copy returns false when it exists. */
  replace?: boolean
  /** Copy into another database (DB); standalone only. */
  db?: number
}
