// The features that add members to RedisClient: each installs them on
// RedisClient.prototype when loaded (`client.rateLimit`, `client.cache`,
// `client.sessions`). Every package entry imports this file, so a client has
// all of them whichever entry it came from; lib/core imports none of them.
import './ratelimit/ratelimit'
import './caching/cache'
import './sessions/sessions'
