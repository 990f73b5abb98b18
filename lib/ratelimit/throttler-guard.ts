// RedisThrottlerGuard: @nestjs/throttler 6's ThrottlerGuard, with every named
// throttler of a request counted in one script call. Loaded on first use of
// `RedisThrottlerGuard` from `@atlas-erp/redis/throttler` (see throttler.ts),
// so that importing the storage alone never loads Nest.
import { Injectable, type ExecutionContext } from '@nestjs/common'
import { ThrottlerGuard, type ThrottlerOptions } from '@nestjs/throttler'
import type { ThrottlerGenerateKeyFunction, ThrottlerGetTrackerFunction } from '@nestjs/throttler'
import { RedisThrottlerStorage, type RedisThrottlerStorageRecord, type ThrottlerIncrement } from './throttler'

// The metadata keys of @Throttle, @SkipThrottle and their kin, as
// @nestjs/throttler 6 names them (dist/throttler.constants.js, not exported).
const THROTTLER_LIMIT = 'THROTTLER:LIMIT'
const THROTTLER_TTL = 'THROTTLER:TTL'
const THROTTLER_TRACKER = 'THROTTLER:TRACKER'
const THROTTLER_BLOCK_DURATION = 'THROTTLER:BLOCK_DURATION'
const THROTTLER_KEY_GENERATOR = 'THROTTLER:KEY_GENERATOR'
const THROTTLER_SKIP = 'THROTTLER:SKIP'

/** The stock guard's count of one throttler: a subclass that overrides it gets the stock guard's loop. */
const STOCK_HANDLE_REQUEST = (ThrottlerGuard.prototype as unknown as { handleRequest: unknown }).handleRequest

/** One throttler of a request, resolved as the stock guard resolves it before its increment. */
interface Planned extends ThrottlerIncrement {
  throttler: ThrottlerOptions
  tracker: string
}

/**
 * A drop-in for @nestjs/throttler 6's `ThrottlerGuard` that evaluates every
 * named throttler of a request in ONE script call (one round trip, shared
 * with the other requests of the same tick), where the stock guard awaits the
 * storage once per throttler, one after another. It answers exactly as the
 * stock guard with {@link RedisThrottlerStorage}: the same counts, headers,
 * 429 and error message, and a throttler after one that blocks is not
 * counted. Same module options (`storage: new RedisThrottlerStorage(redis)`),
 * `@Throttle`, `@SkipThrottle`, `getTracker`, `generateKey`, `skipIf`,
 * `ignoreUserAgents`, `setHeaders`, `errorMessage`; subclasses may override
 * `getTracker`, `generateKey`, `shouldSkip`, `throwThrottlingException`,
 * `getErrorMessage` and `setResponseHeader` as with the stock guard.
 *
 * With another storage, or in a subclass that overrides `handleRequest`
 * (which counts one throttler), it runs the stock guard's code unchanged.
 * On a Redis Cluster (`batchAcrossSlots: false`, or after the first CROSSSLOT),
 * a request's throttlers are counted one after another, as the stock guard does.
 *
 * ```ts
 * ThrottlerModule.forRootAsync({
 *   inject: [RedisService],
 *   useFactory: (redis: RedisService) => ({
 *     throttlers: [{ name: 'short', ttl: 1_000, limit: 20 }, { name: 'long', ttl: 60_000, limit: 300 }],
 *     storage: new RedisThrottlerStorage(redis),
 *   }),
 * }),
 * // providers:
 * { provide: APP_GUARD, useClass: RedisThrottlerGuard }
 * ```
 */
@Injectable()
export class RedisThrottlerGuard extends ThrottlerGuard {
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const storage = this.storageService
    if (!(storage instanceof RedisThrottlerStorage) || this.handleRequest !== STOCK_HANDLE_REQUEST) {
      return super.canActivate(context)
    }
    if (await this.shouldSkip(context)) return true
    const planned: Planned[] = []
    let failure: { error: unknown } | undefined
    try {
      await this.plan(context, planned)
    } catch (error) {
      // The stock guard throws here after counting the throttlers before this one: count them, then throw.
      failure = { error }
    }
    let from = 0
    while (from < planned.length) {
      const records = await storage.incrementAll(planned.slice(from))
      let next = planned.length
      for (let i = from; i < planned.length; i++) {
        const record = records[i - from]
        if (record === undefined) {
          // not counted: one before it was blocked, and throwThrottlingException did not throw
          next = i
          break
        }
        await this.answer(context, planned[i], record)
      }
      if (next === from) break
      from = next
    }
    if (failure !== undefined) throw failure.error
    return true
  }

  /**
   * The throttlers that apply to this request, in the stock guard's order,
   * with its limits, ttls, block durations, trackers and keys.
   */
  private async plan(context: ExecutionContext, planned: Planned[]): Promise<void> {
    const handler = context.getHandler()
    const classRef = context.getClass()
    const targets = [handler, classRef]
    for (const throttler of this.throttlers) {
      const name = throttler.name as string
      const skip = this.reflector.getAllAndOverride<boolean>(THROTTLER_SKIP + name, targets)
      const skipIf = throttler.skipIf || this.commonOptions.skipIf
      if (skip || skipIf?.(context)) continue
      const limit = this.reflector.getAllAndOverride(THROTTLER_LIMIT + name, targets)
      const ttl = this.reflector.getAllAndOverride(THROTTLER_TTL + name, targets)
      const block = this.reflector.getAllAndOverride(THROTTLER_BLOCK_DURATION + name, targets)
      const routeTracker = this.reflector.getAllAndOverride<ThrottlerGetTrackerFunction>(THROTTLER_TRACKER + name, targets)
      const routeKey = this.reflector.getAllAndOverride<ThrottlerGenerateKeyFunction>(THROTTLER_KEY_GENERATOR + name, targets)
      const limitN = toNumber(await resolve(context, limit ?? throttler.limit), 'limit', name)
      const ttlN = toNumber(await resolve(context, ttl ?? throttler.ttl), 'ttl', name)
      const blockN = toNumber(await resolve(context, block ?? throttler.blockDuration ?? ttlN), 'blockDuration', name)
      const getTracker = (routeTracker || throttler.getTracker || this.commonOptions.getTracker) as ThrottlerGetTrackerFunction
      const generateKey = (routeKey || throttler.generateKey || this.commonOptions.generateKey) as ThrottlerGenerateKeyFunction
      // handleRequest, up to its increment
      const { req } = this.getRequestResponse(context)
      const ignoreUserAgents = throttler.ignoreUserAgents ?? this.commonOptions.ignoreUserAgents
      if (Array.isArray(ignoreUserAgents) && ignoreUserAgents.some((pattern) => pattern.test(req.headers['user-agent']))) continue
      const tracker = await getTracker(req, context)
      const key = generateKey(context, tracker, name)
      planned.push({ key, ttl: ttlN, limit: limitN, blockDuration: blockN, name, throttler, tracker })
    }
  }

  /** handleRequest, from its increment's record on: the headers, and the 429 when blocked. */
  private async answer(context: ExecutionContext, p: Planned, record: RedisThrottlerStorageRecord): Promise<void> {
    const { res } = this.getRequestResponse(context)
    const { totalHits, timeToExpire, isBlocked, timeToBlockExpire } = record
    const suffix = p.name === 'default' ? '' : `-${p.name}`
    const setHeaders = p.throttler.setHeaders ?? this.commonOptions.setHeaders ?? true
    if (isBlocked) {
      if (setHeaders) this.setResponseHeader(res, `Retry-After${suffix}`, timeToBlockExpire)
      await this.throwThrottlingException(context, {
        limit: p.limit,
        ttl: p.ttl,
        key: p.key,
        tracker: p.tracker,
        totalHits,
        timeToExpire,
        isBlocked,
        timeToBlockExpire,
      })
    }
    if (setHeaders) {
      this.setResponseHeader(res, `${this.headerPrefix}-Limit${suffix}`, p.limit)
      this.setResponseHeader(res, `${this.headerPrefix}-Remaining${suffix}`, Math.max(0, p.limit - totalHits))
      this.setResponseHeader(res, `${this.headerPrefix}-Reset${suffix}`, timeToExpire)
    }
  }
}

/** The stock guard's resolveValue: a value, or a function of the context. */
async function resolve<T>(context: ExecutionContext, value: T | ((context: ExecutionContext) => T | Promise<T>)): Promise<T> {
  return typeof value === 'function' ? (value as (context: ExecutionContext) => T | Promise<T>)(context) : value
}

/** The stock guard's toNumber: numeric strings allowed, with its error for anything else. */
function toNumber(value: unknown, option: string, throttlerName: string): number {
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
  if (typeof number !== 'number' || Number.isNaN(number)) {
    throw new Error(`Invalid "${option}" for the "${throttlerName}" throttler: expected a number, got ${JSON.stringify(value)}.`)
  }
  return number
}
