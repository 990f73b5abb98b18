/** A key: a non-empty string (UTF-8) or Buffer (binary-safe). */
export type RedisKey = string | Buffer
/** A value: a string (UTF-8) or Buffer (binary-safe). */
export type RedisValue = string | Buffer

export interface TlsOptions {
  /** PEM CA certificate(s) to trust instead of the bundled Mozilla roots. */
  ca?: string | Buffer
  /** PEM client certificate and key, for servers that ask for one. */
  cert?: string | Buffer
  key?: string | Buffer
  /** Name to verify the server certificate against (default: the host). */
  servername?: string
  /** Verify the server certificate (default true). false is for development only. */
  rejectUnauthorized?: boolean
}

export interface ConnectOptions {
  /**
   * `redis://[[user]:password@]host[:port][/db]` or `rediss://…`; the fields below override its parts.
   * `memory://[name][/db]`: the embedded in-process store of that name (for tests and demos; see docs/memory.md).
   */
  url?: string
  /** Default `127.0.0.1`. */
  host?: string
  /** Default 6379. */
  port?: number
  /** ACL user (Redis 6+); default: the default user. */
  username?: string
  password?: string
  /** Database index; default 0. */
  db?: number
  /** `true` for TLS with default verification, or TLS settings. */
  tls?: boolean | TlsOptions
  /** Prepended to every key this client sends (and removed from keys `scan` yields). */
  keyPrefix?: string
  /** TCP + TLS + handshake deadline, and how long a call waits for a reconnect; default 5000. */
  connectTimeoutMs?: number
  /** A call rejects with ERR_TIMEOUT when no reply came within this; default 5000. */
  commandTimeoutMs?: number
  /** Backoff between reconnect attempts: exponential from minDelayMs (50) to maxDelayMs (2000), jittered. */
  reconnect?: { minDelayMs?: number; maxDelayMs?: number }
  /**
   * Server-assisted client-side caching: `get()` of keys under these prefixes
   * is served from process memory after the first read, and the server tells
   * this client when any of them changes (RESP3 client tracking).
   */
  clientCache?: ClientCacheOptions
  /**
   * Sentinel mode: the master's address comes from these sentinels (asked in
   * turn before every connect and reconnect) instead of `host`/`port`, and the
   * client follows failovers. `password`/`username`/`db`/`tls` (or a `url`'s)
   * still apply to the master; TLS settings also apply to the sentinels.
   */
  sentinel?: SentinelOptions
  /**
   * Redis Cluster: the seed nodes (`'host:port'`; one reachable node is enough,
   * the others are found with CLUSTER SLOTS). Every node connection uses the
   * settings above (username, password, tls, keyPrefix, timeouts). With no
   * `nodes`, the seed is `url` / `host`:`port`. From the environment:
   * `REDIS_CLUSTER_NODES=host:port,host:port`.
   */
  cluster?: ClusterOptions
  /**
   * The connection's name on the server (`CLIENT SETNAME`, shown by `CLIENT LIST`),
   * set again after every reconnect. Printable ASCII without spaces.
   */
  connectionName?: string
  /**
   * Blocking commands (blpop, bzpopmin, xread with `block`…, also sent through
   * `command()`) each wait on a dedicated connection of this client, opened on
   * demand: at most `maxConnections` at once (default 64; one more rejects at
   * once with ERR_CONNECTION, nothing sent), each closed after `idleMs` unused
   * (default 30000). See docs/commands.md, "Blocking commands".
   */
  blocking?: { maxConnections?: number; idleMs?: number }
}

/** `client.status`: 'connecting' (not ready yet), 'ready', 'reconnecting' (connection lost), 'end' (closed). */
export type ClientStatus = 'connecting' | 'ready' | 'reconnecting' | 'end'


export interface SentinelOptions {
  /** The name the sentinels monitor the master under (`sentinel monitor <name> ...`). */
  masterName: string
  /** Sentinel addresses, `'host:port'` (IPv6: `'[::1]:26379'`); at least one. */
  sentinels: string[]
  /** The sentinels' own password (`requirepass` in sentinel.conf), if they have one. */
  password?: string
  /** The sentinels' ACL user, with `password`. */
  username?: string
}

export interface ClusterOptions {
  /** Seed nodes, `'host:port'` (an IPv6 host in brackets: `'[::1]:7000'`). */
  nodes?: string[]
  /** Redirections (MOVED/ASK) and retries (TRYAGAIN, CLUSTERDOWN) one call may take; default 16. */
  maxRedirections?: number
}

export interface ClientCacheOptions {
  /** Key prefixes to cache (relative to `keyPrefix`), e.g. `['coa:', 'perm:']`. */
  prefixes: string[]
  /** Entries kept at most, least recently used out first; default 10,000. */
  maxEntries?: number
  /** Longest an entry is served without asking the server again; default 60,000 ms. */
  ttlMs?: number
}

export interface SetOptions {
  /** Expire after this many seconds (EX). */
  ttlSeconds?: number
  /** Expire after this many milliseconds (PX). */
  ttlMs?: number
  /** Only set if the key does not exist (NX). */
  nx?: boolean
  /** Only set if the key exists (XX). */
  xx?: boolean
  /** Keep the key's current TTL (KEEPTTL). */
  keepTtl?: boolean
}

export interface GetExOptions {
  ttlSeconds?: number
  ttlMs?: number
  /** Remove the TTL. */
  persist?: boolean
}

export interface ScanOptions {
  /** Glob pattern (relative to the keyPrefix); default all keys. */
  match?: string
  /** Hint for keys per round trip (COUNT); Redis' default is 10. */
  count?: number
  /** Only keys of this type (`string`, `hash`, …). */
  type?: string
}

export interface ClientStats {
  /** Commands sent to the server. */
  commands: number
  /** Native crossings that carried them (commands / batches = average batch). */
  batches: number
  /** Replies received. */
  replies: number
  /** Rejections: error replies, timeouts, lost connections. */
  errors: number
  timeouts: number
  reconnects: number
  /** Calls waiting for their reply now. */
  inFlight: number
  /** Round-trip latency of replies since connect (±12.5 %). */
  latency: { p50Ms: number; p99Ms: number; maxMs: number }
  /** rateLimit/rateLimitAll calls answered from the in-process memory of denied keys (no round trip). */
  rateLimitCacheHits: number
  /** With `clientCache`: reads served from memory, reads that went to the server, invalidations received, entries held. */
  clientCache?: { hits: number; misses: number; invalidations: number; entries: number }
  /**
   * In cluster mode: masters connected, redirections followed (MOVED, ASK), calls
   * sent again after TRYAGAIN/CLUSTERDOWN or to a node that was not connected,
   * and slot map reloads.
   */
  cluster?: { masters: number; moved: number; ask: number; retries: number; refreshes: number }
}
