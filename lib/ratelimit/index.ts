// Rate limiting: `client.rateLimit` / `rateLimitAll` (installed on RedisClient by
// ./ratelimit), the IETF RateLimit headers, and the @nestjs/throttler storage.
export { rateLimitHeaders } from './ratelimit'
export type { RateLimitAlgorithm, RateLimitReason, RateLimitResult, RateLimitRule, UnavailablePolicy } from './ratelimit'
export { RedisThrottlerStorage } from './throttler'
export type { RedisThrottlerStorageOptions, RedisThrottlerStorageRecord, ThrottlerStorageRecord } from './throttler'
