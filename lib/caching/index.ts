// Caching: `client.cache` (installed on RedisClient by ./cache) and the Keyv store.
export type { RedisCache, WrapOptions } from './cache'
export { KeyvRedisStore } from './keyv'
export type { KeyvRedisStoreOptions, KeyvRedisStoreOpts } from './keyv'
