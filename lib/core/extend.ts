import { RedisClient } from './client'

/**
 * Installs a feature's members on `RedisClient.prototype`: methods, and getters
 * kept as getters, non-enumerable like the class's own. The feature declares
 * them on `interface RedisClient` (declaration merging), so `members` must
 * match those declarations, and `this` in them is the client.
 * @internal
 */
export function extendClient<K extends keyof RedisClient>(members: Pick<RedisClient, K> & ThisType<RedisClient>): void {
  for (const [name, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(members))) {
    Object.defineProperty(RedisClient.prototype, name, { ...descriptor, enumerable: false })
  }
}
