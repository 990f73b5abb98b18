// `@atlas-erp/redis`: the client with every feature installed, and the features' names.
import './features'
export * from './core'
export { rateLimitHeaders } from './ratelimit'
export type { RateLimitAlgorithm, RateLimitReason, RateLimitResult, RateLimitRule, UnavailablePolicy } from './ratelimit'
export type { RedisCache, WrapOptions, KeyvRedisStoreOptions } from './caching'
export { Sessions } from './sessions'
export type {
  Session,
  CreatedSession,
  CheckOptions,
  SessionsOptions,
  BetterAuthSessionRecord,
  BetterAuthUser,
  RedisSecondaryStorage,
  RedisSecondaryStorageOptions,
  SessionVerifier,
  SessionVerifierOptions,
  VerifiedSession,
} from './sessions'
