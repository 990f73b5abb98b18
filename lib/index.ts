export { RedisClient, ENV_VARS } from './core/client'
export { RedisError, ErrorCode } from './core/errors'
export type * from './core/types'
export { rateLimitHeaders } from './ratelimit/ratelimit'
export type { RateLimitAlgorithm, RateLimitReason, RateLimitResult, RateLimitRule, UnavailablePolicy } from './ratelimit/ratelimit'
export type { RedisCache, WrapOptions } from './caching/cache'
export type { KeyvRedisStoreOptions } from './caching/keyv'
export { Sessions } from './sessions/sessions'
export type { Session, CreatedSession, CheckOptions, SessionsOptions } from './sessions/sessions'
export type {
  BetterAuthSessionRecord,
  BetterAuthUser,
  RedisSecondaryStorage,
  RedisSecondaryStorageOptions,
  SessionVerifier,
  SessionVerifierOptions,
  VerifiedSession,
} from './sessions/better-auth'
