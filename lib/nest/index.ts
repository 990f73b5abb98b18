// `@atlas-erp/redis/nest`: RedisModule, RedisService, InjectRedis, RedisHealthIndicator.
import '../features' // a package entry: its RedisClient has every feature
export * from './nest'
