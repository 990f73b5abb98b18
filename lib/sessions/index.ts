// Sessions: `client.sessions` (installed on RedisClient by ./sessions) and Better Auth's
// secondary storage and session verifier.
export { Sessions } from './sessions'
export type { Session, CreatedSession, CheckOptions, SessionsOptions } from './sessions'
export { DEFAULT_KEY_PREFIX, redisSecondaryStorage, sessionVerifier } from './better-auth'
export type {
  BetterAuthSessionRecord,
  BetterAuthUser,
  RedisSecondaryStorage,
  RedisSecondaryStorageOptions,
  SessionVerifier,
  SessionVerifierOptions,
  VerifiedSession,
} from './better-auth'
