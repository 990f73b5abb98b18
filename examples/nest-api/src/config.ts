// Settings from the environment, read once per app instance. Redis: the same
// variables apps/api/.env has (REDIS_HOST / REDIS_PORT / REDIS_PASSWORD, or
// REDIS_URL), which RedisModule.forRoot() and BullMQRedisClient read themselves.

export interface AppOptions {
  /** Shown in the X-Instance response header, and in processed e-mail jobs. */
  instanceId: string
  /** Better Auth's secret (BETTER_AUTH_SECRET): signs the session cookie. */
  authSecret: string
  /** The public URL of the API (BETTER_AUTH_URL): one URL for every instance behind the load balancer. */
  authBaseUrl: string
  /** Rate limits (the guard applies both to every route unless a route says otherwise). */
  throttle: {
    short: { ttl: number; limit: number }
    long: { ttl: number; limit: number }
  }
  /** Seconds the chart of accounts and the permission matrix stay cached. */
  cacheTtlSeconds: number
}

const DEV_SECRET = 'dev-only-secret-change-me-0123456789abcdef'

function int(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`)
  return n
}

export function appOptionsFromEnv(overrides: Partial<AppOptions> = {}): AppOptions {
  const secret = process.env.BETTER_AUTH_SECRET
  if (!secret && process.env.NODE_ENV === 'production') throw new Error('BETTER_AUTH_SECRET is required in production')
  return {
    instanceId: process.env.INSTANCE_ID ?? `pid-${process.pid}`,
    authSecret: secret || DEV_SECRET,
    authBaseUrl: process.env.BETTER_AUTH_URL ?? 'http://localhost:3000',
    throttle: {
      short: { ttl: int('THROTTLE_SHORT_TTL_MS', 1_000), limit: int('THROTTLE_SHORT_LIMIT', 20) },
      long: { ttl: int('THROTTLE_LONG_TTL_MS', 60_000), limit: int('THROTTLE_LONG_LIMIT', 300) },
    },
    cacheTtlSeconds: int('CACHE_TTL_SECONDS', 300),
    ...overrides,
  }
}
