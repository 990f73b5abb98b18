/** Throwaway TLS material (PEM strings and file paths), made by makeCerts(). */
export interface Certs {
  readonly dir: string
  /** The CA that signed the server, client and wrong-host certs. */
  readonly caFile: string
  readonly ca: string
  /** Server cert: CN=localhost, SAN DNS:localhost, IP:127.0.0.1. */
  readonly certFile: string
  readonly cert: string
  readonly keyFile: string
  readonly key: string
  /** Client cert signed by `ca` (for tls-auth-clients yes). */
  readonly clientCertFile: string
  readonly clientCert: string
  readonly clientKeyFile: string
  readonly clientKey: string
  /** An unrelated CA that did NOT sign the server cert. */
  readonly otherCaFile: string
  readonly otherCa: string
  /** A client cert signed by `otherCa` (the server must refuse it). */
  readonly otherClientCertFile: string
  readonly otherClientCert: string
  readonly otherClientKeyFile: string
  readonly otherClientKey: string
  /** Server cert signed by `ca` whose only SAN is DNS:wrong.example (hostname verification must fail). */
  readonly wrongHostCertFile: string
  readonly wrongHostCert: string
  readonly wrongHostKeyFile: string
  readonly wrongHostKey: string
}

export interface RedisUser {
  name: string
  password: string
  /** ACL rules after `on >password`; default '~* &* +@all'. */
  rules?: string
}

export interface TlsServerOptions {
  /** --tls-auth-clients; default 'optional'. */
  authClients?: 'no' | 'optional' | 'yes'
  /** Serve the wrong.example cert instead of the localhost one. */
  wrongHost?: boolean
}

export interface StartOptions {
  /** --requirepass (the default user's password). */
  password?: string
  /** ACL users, passed as `--user name on >password <rules>`. */
  users?: RedisUser[]
  /** TLS-only listener (plain port disabled) with certs from makeCerts(). */
  tls?: boolean | TlsServerOptions
  /** Extra redis-server arguments, e.g. ['--maxmemory', '1mb']. */
  args?: string[]
  /** Start with --cluster-enabled yes (slots are not assigned). */
  cluster?: boolean
}

export declare class RedisServer {
  /** Made by startRedis() only. */
  private constructor()
  /** Always '127.0.0.1'. */
  readonly host: string
  /** The port the server listens on (the TLS port when tls). */
  readonly port: number
  /** Cluster bus port, when started with cluster: true. */
  readonly busPort: number | undefined
  /** 'redis://127.0.0.1:PORT' or 'rediss://127.0.0.1:PORT', without credentials. */
  readonly url: string
  /** Present when started with tls. */
  readonly certs: Certs | undefined
  /** The server's pid while it runs, else undefined. */
  readonly pid: number | undefined
  readonly password: string | undefined
  readonly users: readonly RedisUser[]
  /** The server's own tmp dir (removed by stop()) and its log file (--logfile). */
  readonly dir: string
  readonly logFile: string
  /** redis-server's stdout/stderr (config errors land here before the log is open). */
  readonly stdioFile: string
  /** SIGTERM, wait for exit (SIGKILL after 3 s); removes the tmp dir. */
  stop(): Promise<void>
  /** SIGKILL, wait for exit; the tmp dir stays so restart() can follow. */
  kill(): Promise<void>
  /** Stop if running, start again on the same port with the same config, wait for PING. */
  restart(): Promise<void>
  /** SIGSTOP: connections stay open, nothing is answered. */
  pause(): void
  /** SIGCONT. */
  resume(): void
  /**
   * Run redis-cli against this server (TLS and password arguments added); resolves
   * trimmed stdout. Rejects only on a non-zero exit: error replies come back as
   * stdout text such as 'ERR unknown command ...'.
   */
  cli(...args: Array<string | number>): Promise<string>
}

/** Which backend startRedis() gives: ATLAS_TEST_BACKEND, default redis. */
export declare const BACKEND: 'redis' | 'memory'
/** Start a redis-server on a free port and wait until it answers PING (10 s timeout); with ATLAS_TEST_BACKEND=memory, a fresh memory:// store that poses as one (no process). */
export declare function startRedis(options?: StartOptions): Promise<RedisServer>
/** Stop every server and close every proxy started through this module instance (in jest: this test file). */
export declare function stopAll(): Promise<void>
/** Generate the TLS material once per process (and per dir); default dir: a tmp dir removed at exit. */
export declare function makeCerts(dir?: string): Certs

export interface SentinelStartOptions {
  /** Replicas of the first master (--replicaof); default 1. */
  replicas?: number
  /** Sentinels (`redis-server <conf> --sentinel`); default 3. */
  sentinels?: number
  /** `sentinel monitor <masterName> ...`; default 'atlas'. */
  masterName?: string
  /** Default min(2, sentinels). */
  quorum?: number
  /** requirepass (and masterauth) of the data nodes. */
  password?: string
  /** requirepass of the sentinels (and `sentinel sentinel-pass`). */
  sentinelPassword?: string
  /** Default 1000. */
  downAfterMs?: number
  /** Default 4000. */
  failoverTimeoutMs?: number
  /** TLS-only listeners everywhere (one CA: `nodes[0].certs`), replication and Sentinel links over TLS. */
  tls?: boolean
}

export declare class SentinelTopology {
  private constructor()
  readonly masterName: string
  /** The data nodes; nodes[0] is the first master. */
  readonly nodes: RedisServer[]
  readonly sentinels: RedisServer[]
  /** `['127.0.0.1:PORT', ...]`, for ConnectOptions.sentinel.sentinels. */
  readonly sentinelAddrs: string[]
  /** The data node the first answering sentinel names as master. */
  master(): Promise<RedisServer>
  /** Until every live sentinel names one master other than `old`, and it answers ROLE as master. */
  waitForNewMaster(old: RedisServer, timeoutMs?: number): Promise<RedisServer>
  /** Until every live sentinel sees `replicas` healthy replicas and all other sentinels, and replicas are in sync. */
  waitReady(replicas?: number, timeoutMs?: number): Promise<void>
  /** `SENTINEL FAILOVER <masterName>` on the first live sentinel. */
  failover(): Promise<void>
  /** Stops every server of the topology. */
  stop(): Promise<void>
}

export interface ClusterStartOptions {
  /** Masters (default 3); slots are split evenly by redis-cli. */
  masters?: number
  /** Replicas per master (default 0). */
  replicas?: number
  /** --cluster-node-timeout (default 2000 ms): how soon a dead master is failed over. */
  nodeTimeoutMs?: number
  /** --requirepass and --masterauth on every node. */
  password?: string
  /** ACL users on every node. */
  users?: RedisUser[]
  /** TLS-only nodes (with --tls-cluster and --tls-replication). */
  tls?: boolean | TlsServerOptions
  /** Extra redis-server arguments for every node. */
  args?: string[]
}

export declare class RedisCluster {
  private constructor()
  /** Every node, in creation order (the first `masters` were created as masters). */
  readonly servers: RedisServer[]
  readonly password: string | undefined
  readonly certs: Certs | undefined
  /** `'127.0.0.1:port'` of every node. */
  readonly nodes: string[]
  /** The running nodes that are masters now (by ROLE). */
  masters(): Promise<RedisServer[]>
  /** The running replicas now, with their master's port. */
  replicas(): Promise<Array<{ server: RedisServer; masterPort: number }>>
  /** The node owning `slot` now (CLUSTER SLOTS of the first running node that answers). */
  ownerOf(slot: number): Promise<RedisServer | undefined>
  byPort(port: number): RedisServer | undefined
  /** Until every running node reports cluster_state:ok with all 16384 slots ok. */
  waitHealthy(timeoutMs?: number): Promise<void>
  stop(): Promise<void>
}

/**
 * A master, replicas and sentinels on free ports (down-after 1 s, quorum 2);
 * resolves once the sentinels know every replica and each other.
 */
export declare function startSentinel(options?: SentinelStartOptions): Promise<SentinelTopology>

/**
 * Start `masters * (1 + replicas)` cluster-enabled servers on free ports, create the
 * cluster with `redis-cli --cluster create`, wait for cluster_state:ok on every node
 * and every replica in sync.
 */
export declare function startCluster(options?: ClusterStartOptions): Promise<RedisCluster>

export interface ProxyOptions {
  /** Latency added to every piece of data, both directions (order kept). Default 0. */
  delayMs?: number
  /**
   * Server→client data is cut into pieces of at most this many bytes, written one at a
   * time `chunkGapMs` apart, so that the client reads them one by one. Default 0 (off).
   */
  chunkBytes?: number
  /** Gap between two pieces when chunking; default 1 ms (0: the next turn of the event loop). */
  chunkGapMs?: number
}

/**
 * A TCP proxy on 127.0.0.1 in front of a server, for network faults: a blackholed path
 * (pause), a connection cut in the middle (cut), a name that moves to another server
 * (retarget), latency and small reads (ProxyOptions).
 */
export declare class TcpProxy {
  private constructor()
  /** Always '127.0.0.1'. */
  readonly host: string
  /** The port clients connect to. */
  readonly port: number
  /** 'redis://127.0.0.1:PORT'. */
  readonly url: string
  /** Where new connections go. */
  readonly targetPort: number
  /** Whether pause() is in effect. */
  readonly paused: boolean
  /** Connections accepted since start, those made while paused included. */
  readonly accepted: number
  /** Connections open now (frozen ones included). */
  readonly connections: number
  /**
   * Blackhole: no byte crosses any connection in either direction from now on, and
   * nothing is closed (neither side is read: bytes pile up in the kernel buffers, then
   * in the sender). Connections made while paused are accepted and get nothing. Open
   * connections stay frozen after resume(): only new connections get through, as on a
   * real path that died.
   */
  pause(): void
  /** New connections are forwarded again. */
  resume(): void
  /** Closes both sides of every open connection. */
  cut(): void
  /** Later connections go to 127.0.0.1:`port`; open ones stay where they are. */
  retarget(port: number): void
  /** Cuts every connection and stops listening. */
  close(): Promise<void>
}

/** Start a proxy on a free port that forwards each connection to 127.0.0.1:`targetPort`. */
export declare function startProxy(targetPort: number, options?: ProxyOptions): Promise<TcpProxy>
