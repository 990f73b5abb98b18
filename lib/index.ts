export { RedisClient, ENV_VARS } from './client'
export { RedisError, ErrorCode } from './errors'
export type * from './types'
