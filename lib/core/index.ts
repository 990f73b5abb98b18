// The core: the client, its errors and its types. It imports no feature; the
// features (../ratelimit, ../caching, ../sessions) install themselves on
// RedisClient when loaded (see ../features.ts).
export { RedisClient, ENV_VARS } from './client'
export { RedisError, ErrorCode } from './errors'
export { Pipeline } from './transaction'
export type { CommandQueue, QueueableCommand } from './transaction'
export { Script } from './script'
export type { BufferMode, MessageListener, PatternListener, RedisChannel, SubscribeOptions } from './pubsub'
export type { ScriptOptions } from './script'
export type * from './types'
export type * from './command-types'
export type { CommandTraceContext, ConnectTraceContext, RedisEndpoint } from './diagnostics'
