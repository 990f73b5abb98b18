export { RedisClient, ENV_VARS } from './client'
export { RedisError, ErrorCode } from './errors'
export type * from './types'
export { rateLimitHeaders } from './ratelimit'
export type { RateLimitAlgorithm, RateLimitReason, RateLimitResult, RateLimitRule, UnavailablePolicy } from './ratelimit'
export type { RedisCache, WrapOptions } from './cache'
export type { KeyvRedisStoreOptions } from './keyv'
export { Sessions } from './sessions'
export type { Session, CreatedSession, CheckOptions, SessionsOptions } from './sessions'
export type {
  BetterAuthSessionRecord,
  BetterAuthUser,
  RedisSecondaryStorage,
  RedisSecondaryStorageOptions,
  SessionVerifier,
  SessionVerifierOptions,
  VerifiedSession,
} from './better-auth'
