// `@atlas-erp/redis/bullmq`: BullMQ 6's IRedisClient on the native client. Needs
// `bullmq` (an optional peer dependency) for its types only; nothing of it is loaded.
import '../features' // a package entry: the RedisClient it loads has every feature
export { BullMQRedisClient } from './client'
export { BullMQTransaction } from './transaction'
export type { BullMQRedisOptions, IORedisArg, IORedisStyleCommands } from './client'
export { ConnectionClosedError, CONNECTION_CLOSED_MESSAGE } from './shapes'
