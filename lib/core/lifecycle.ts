// Helpers of the client's life cycle: the settings a duplicate() starts from,
// and the pause between create()'s connect attempts.
import type { ConnectOptions } from './types'

const TRUE = new Set(['1', 'true', 'yes', 'on'])

/**
 * The settings of `duplicate(overrides)`: the original ones (a URL, an options
 * object, or — given nothing — the REDIS_* environment) with `overrides` on top.
 * @internal
 */
export function duplicateOptions(
  original: string | ConnectOptions | undefined,
  overrides: Partial<ConnectOptions> | undefined,
): string | ConnectOptions | undefined {
  if (overrides === undefined) return typeof original === 'object' ? { ...original } : original
  if (original === undefined) return { ...optionsFromEnv(process.env), ...overrides }
  if (typeof original === 'string') return { url: original, ...overrides }
  return { ...original, ...overrides }
}

/** The REDIS_* environment as ConnectOptions (as `RedisClient.connect()` reads it). @internal */
export function optionsFromEnv(env: NodeJS.ProcessEnv): ConnectOptions {
  const get = (k: string) => {
    const v = env[k]
    return v !== undefined && v.trim() !== '' ? v.trim() : undefined
  }
  const o: ConnectOptions = {}
  const url = get('REDIS_URL')
  if (url !== undefined) o.url = url
  else {
    const host = get('REDIS_HOST')
    if (host !== undefined) o.host = host
    const port = get('REDIS_PORT')
    if (port !== undefined) o.port = Number(port)
    const user = get('REDIS_USERNAME')
    if (user !== undefined) o.username = user
    if (env.REDIS_PASSWORD) o.password = env.REDIS_PASSWORD
    const db = get('REDIS_DB')
    if (db !== undefined) o.db = Number(db)
    const tls = get('REDIS_TLS')
    if (tls !== undefined && TRUE.has(tls.toLowerCase())) o.tls = true
  }
  if (env.REDIS_KEY_PREFIX) o.keyPrefix = env.REDIS_KEY_PREFIX
  const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean)
  const sentinels = get('REDIS_SENTINELS')
  if (sentinels !== undefined) {
    o.sentinel = { masterName: get('REDIS_SENTINEL_MASTER') ?? '', sentinels: list(sentinels) }
    const su = get('REDIS_SENTINEL_USERNAME')
    if (su !== undefined) o.sentinel.username = su
    if (env.REDIS_SENTINEL_PASSWORD) o.sentinel.password = env.REDIS_SENTINEL_PASSWORD
  }
  const nodes = get('REDIS_CLUSTER_NODES')
  if (nodes !== undefined) o.cluster = { nodes: list(nodes) }
  return o
}

/**
 * The pause before connect attempt `n + 1` of create(): exponential from
 * `min`, capped at `max`, half of it random so that many instances do not
 * retry in step (as the native reconnects do).
 * @internal
 */
export function reconnectDelay(n: number, min: number, max: number): number {
  const exp = Math.min(max, min * 2 ** Math.min(n, 20))
  return exp / 2 + (Math.random() * exp) / 2
}
