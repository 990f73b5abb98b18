// The everyday typed commands (strings, hashes, lists, sets, sorted sets,
// streams, keys), built over the client's generic `command()`: it sends any
// command (applying the keyPrefix at the command's key positions) and answers
// raw replies — strings, null, numbers, arrays (objects for RESP3 maps) — which
// are shaped here into what ioredis and node-redis v4 users expect.
import { EventEmitter } from 'node:events'
import { checkOptions, isArray, isInt, isPlainObject, show, showReply } from './args'
import { ErrorCode, RedisError, argumentError, invalidArgument } from './errors'
import type { RedisKey, RedisValue } from './types'
import type {
  CopyOptions,
  DeletedStreamEntry,
  ExpireCondition,
  FieldValues,
  KeyType,
  ListPop,
  ListSide,
  MemberScanOptions,
  ScoreBound,
  StreamEntry,
  StreamFrom,
  StreamMessages,
  StreamTrim,
  XAddOptions,
  XAutoClaimIdsResult,
  XAutoClaimOptions,
  XAutoClaimResult,
  XClaimOptions,
  XGroupCreateOptions,
  XPendingEntry,
  XPendingRange,
  XPendingSummary,
  XReadGroupOptions,
  XReadOptions,
  ZAddOptions,
  ZMember,
  ZMemberScore,
  ZRangeBound,
  ZRangeOptions,
  ZSetPop,
} from './command-types'

type Arg = RedisValue | number

const SCAN_OPTIONS = new Set(['match', 'count'])
const ZADD_OPTIONS = new Set(['nx', 'xx', 'gt', 'lt', 'ch', 'incr'])
const ZRANGE_OPTIONS = new Set(['by', 'rev', 'limit', 'withScores'])
const TRIM_OPTIONS = new Set(['maxLen', 'minId', 'approximate', 'limit'])
const XADD_OPTIONS = new Set(['nomkstream', 'trim'])
const XREAD_OPTIONS = new Set(['count', 'block'])
const XREADGROUP_OPTIONS = new Set(['count', 'block', 'noack'])
const XGROUP_OPTIONS = new Set(['mkstream'])
const XPENDING_OPTIONS = new Set(['start', 'end', 'count', 'consumer', 'minIdleMs'])
const XCLAIM_OPTIONS = new Set(['idleMs', 'timeMs', 'retryCount', 'force', 'justId'])
const XAUTOCLAIM_OPTIONS = new Set(['count', 'justId'])
const COPY_OPTIONS = new Set(['replace', 'db'])
const EXPIRE_CONDITIONS = new Set(['NX', 'XX', 'GT', 'LT'])

/**
 * The typed commands of {@link RedisClient}. Each one sends its command
 * through `command()` and shapes the reply; bad input rejects with
 * `ERR_INVALID_ARGUMENT` before anything is sent. See docs/commands.md.
 * (An EventEmitter: the base of RedisClient, whose events are documented there.)
 */
export abstract class TypedCommands extends EventEmitter {
  /** Sends any command (the client's generic `command()`): keys prefixed, raw replies. */
  abstract command(name: string, ...args: Array<RedisValue | number>): Promise<unknown>

  // ---- strings ----------------------------------------------------------------

  /** Adds a float to the number stored at `key` (0 when missing); resolves the new value. */
  incrByFloat(key: RedisKey, increment: number): Promise<number> {
    return this.command('INCRBYFLOAT', key, increment).then(toScore)
  }

  /** Subtracts 1; resolves the new value. */
  decr(key: RedisKey): Promise<number> {
    return this.command('DECR', key) as Promise<number>
  }

  /** Subtracts `decrement`; resolves the new value. */
  decrBy(key: RedisKey, decrement: number): Promise<number> {
    return this.command('DECRBY', key, decrement) as Promise<number>
  }

  /** Appends to the string (creating it); resolves its new length. */
  append(key: RedisKey, value: RedisValue): Promise<number> {
    return this.command('APPEND', key, value) as Promise<number>
  }

  /** Length of the string in bytes (0 when missing). */
  strlen(key: RedisKey): Promise<number> {
    return this.command('STRLEN', key) as Promise<number>
  }

  /** The substring between byte offsets `start` and `end`, inclusive (negative: from the end). */
  getRange(key: RedisKey, start: number, end: number): Promise<string> {
    return this.command('GETRANGE', key, start, end).then(toStr)
  }

  /** Overwrites part of the string from byte `offset` (zero-padding it); resolves its new length. */
  setRange(key: RedisKey, offset: number, value: RedisValue): Promise<number> {
    return this.command('SETRANGE', key, offset, value) as Promise<number>
  }

  /** Sets every key, or none if any of them exists (atomically); resolves whether it set them. */
  msetnx(entries: Record<string, RedisValue> | Map<RedisKey, RedisValue> | Array<[RedisKey, RedisValue]>): Promise<boolean> {
    return checked('msetnx()', () => this.command('MSETNX', ...flatPairs('msetnx()', entries)).then(toBool))
  }

  // ---- hashes -------------------------------------------------------------------

  /** Values of several fields, null where a field does not exist. */
  hmget(key: RedisKey, ...fields: Array<RedisValue | RedisValue[]>): Promise<Array<string | null>> {
    return this.command('HMGET', key, ...flat(fields)).then((r) => toStrs(r, 'hmget()') as Array<string | null>)
  }

  /** Adds an integer to a field (0 when missing); resolves the new value. */
  hincrBy(key: RedisKey, field: RedisValue, increment: number): Promise<number> {
    return this.command('HINCRBY', key, field, increment) as Promise<number>
  }

  /** Adds a float to a field (0 when missing); resolves the new value. */
  hincrByFloat(key: RedisKey, field: RedisValue, increment: number): Promise<number> {
    return this.command('HINCRBYFLOAT', key, field, increment).then(toScore)
  }

  /** Whether the field exists. */
  hexists(key: RedisKey, field: RedisValue): Promise<boolean> {
    return this.command('HEXISTS', key, field).then(toBool)
  }

  /** Number of fields (0 when missing). */
  hlen(key: RedisKey): Promise<number> {
    return this.command('HLEN', key) as Promise<number>
  }

  /** Every field name. */
  hkeys(key: RedisKey): Promise<string[]> {
    return this.command('HKEYS', key).then((r) => toStrs(r, 'hkeys()') as string[])
  }

  /** Every value. */
  hvals(key: RedisKey): Promise<string[]> {
    return this.command('HVALS', key).then((r) => toStrs(r, 'hvals()') as string[])
  }

  /** Sets the field only if it does not exist; resolves whether it did. */
  hsetnx(key: RedisKey, field: RedisValue, value: RedisValue): Promise<boolean> {
    return this.command('HSETNX', key, field, value).then(toBool)
  }

  /**
   * Iterates over a hash's `[field, value]` pairs with HSCAN. As with every
   * SCAN, a pair may come twice when the hash changes meanwhile.
   *
   * ```ts
   * for await (const [field, value] of redis.hscan('user:1', { match: 'pref:*' })) { … }
   * ```
   */
  async *hscan(key: RedisKey, options?: MemberScanOptions): AsyncIterableIterator<[field: string, value: string]> {
    const extra = scanArgs('hscan()', options)
    let cursor = '0'
    do {
      const [next, items] = scanReply(await this.command('HSCAN', key, cursor, ...extra), 'hscan()')
      cursor = next
      for (let i = 0; i + 1 < items.length; i += 2) yield [toStr(items[i]), toStr(items[i + 1])]
    } while (cursor !== '0')
  }

  // ---- lists ----------------------------------------------------------------------

  /** Prepends the values (the last one ends up first); resolves the list's length. */
  lpush(key: RedisKey, ...values: Array<RedisValue | RedisValue[]>): Promise<number> {
    return this.command('LPUSH', key, ...flat(values)) as Promise<number>
  }

  /** Appends the values; resolves the list's length. */
  rpush(key: RedisKey, ...values: Array<RedisValue | RedisValue[]>): Promise<number> {
    return this.command('RPUSH', key, ...flat(values)) as Promise<number>
  }

  /** Removes and resolves the first element (null when empty), or with `count` up to that many (null when the list does not exist). */
  lpop(key: RedisKey): Promise<string | null>
  lpop(key: RedisKey, count: number): Promise<string[] | null>
  lpop(key: RedisKey, count?: number): Promise<string | null | string[]> {
    return this.popCommand('LPOP', 'lpop()', key, count)
  }

  /** Removes and resolves the last element (null when empty), or with `count` up to that many (null when the list does not exist). */
  rpop(key: RedisKey): Promise<string | null>
  rpop(key: RedisKey, count: number): Promise<string[] | null>
  rpop(key: RedisKey, count?: number): Promise<string | null | string[]> {
    return this.popCommand('RPOP', 'rpop()', key, count)
  }

  private popCommand(name: string, where: string, key: RedisKey, count: number | undefined): Promise<string | null | string[]> {
    if (count === undefined) return this.command(name, key).then(toStrOrNull)
    return checked(where, () => {
      checkInt(where, 'count', count, 0)
      return this.command(name, key, count).then((r) => (r === null ? null : (toStrs(r, where) as string[])))
    })
  }

  /** Elements from index `start` to `stop`, inclusive (negative: from the end; `0, -1`: all). */
  lrange(key: RedisKey, start: number, stop: number): Promise<string[]> {
    return this.command('LRANGE', key, start, stop).then((r) => toStrs(r, 'lrange()') as string[])
  }

  /** Length of the list (0 when missing). */
  llen(key: RedisKey): Promise<number> {
    return this.command('LLEN', key) as Promise<number>
  }

  /** Removes `count` occurrences of `element` (from the head; negative: from the tail; 0: all); resolves how many. */
  lrem(key: RedisKey, count: number, element: RedisValue): Promise<number> {
    return this.command('LREM', key, count, element) as Promise<number>
  }

  /** Keeps only the elements from `start` to `stop`, inclusive. */
  ltrim(key: RedisKey, start: number, stop: number): Promise<void> {
    return this.command('LTRIM', key, start, stop).then(toVoid)
  }

  /** The element at `index` (negative: from the end), or null. */
  lindex(key: RedisKey, index: number): Promise<string | null> {
    return this.command('LINDEX', key, index).then(toStrOrNull)
  }

  /** Replaces the element at `index`; rejects (ERR_REPLY) when out of range. */
  lset(key: RedisKey, index: number, element: RedisValue): Promise<void> {
    return this.command('LSET', key, index, element).then(toVoid)
  }

  /** Moves an element from one end of `source` to one end of `destination` (atomically); resolves it, or null when `source` is empty. */
  lmove(source: RedisKey, destination: RedisKey, from: ListSide, to: ListSide): Promise<string | null> {
    return checked('lmove()', () => {
      checkSide('lmove()', 'from', from)
      checkSide('lmove()', 'to', to)
      return this.command('LMOVE', source, destination, from, to).then(toStrOrNull)
    })
  }

  // ---- blocking commands: each waits on a dedicated connection of the client
  // (see docs/commands.md, "Blocking commands"), never in front of its other calls.

  /**
   * Pops the first element of the first non-empty list of `keys`, waiting up to
   * `timeoutSeconds` (0: forever; fractions allowed) for one to arrive; resolves
   * `[key, element]`, or null when the time ran out.
   */
  blpop(keys: RedisKey | RedisKey[], timeoutSeconds: number): Promise<ListPop | null> {
    return blockingPop<ListPop>(this, 'BLPOP', 'blpop()', keys, timeoutSeconds)
  }

  /** blpop from the tail: the last element of the first non-empty list. */
  brpop(keys: RedisKey | RedisKey[], timeoutSeconds: number): Promise<ListPop | null> {
    return blockingPop<ListPop>(this, 'BRPOP', 'brpop()', keys, timeoutSeconds)
  }

  /** lmove that waits up to `timeoutSeconds` (0: forever) for `source` to have an element; resolves it, or null when the time ran out. */
  blmove(source: RedisKey, destination: RedisKey, from: ListSide, to: ListSide, timeoutSeconds: number): Promise<string | null> {
    return checked('blmove()', () => {
      checkSide('blmove()', 'from', from)
      checkSide('blmove()', 'to', to)
      return this.command('BLMOVE', source, destination, from, to, checkTimeout('blmove()', timeoutSeconds)).then(toStrOrNull)
    })
  }

  /**
   * Pops the lowest-scored member of the first non-empty sorted set of `keys`,
   * waiting up to `timeoutSeconds` (0: forever) for one; resolves
   * `[key, member, score]` (the score a number), or null when the time ran out.
   */
  bzpopmin(keys: RedisKey | RedisKey[], timeoutSeconds: number): Promise<ZSetPop | null> {
    return blockingPop<ZSetPop>(this, 'BZPOPMIN', 'bzpopmin()', keys, timeoutSeconds)
  }

  /** bzpopmin for the highest-scored member. */
  bzpopmax(keys: RedisKey | RedisKey[], timeoutSeconds: number): Promise<ZSetPop | null> {
    return blockingPop<ZSetPop>(this, 'BZPOPMAX', 'bzpopmax()', keys, timeoutSeconds)
  }

  // ---- sets -------------------------------------------------------------------------

  /** Whether `member` is in the set. */
  sismember(key: RedisKey, member: RedisValue): Promise<boolean> {
    return this.command('SISMEMBER', key, member).then(toBool)
  }

  /** Whether each member is in the set, in order. */
  smismember(key: RedisKey, ...members: Array<RedisValue | RedisValue[]>): Promise<boolean[]> {
    return this.command('SMISMEMBER', key, ...flat(members)).then((r) => {
      if (!isArray(r)) throw unexpected('smismember()', r)
      return r.map(toBool)
    })
  }

  /** Number of members (0 when missing). */
  scard(key: RedisKey): Promise<number> {
    return this.command('SCARD', key) as Promise<number>
  }

  /** Removes and resolves a random member (null when empty), or with `count` up to that many distinct ones. */
  spop(key: RedisKey): Promise<string | null>
  spop(key: RedisKey, count: number): Promise<string[]>
  spop(key: RedisKey, count?: number): Promise<string | null | string[]> {
    if (count === undefined) return this.command('SPOP', key).then(toStrOrNull)
    return checked('spop()', () => {
      checkInt('spop()', 'count', count, 0)
      return this.command('SPOP', key, count).then((r) => (r === null ? [] : (toStrs(r, 'spop()') as string[])))
    })
  }

  /**
   * A random member (null when empty), or with `count` several: distinct ones
   * when `count` is positive, possibly repeated when negative.
   */
  srandmember(key: RedisKey): Promise<string | null>
  srandmember(key: RedisKey, count: number): Promise<string[]>
  srandmember(key: RedisKey, count?: number): Promise<string | null | string[]> {
    if (count === undefined) return this.command('SRANDMEMBER', key).then(toStrOrNull)
    return checked('srandmember()', () => {
      checkInt('srandmember()', 'count', count, Number.MIN_SAFE_INTEGER)
      return this.command('SRANDMEMBER', key, count).then((r) => (r === null ? [] : (toStrs(r, 'srandmember()') as string[])))
    })
  }

  /** Members in every one of the sets. */
  sinter(...keys: Array<RedisKey | RedisKey[]>): Promise<string[]> {
    return this.command('SINTER', ...flat(keys)).then((r) => toStrs(r, 'sinter()') as string[])
  }

  /** Members in any of the sets. */
  sunion(...keys: Array<RedisKey | RedisKey[]>): Promise<string[]> {
    return this.command('SUNION', ...flat(keys)).then((r) => toStrs(r, 'sunion()') as string[])
  }

  /** Members of the first set that are in none of the others. */
  sdiff(...keys: Array<RedisKey | RedisKey[]>): Promise<string[]> {
    return this.command('SDIFF', ...flat(keys)).then((r) => toStrs(r, 'sdiff()') as string[])
  }

  /** Iterates over a set's members with SSCAN (a member may come twice when the set changes meanwhile). */
  async *sscan(key: RedisKey, options?: MemberScanOptions): AsyncIterableIterator<string> {
    const extra = scanArgs('sscan()', options)
    let cursor = '0'
    do {
      const [next, items] = scanReply(await this.command('SSCAN', key, cursor, ...extra), 'sscan()')
      cursor = next
      for (const m of items) yield toStr(m)
    } while (cursor !== '0')
  }

  // ---- sorted sets ------------------------------------------------------------------

  /**
   * Adds members or updates their scores; resolves how many were added (with
   * `ch`: added or changed). With `incr` (one member), resolves the new score,
   * or null when `nx`/`xx`/`gt`/`lt` prevented the update.
   *
   * ```ts
   * await redis.zadd('board', [{ score: 10, value: 'ann' }, { score: 7, value: 'bob' }])   // 2
   * await redis.zadd('board', { score: 12, value: 'ann' }, { gt: true, ch: true })          // 1
   * ```
   */
  zadd(key: RedisKey, members: ZMember | ZMember[], options: ZAddOptions & { incr: true }): Promise<number | null>
  zadd(key: RedisKey, members: ZMember | ZMember[], options?: ZAddOptions & { incr?: false }): Promise<number>
  zadd(key: RedisKey, members: ZMember | ZMember[], options?: ZAddOptions): Promise<number | null>
  zadd(key: RedisKey, members: ZMember | ZMember[], options?: ZAddOptions): Promise<number | null> {
    return checked('zadd()', () => {
      const o = checkOptions('zadd()', options, ZADD_OPTIONS) as ZAddOptions
      const list = isArray(members) ? members : [members]
      if (list.length === 0) throw invalidArgument('zadd(): no members given')
      if (o.nx && o.xx) throw invalidArgument('zadd(): nx and xx exclude each other')
      if (o.gt && o.lt) throw invalidArgument('zadd(): gt and lt exclude each other')
      if (o.nx && (o.gt || o.lt)) throw invalidArgument('zadd(): nx excludes gt and lt')
      if (o.incr && list.length !== 1) throw invalidArgument(`zadd(): incr takes exactly one member, got ${list.length}`)
      const args: Arg[] = [key]
      if (o.nx) args.push('NX')
      if (o.xx) args.push('XX')
      if (o.gt) args.push('GT')
      if (o.lt) args.push('LT')
      if (o.ch) args.push('CH')
      if (o.incr) args.push('INCR')
      for (const m of list) {
        if (!isPlainObject(m)) throw invalidArgument(`zadd(): each member must be { score, value }, got ${show(m)}`)
        args.push(scoreArg('zadd()', 'score', m.score, false), m.value as RedisValue)
      }
      const reply = this.command('ZADD', ...args)
      return o.incr ? reply.then(toScoreOrNull) : (reply as Promise<number>)
    })
  }

  /** Removes members; resolves how many existed. */
  zrem(key: RedisKey, ...members: Array<RedisValue | RedisValue[]>): Promise<number> {
    return this.command('ZREM', key, ...flat(members)) as Promise<number>
  }

  /** The member's score, or null. */
  zscore(key: RedisKey, member: RedisValue): Promise<number | null> {
    return this.command('ZSCORE', key, member).then(toScoreOrNull)
  }

  /** Adds `increment` to the member's score (0 when new); resolves the new score. */
  zincrBy(key: RedisKey, increment: number, member: RedisValue): Promise<number> {
    return checked('zincrBy()', () => this.command('ZINCRBY', key, scoreArg('zincrBy()', 'increment', increment, false), member).then(toScore))
  }

  /** Number of members (0 when missing). */
  zcard(key: RedisKey): Promise<number> {
    return this.command('ZCARD', key) as Promise<number>
  }

  /** Number of members with a score between `min` and `max` (inclusive; `'(5'` for exclusive, ±Infinity or `'-inf'`/`'+inf'`). */
  zcount(key: RedisKey, min: ScoreBound, max: ScoreBound): Promise<number> {
    return checked('zcount()', () => this.command('ZCOUNT', key, scoreArg('zcount()', 'min', min, true), scoreArg('zcount()', 'max', max, true)) as Promise<number>)
  }

  /**
   * Members from `start` to `stop`: by rank (indexes, the default), by score
   * (`by: 'score'`) or lexicographically (`by: 'lex'`), optionally reversed
   * (`rev`: then `start` is the high end) and paged (`limit`, with `by`).
   * With `withScores`, resolves `[member, score]` pairs.
   *
   * ```ts
   * await redis.zrange('board', 0, 2, { rev: true, withScores: true })         // top 3: [['ann', 12], …]
   * await redis.zrange('board', 10, '+inf', { by: 'score', limit: { offset: 0, count: 20 } })
   * ```
   */
  zrange(key: RedisKey, start: ZRangeBound, stop: ZRangeBound, options: ZRangeOptions & { withScores: true }): Promise<ZMemberScore[]>
  zrange(key: RedisKey, start: ZRangeBound, stop: ZRangeBound, options?: ZRangeOptions & { withScores?: false }): Promise<string[]>
  zrange(key: RedisKey, start: ZRangeBound, stop: ZRangeBound, options?: ZRangeOptions): Promise<string[] | ZMemberScore[]>
  zrange(key: RedisKey, start: ZRangeBound, stop: ZRangeBound, options?: ZRangeOptions): Promise<string[] | ZMemberScore[]> {
    return checked('zrange()', () => {
      const o = checkOptions('zrange()', options, ZRANGE_OPTIONS) as ZRangeOptions
      const args: Arg[] = [key]
      if (o.by === undefined) {
        checkInt('zrange()', 'start', start, Number.MIN_SAFE_INTEGER)
        checkInt('zrange()', 'stop', stop, Number.MIN_SAFE_INTEGER)
        args.push(start, stop)
      } else if (o.by === 'score') {
        args.push(scoreArg('zrange()', 'start', start, true), scoreArg('zrange()', 'stop', stop, true), 'BYSCORE')
      } else if (o.by === 'lex') {
        if (typeof start !== 'string' || typeof stop !== 'string') {
          throw invalidArgument(`zrange(): by 'lex' takes string bounds ('[a', '(a', '-', '+'), got ${show(start)} and ${show(stop)}`)
        }
        if (o.withScores) throw invalidArgument("zrange(): withScores does not go with by: 'lex'")
        args.push(start, stop, 'BYLEX')
      } else {
        throw invalidArgument(`zrange(): by must be 'score' or 'lex', got ${show(o.by)}`)
      }
      if (o.rev) args.push('REV')
      if (o.limit !== undefined) {
        if (o.by === undefined) throw invalidArgument("zrange(): limit needs by: 'score' or 'lex'")
        const l = o.limit
        if (!isPlainObject(l)) throw invalidArgument('zrange(): limit must be { offset, count }')
        checkInt('zrange()', 'limit.offset', l.offset, 0)
        checkInt('zrange()', 'limit.count', l.count, Number.MIN_SAFE_INTEGER)
        args.push('LIMIT', l.offset, l.count)
      }
      if (o.withScores) {
        args.push('WITHSCORES')
        return this.command('ZRANGE', ...args).then((r) => toPairs(r, 'zrange()'))
      }
      return this.command('ZRANGE', ...args).then((r) => toStrs(r, 'zrange()') as string[])
    })
  }

  /** The member's rank, lowest score first (0-based), or null. */
  zrank(key: RedisKey, member: RedisValue): Promise<number | null> {
    return this.command('ZRANK', key, member) as Promise<number | null>
  }

  /** The member's rank, highest score first (0-based), or null. */
  zrevrank(key: RedisKey, member: RedisValue): Promise<number | null> {
    return this.command('ZREVRANK', key, member) as Promise<number | null>
  }

  /** Removes and resolves the lowest-scored `[member, score]` (null when empty), or with `count` up to that many, lowest first. */
  zpopmin(key: RedisKey): Promise<ZMemberScore | null>
  zpopmin(key: RedisKey, count: number): Promise<ZMemberScore[]>
  zpopmin(key: RedisKey, count?: number): Promise<ZMemberScore | null | ZMemberScore[]> {
    return this.zpopCommand('ZPOPMIN', 'zpopmin()', key, count)
  }

  /** Removes and resolves the highest-scored `[member, score]` (null when empty), or with `count` up to that many, highest first. */
  zpopmax(key: RedisKey): Promise<ZMemberScore | null>
  zpopmax(key: RedisKey, count: number): Promise<ZMemberScore[]>
  zpopmax(key: RedisKey, count?: number): Promise<ZMemberScore | null | ZMemberScore[]> {
    return this.zpopCommand('ZPOPMAX', 'zpopmax()', key, count)
  }

  private zpopCommand(name: string, where: string, key: RedisKey, count: number | undefined): Promise<ZMemberScore | null | ZMemberScore[]> {
    if (count === undefined) return this.command(name, key).then((r) => toPairs(r, where)[0] ?? null)
    return checked(where, () => {
      checkInt(where, 'count', count, 0)
      return this.command(name, key, count).then((r) => toPairs(r, where))
    })
  }

  /** Iterates over a sorted set's `[member, score]` pairs with ZSCAN (a pair may come twice when the set changes meanwhile). */
  async *zscan(key: RedisKey, options?: MemberScanOptions): AsyncIterableIterator<ZMemberScore> {
    const extra = scanArgs('zscan()', options)
    let cursor = '0'
    do {
      const [next, items] = scanReply(await this.command('ZSCAN', key, cursor, ...extra), 'zscan()')
      cursor = next
      for (let i = 0; i + 1 < items.length; i += 2) yield [toStr(items[i]), toScore(items[i + 1])]
    } while (cursor !== '0')
  }

  // ---- streams ----------------------------------------------------------------------

  /**
   * Appends an entry; resolves its ID (null with `nomkstream` when the stream
   * does not exist). `id` is `'*'` for a generated one.
   *
   * ```ts
   * await redis.xadd('events', '*', { type: 'order', id: '42' }, { trim: { maxLen: 10_000, approximate: true } })
   * ```
   */
  xadd(key: RedisKey, id: string, fields: FieldValues, options?: XAddOptions): Promise<string | null> {
    return checked('xadd()', () => {
      const o = checkOptions('xadd()', options, XADD_OPTIONS) as XAddOptions
      checkId('xadd()', 'id', id)
      const pairs = flatPairs('xadd()', fields)
      const args: Arg[] = [key]
      if (o.nomkstream) args.push('NOMKSTREAM')
      if (o.trim !== undefined) args.push(...trimArgs('xadd()', o.trim))
      args.push(id, ...pairs)
      return this.command('XADD', ...args).then(toStrOrNull)
    })
  }

  /** Number of entries (0 when missing). */
  xlen(key: RedisKey): Promise<number> {
    return this.command('XLEN', key) as Promise<number>
  }

  /** Entries with IDs from `start` to `end` (`'-'`, `'+'`; `'(id'` for exclusive), oldest first. */
  xrange(key: RedisKey, start = '-', end = '+', options?: { count?: number }): Promise<StreamEntry[]> {
    return this.streamRange('XRANGE', 'xrange()', key, start, end, options)
  }

  /** Entries with IDs from `end` down to `start`, newest first (note the order: end first, as in Redis). */
  xrevrange(key: RedisKey, end = '+', start = '-', options?: { count?: number }): Promise<StreamEntry[]> {
    return this.streamRange('XREVRANGE', 'xrevrange()', key, end, start, options)
  }

  private streamRange(name: string, where: string, key: RedisKey, a: string, b: string, options: { count?: number } | undefined): Promise<StreamEntry[]> {
    return checked(where, () => {
      const o = checkOptions(where, options, COUNT_OPTION)
      checkId(where, 'start', a)
      checkId(where, 'end', b)
      const args: Arg[] = [key, a, b]
      if (o.count !== undefined) args.push('COUNT', checkInt(where, 'count', o.count, 0))
      return this.command(name, ...args).then((r) => toEntries(r, where) as StreamEntry[])
    })
  }

  /**
   * Entries after the given IDs, from one or several streams; null when
   * there are none. `{ block }` makes it a blocking command.
   *
   * ```ts
   * const r = await redis.xread([{ key: 'events', id: lastId }], { count: 100 })
   * for (const { name, messages } of r ?? []) for (const { id, fields } of messages) { … }
   * ```
   */
  xread(streams: StreamFrom | StreamFrom[], options?: XReadOptions): Promise<Array<StreamMessages> | null> {
    return checked('xread()', () => {
      const o = checkOptions('xread()', options, XREAD_OPTIONS) as XReadOptions
      const list = streamList('xread()', streams)
      const args: Arg[] = []
      readOptions('xread()', o, args)
      args.push('STREAMS', ...list.map((s) => s.key), ...list.map((s) => s.id))
      return this.command('XREAD', ...args).then((r) => toStreams(r, 'xread()', list) as StreamMessages[] | null)
    })
  }

  /** Creates a consumer group reading from `id` (`'$'`: new entries only; `'0'`: the whole stream). Rejects (ERR_REPLY, BUSYGROUP) when it exists. */
  xgroupCreate(key: RedisKey, group: string, id = '$', options?: XGroupCreateOptions): Promise<void> {
    return checked('xgroupCreate()', () => {
      const o = checkOptions('xgroupCreate()', options, XGROUP_OPTIONS) as XGroupCreateOptions
      checkId('xgroupCreate()', 'id', id)
      const args: Arg[] = ['CREATE', key, group, id]
      if (o.mkstream) args.push('MKSTREAM')
      return this.command('XGROUP', ...args).then(toVoid)
    })
  }

  /**
   * Reads as `consumer` of `group`: id `'>'` for entries never delivered to
   * the group, another ID for this consumer's pending history (where an entry
   * deleted since has `fields: null`). Null when there is nothing.
   */
  xreadgroup(
    group: string,
    consumer: string,
    streams: StreamFrom | StreamFrom[],
    options?: XReadGroupOptions,
  ): Promise<Array<StreamMessages<StreamEntry | DeletedStreamEntry>> | null> {
    return checked('xreadgroup()', () => {
      const o = checkOptions('xreadgroup()', options, XREADGROUP_OPTIONS) as XReadGroupOptions
      const list = streamList('xreadgroup()', streams)
      const args: Arg[] = ['GROUP', group, consumer]
      readOptions('xreadgroup()', o, args)
      if (o.noack) args.push('NOACK')
      args.push('STREAMS', ...list.map((s) => s.key), ...list.map((s) => s.id))
      return this.command('XREADGROUP', ...args).then((r) => toStreams(r, 'xreadgroup()', list))
    })
  }

  /** Acknowledges entries of the group; resolves how many were pending. */
  xack(key: RedisKey, group: string, ...ids: Array<string | string[]>): Promise<number> {
    return this.command('XACK', key, group, ...flat(ids)) as Promise<number>
  }

  /**
   * The group's pending entries: a summary, or with a range their details.
   *
   * ```ts
   * await redis.xpending('events', 'workers')            // { pending: 2, firstId, lastId, consumers: [{ name: 'w1', pending: 2 }] }
   * await redis.xpending('events', 'workers', { start: '-', end: '+', count: 10, minIdleMs: 60_000 })
   * ```
   */
  xpending(key: RedisKey, group: string): Promise<XPendingSummary>
  xpending(key: RedisKey, group: string, range: XPendingRange): Promise<XPendingEntry[]>
  xpending(key: RedisKey, group: string, range?: XPendingRange): Promise<XPendingSummary | XPendingEntry[]> {
    if (range === undefined) return this.command('XPENDING', key, group).then(toPendingSummary)
    return checked('xpending()', () => {
      const r = checkOptions('xpending()', range, XPENDING_OPTIONS) as unknown as XPendingRange
      const args: Arg[] = [key, group]
      if (r.minIdleMs !== undefined) args.push('IDLE', checkInt('xpending()', 'minIdleMs', r.minIdleMs, 0))
      checkId('xpending()', 'start', r.start)
      checkId('xpending()', 'end', r.end)
      args.push(r.start, r.end, checkInt('xpending()', 'count', r.count, 0))
      if (r.consumer !== undefined) args.push(r.consumer)
      return this.command('XPENDING', ...args).then(toPendingEntries)
    })
  }

  /**
   * Takes over pending entries idle at least `minIdleMs` for `consumer`;
   * resolves the entries claimed (with `justId`, their IDs).
   */
  xclaim(key: RedisKey, group: string, consumer: string, minIdleMs: number, ids: string | string[], options: XClaimOptions & { justId: true }): Promise<string[]>
  xclaim(key: RedisKey, group: string, consumer: string, minIdleMs: number, ids: string | string[], options?: XClaimOptions & { justId?: false }): Promise<StreamEntry[]>
  xclaim(key: RedisKey, group: string, consumer: string, minIdleMs: number, ids: string | string[], options?: XClaimOptions): Promise<StreamEntry[] | string[]> {
    return checked('xclaim()', () => {
      const o = checkOptions('xclaim()', options, XCLAIM_OPTIONS) as XClaimOptions
      const list = typeof ids === 'string' ? [ids] : ids
      if (!isArray(list) || list.length === 0) throw invalidArgument('xclaim(): ids must be an ID or a non-empty array of IDs')
      const args: Arg[] = [key, group, consumer, checkInt('xclaim()', 'minIdleMs', minIdleMs, 0), ...list]
      if (o.idleMs !== undefined) args.push('IDLE', checkInt('xclaim()', 'idleMs', o.idleMs, 0))
      if (o.timeMs !== undefined) args.push('TIME', checkInt('xclaim()', 'timeMs', o.timeMs, 0))
      if (o.retryCount !== undefined) args.push('RETRYCOUNT', checkInt('xclaim()', 'retryCount', o.retryCount, 0))
      if (o.force) args.push('FORCE')
      if (o.justId) {
        args.push('JUSTID')
        return this.command('XCLAIM', ...args).then((r) => toStrs(r, 'xclaim()') as string[])
      }
      // Redis 7 leaves deleted entries out; older servers answered them as nil.
      return this.command('XCLAIM', ...args).then((r) => toEntries(r, 'xclaim()').filter(isLive))
    })
  }

  /**
   * Claims pending entries idle at least `minIdleMs`, scanning the pending
   * list from `start` (`'0-0'` first, then the `nextId` of the previous call
   * until it is `'0-0'` again).
   */
  xautoclaim(key: RedisKey, group: string, consumer: string, minIdleMs: number, start: string, options: XAutoClaimOptions & { justId: true }): Promise<XAutoClaimIdsResult>
  xautoclaim(key: RedisKey, group: string, consumer: string, minIdleMs: number, start: string, options?: XAutoClaimOptions & { justId?: false }): Promise<XAutoClaimResult>
  xautoclaim(key: RedisKey, group: string, consumer: string, minIdleMs: number, start: string, options?: XAutoClaimOptions): Promise<XAutoClaimResult | XAutoClaimIdsResult> {
    return checked('xautoclaim()', () => {
      const o = checkOptions('xautoclaim()', options, XAUTOCLAIM_OPTIONS) as XAutoClaimOptions
      checkId('xautoclaim()', 'start', start)
      const args: Arg[] = [key, group, consumer, checkInt('xautoclaim()', 'minIdleMs', minIdleMs, 0), start]
      if (o.count !== undefined) args.push('COUNT', checkInt('xautoclaim()', 'count', o.count, 1))
      if (o.justId) args.push('JUSTID')
      return this.command('XAUTOCLAIM', ...args).then((r) => {
        if (!isArray(r) || r.length < 2) throw unexpected('xautoclaim()', r)
        const nextId = toStr(r[0])
        const deletedIds = r.length > 2 ? (toStrs(r[2], 'xautoclaim()') as string[]) : []
        if (o.justId) return { nextId, ids: toStrs(r[1], 'xautoclaim()') as string[], deletedIds }
        return { nextId, entries: toEntries(r[1], 'xautoclaim()').filter(isLive), deletedIds }
      })
    })
  }

  /** Trims the stream (MAXLEN or MINID); resolves how many entries were removed. */
  xtrim(key: RedisKey, trim: StreamTrim): Promise<number> {
    return checked('xtrim()', () => this.command('XTRIM', key, ...trimArgs('xtrim()', trim)) as Promise<number>)
  }

  /** Deletes entries; resolves how many existed. */
  xdel(key: RedisKey, ...ids: Array<string | string[]>): Promise<number> {
    return this.command('XDEL', key, ...flat(ids)) as Promise<number>
  }

  // ---- keys ---------------------------------------------------------------------------

  /** The type of the value at `key`: `'string'`, `'hash'`, …, or `'none'` when missing. */
  type(key: RedisKey): Promise<KeyType> {
    return this.command('TYPE', key).then(toStr)
  }

  /** Renames `key` (overwriting `newKey`); rejects (ERR_REPLY) when `key` does not exist. */
  rename(key: RedisKey, newKey: RedisKey): Promise<void> {
    return this.command('RENAME', key, newKey).then(toVoid)
  }

  /** Removes the TTL; resolves whether there was one. */
  persist(key: RedisKey): Promise<boolean> {
    return this.command('PERSIST', key).then(toBool)
  }

  /**
   * Expires the key at a moment: a Unix time in seconds, or a Date (to the
   * millisecond, by PEXPIREAT). Resolves false when the key does not exist or
   * `condition` (Redis 7) prevented it.
   */
  expireAt(key: RedisKey, when: number | Date, condition?: ExpireCondition): Promise<boolean> {
    return checked('expireAt()', () => {
      const args: Arg[] = [key]
      let name = 'EXPIREAT'
      if (isDate(when)) {
        const ms = when.getTime()
        if (!Number.isFinite(ms)) throw invalidArgument('expireAt(): the Date is invalid')
        name = 'PEXPIREAT'
        args.push(ms)
      } else {
        args.push(checkInt('expireAt()', 'when', when, Number.MIN_SAFE_INTEGER))
      }
      if (condition !== undefined) {
        if (!EXPIRE_CONDITIONS.has(condition)) throw invalidArgument(`expireAt(): condition must be 'NX', 'XX', 'GT' or 'LT', got ${show(condition)}`)
        args.push(condition)
      }
      return this.command(name, ...args).then(toBool)
    })
  }

  /** Copies the value (and TTL) of `source` to `destination`; resolves false when `destination` exists and `replace` is not set. */
  copy(source: RedisKey, destination: RedisKey, options?: CopyOptions): Promise<boolean> {
    return checked('copy()', () => {
      const o = checkOptions('copy()', options, COPY_OPTIONS) as CopyOptions
      const args: Arg[] = [source, destination]
      if (o.db !== undefined) args.push('DB', checkInt('copy()', 'db', o.db, 0))
      if (o.replace) args.push('REPLACE')
      return this.command('COPY', ...args).then(toBool)
    })
  }

  /** Deletes keys, reclaiming their memory in the background; resolves how many existed. */
  unlink(...keys: Array<RedisKey | RedisKey[]>): Promise<number> {
    return this.command('UNLINK', ...flat(keys)) as Promise<number>
  }

  /** Updates the keys' last access time; resolves how many exist. */
  touch(...keys: Array<RedisKey | RedisKey[]>): Promise<number> {
    return this.command('TOUCH', ...flat(keys)) as Promise<number>
  }
}

const COUNT_OPTION = new Set(['count'])

// ---- argument helpers ---------------------------------------------------------------------

/** Runs `run`, turning what its argument checks throw into a rejection with ERR_INVALID_ARGUMENT. */
function checked<T>(where: string, run: () => Promise<T>): Promise<T> {
  try {
    return run()
  } catch (e) {
    return Promise.reject(argumentError(e, where))
  }
}

/** `f(a, b)` and `f([a, b])` alike. */
function flat<T>(items: Array<T | T[]>): T[] {
  if (items.length === 1 && isArray(items[0])) return items[0] as T[]
  return items as T[]
}

function checkInt(where: string, name: string, v: unknown, min: number): number {
  if (!isInt(v, min)) {
    throw invalidArgument(`${where}: ${name} must be an integer${min === 0 ? ' ≥ 0' : min === 1 ? ' ≥ 1' : ''}, got ${show(v)}`)
  }
  return v
}

/** A score or score bound: ±Infinity as Redis spells it; strings (`'(5'`, `'-inf'`) only for bounds. */
function scoreArg(where: string, name: string, v: unknown, bound: boolean): Arg {
  if (typeof v === 'number' && !Number.isNaN(v)) return v === Infinity ? '+inf' : v === -Infinity ? '-inf' : v
  if (bound && typeof v === 'string' && v.length > 0) return v
  throw invalidArgument(`${where}: ${name} must be a number${bound ? " or a bound such as '(5' or '+inf'" : ''}, got ${show(v)}`)
}

/** A Date of any realm (`instanceof` fails across vm contexts). */
function isDate(v: unknown): v is Date {
  return Object.prototype.toString.call(v) === '[object Date]'
}

function checkId(where: string, name: string, v: unknown): void {
  if (typeof v !== 'string' || v.length === 0) throw invalidArgument(`${where}: ${name} must be a stream ID string, got ${show(v)}`)
}

function checkSide(where: string, name: string, v: unknown): void {
  if (v !== 'LEFT' && v !== 'RIGHT') throw invalidArgument(`${where}: ${name} must be 'LEFT' or 'RIGHT', got ${show(v)}`)
}

/** BLPOP, BRPOP (`[key, element]`), BZPOPMIN, BZPOPMAX (`[key, member, score]`): a module function, not a method, so that multi() does not take it for a command. */
function blockingPop<T extends ListPop | ZSetPop>(
  client: TypedCommands,
  name: string,
  where: string,
  keys: RedisKey | RedisKey[],
  timeoutSeconds: number,
): Promise<T | null> {
  return checked(where, () => {
    const list = isArray(keys) ? keys : [keys]
    if (list.length === 0) throw invalidArgument(`${where}: keys must hold at least one key`)
    const asked = list.map(toStr)
    return client.command(name, ...list, checkTimeout(where, timeoutSeconds)).then((r) => {
      if (r === null) return null
      if (!isArray(r) || r.length !== (name.startsWith('BZ') ? 3 : 2)) throw unexpected(where, r)
      const out: Array<string | number> = [askedName(toStr(r[0]), asked), toStr(r[1])]
      if (r.length === 3) out.push(toScore(r[2]))
      return out as T
    })
  })
}

/** A blocking command's timeout in seconds: a finite number ≥ 0 (0: forever). */
function checkTimeout(where: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw invalidArgument(`${where}: timeoutSeconds must be a number ≥ 0 (0: wait forever), got ${show(v)}`)
  }
  return v
}

/** `[k, v, k, v, …]` from a plain object, a Map or `[k, v]` pairs; refuses anything else and an empty set. */
function flatPairs(where: string, entries: unknown): Arg[] {
  const out: Arg[] = []
  if (entries instanceof Map || isArray(entries)) {
    for (const kv of entries as Iterable<unknown>) {
      if (!isArray(kv) || kv.length !== 2) throw invalidArgument(`${where}: each entry must be a [key, value] pair, got ${show(kv)}`)
      out.push(kv[0] as Arg, kv[1] as Arg)
    }
  } else if (isPlainObject(entries)) {
    for (const k of Object.keys(entries)) out.push(k, entries[k] as Arg)
  } else {
    throw invalidArgument(`${where}: expected a plain object, a Map or [key, value] pairs, got ${show(entries)}`)
  }
  if (out.length === 0) throw invalidArgument(`${where}: nothing to set`)
  return out
}

function scanArgs(where: string, options: MemberScanOptions | undefined): Arg[] {
  const o = checkOptions(where, options, SCAN_OPTIONS) as MemberScanOptions
  const args: Arg[] = []
  if (o.match !== undefined) {
    if (typeof o.match !== 'string') throw invalidArgument(`${where}: match must be a string, got ${show(o.match)}`)
    args.push('MATCH', o.match)
  }
  if (o.count !== undefined) args.push('COUNT', checkInt(where, 'count', o.count, 1))
  return args
}

function trimArgs(where: string, trim: unknown): Arg[] {
  const t = checkOptions(`${where} trim`, trim, TRIM_OPTIONS) as StreamTrim
  if (trim === undefined || (t.maxLen === undefined) === (t.minId === undefined)) {
    throw invalidArgument(`${where}: trim takes exactly one of maxLen and minId`)
  }
  const args: Arg[] = []
  if (t.maxLen !== undefined) args.push('MAXLEN', t.approximate ? '~' : '=', checkInt(where, 'trim.maxLen', t.maxLen, 0))
  else {
    checkId(where, 'trim.minId', t.minId)
    args.push('MINID', t.approximate ? '~' : '=', t.minId as string)
  }
  if (t.limit !== undefined) {
    if (!t.approximate) throw invalidArgument(`${where}: trim.limit needs approximate: true`)
    args.push('LIMIT', checkInt(where, 'trim.limit', t.limit, 0))
  }
  return args
}

function streamList(where: string, streams: unknown): StreamFrom[] {
  const list = isArray(streams) ? streams : [streams]
  if (list.length === 0) throw invalidArgument(`${where}: no streams given`)
  for (const s of list) {
    if (!isPlainObject(s)) throw invalidArgument(`${where}: each stream must be { key, id }, got ${show(s)}`)
    checkId(where, 'id', s.id)
  }
  return list as StreamFrom[]
}

function readOptions(where: string, o: XReadOptions, args: Arg[]): void {
  if (o.count !== undefined) args.push('COUNT', checkInt(where, 'count', o.count, 1))
  if (o.block !== undefined) args.push('BLOCK', checkInt(where, 'block', o.block, 0))
}

// ---- reply shaping -------------------------------------------------------------------------

function unexpected(where: string, reply: unknown): RedisError {
  return new RedisError(ErrorCode.Reply, `${where}: unexpected reply ${showReply(reply)}`)
}

/** Text of a reply; bytes that are not UTF-8 come back from command() as a Buffer and are decoded as get() does. */
function toStr(v: unknown): string {
  return typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : String(v)
}

function toStrOrNull(v: unknown): string | null {
  return v === null ? null : toStr(v)
}

/** An array of texts (null kept where the server answered nil), converted in place. */
function toStrs(v: unknown, where: string): Array<string | null> {
  if (!isArray(v)) throw unexpected(where, v)
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string' && v[i] !== null) v[i] = toStr(v[i])
  return v as Array<string | null>
}

function toBool(v: unknown): boolean {
  return v === 1 || v === true
}

function toVoid(): void {}

/** A score: RESP3 answers a number, RESP2 text (`'inf'` for infinity). */
function toScore(v: unknown): number {
  if (typeof v === 'number') return v
  const s = toStr(v)
  const n = Number(s)
  if (!Number.isNaN(n)) return n
  if (s === 'inf' || s === '+inf') return Infinity
  if (s === '-inf') return -Infinity
  return n
}

function toScoreOrNull(v: unknown): number | null {
  return v === null ? null : toScore(v)
}

/** `[member, score]` pairs from a flat RESP2 `[m, s, m, s]` or RESP3's `[[m, s], …]` (or one bare `[m, s]`). */
function toPairs(v: unknown, where: string): ZMemberScore[] {
  if (v === null) return []
  if (!isArray(v)) throw unexpected(where, v)
  const out: ZMemberScore[] = []
  if (v.length > 0 && isArray(v[0])) {
    for (const p of v as unknown[][]) out.push([toStr(p[0]), toScore(p[1])])
  } else {
    for (let i = 0; i + 1 < v.length; i += 2) out.push([toStr(v[i]), toScore(v[i + 1])])
  }
  return out
}

/** `[cursor, items]` of a HSCAN/SSCAN/ZSCAN reply. */
function scanReply(v: unknown, where: string): [string, unknown[]] {
  if (!isArray(v) || v.length !== 2 || !isArray(v[1])) throw unexpected(where, v)
  return [toStr(v[0]), v[1]]
}

/**
 * A plain object from `[k, v, k, v]`. A field named `__proto__` is defined as
 * an own property: plain assignment would set the object's prototype instead
 * (or be ignored), losing the field.
 */
function toRecord(flatKv: unknown[]): Record<string, string> {
  const rec: Record<string, string> = {}
  for (let i = 0; i + 1 < flatKv.length; i += 2) {
    const k = toStr(flatKv[i])
    const value = toStr(flatKv[i + 1])
    if (k === '__proto__') Object.defineProperty(rec, k, { value, enumerable: true, writable: true, configurable: true })
    else rec[k] = value
  }
  return rec
}

/** Stream entries `[[id, [k, v, …]], …]`; an entry whose fields are nil (deleted) gets `fields: null`. */
function toEntries(v: unknown, where: string): Array<StreamEntry | DeletedStreamEntry> {
  if (v === null) return []
  if (!isArray(v)) throw unexpected(where, v)
  const out: Array<StreamEntry | DeletedStreamEntry> = new Array(v.length)
  for (let i = 0; i < v.length; i++) {
    const e = v[i]
    if (!isArray(e) || e.length < 2) throw unexpected(where, v)
    const fields = e[1]
    if (fields === null) out[i] = { id: toStr(e[0]), fields: null }
    else if (isArray(fields)) out[i] = { id: toStr(e[0]), fields: toRecord(fields) }
    else throw unexpected(where, v)
  }
  return out
}

function isLive(e: StreamEntry | DeletedStreamEntry): e is StreamEntry {
  return e.fields !== null
}

/**
 * XREAD / XREADGROUP replies — RESP2 `[[name, entries], …]`, RESP3 a map
 * (an object here) — as `[{ name, messages }]`, null when nothing came.
 */
function toStreams(v: unknown, where: string, asked: StreamFrom[]): Array<StreamMessages<StreamEntry | DeletedStreamEntry>> | null {
  if (v === null) return null
  const pairs: Array<[unknown, unknown]> = []
  if (isArray(v)) {
    for (const s of v) {
      if (!isArray(s) || s.length !== 2) throw unexpected(where, v)
      pairs.push([s[0], s[1]])
    }
  } else if (typeof v === 'object') {
    for (const k of Object.keys(v)) pairs.push([k, (v as Record<string, unknown>)[k]])
  } else {
    throw unexpected(where, v)
  }
  if (pairs.length === 0) return null
  const names = asked.map((s) => toStr(s.key))
  return pairs.map(([name, entries]) => ({ name: askedName(toStr(name), names), messages: toEntries(entries, where) }))
}

/**
 * The stream's key as the caller gave it. The server names it with the
 * client's keyPrefix, if any, which this layer does not know: the longest
 * requested key the name ends with.
 */
function askedName(name: string, asked: string[]): string {
  let best: string | undefined
  for (const k of asked) {
    if (k === name) return k
    if (name.endsWith(k) && (best === undefined || k.length > best.length)) best = k
  }
  return best ?? name
}

function toPendingSummary(v: unknown): XPendingSummary {
  if (!isArray(v) || v.length < 4) throw unexpected('xpending()', v)
  const consumers: XPendingSummary['consumers'] = []
  if (isArray(v[3])) {
    for (const c of v[3]) {
      if (!isArray(c) || c.length < 2) throw unexpected('xpending()', v)
      consumers.push({ name: toStr(c[0]), pending: Number(c[1]) })
    }
  }
  return { pending: Number(v[0]), firstId: toStrOrNull(v[1]), lastId: toStrOrNull(v[2]), consumers }
}

function toPendingEntries(v: unknown): XPendingEntry[] {
  if (!isArray(v)) throw unexpected('xpending()', v)
  return v.map((e) => {
    if (!isArray(e) || e.length < 4) throw unexpected('xpending()', v)
    return { id: toStr(e[0]), consumer: toStr(e[1]), idleMs: Number(e[2]), deliveries: Number(e[3]) }
  })
}
