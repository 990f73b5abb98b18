// Redis Cluster mode of RedisClient: one standalone native connection per master,
// commands routed by the slot of their key, redirections (MOVED, ASK) followed,
// the slot map reloaded when the cluster changes. Loaded by RedisClient.connect()
// only when `cluster` is given, so the standalone client does no extra work.
import { OP } from './binding'
import { checkOptionKeys, isPlainObject } from './args'
import { RedisClient } from './client'
import { addressOf, clusterOptionsFromEnv, keyIndices, parseAddress, parseClusterSlots, parseRedirect, tagForSlot } from './cluster'
import type { NodeAddress, SlotRange } from './cluster'
import { ErrorCode, RedisError, invalidArgument } from './errors'
import { LocalCache } from './local-cache'
import type { NativeClient } from './binding'
import { SLOTS, keySlot } from './slot'
import { keysOfOps } from './transaction'
import type { ClientStats, ConnectOptions, RedisKey, ScanOptions } from './types'

const O = {
  Get: OP.Get,
  Del: OP.Del,
  Exists: OP.Exists,
  MGet: OP.MGet,
  MSet: OP.MSet,
  Scan: OP.Scan,
  Command: OP.Command,
  Ping: OP.Ping,
  Script: OP.Script,
  Transaction: OP.Transaction,
  Watch: OP.Watch,
  Unwatch: OP.Unwatch,
  Eval: OP.Eval,
}

/** Keyless: any master. */
const ANY = -1
/** Keys of several slots in a call that cannot be split: refused, as the server would. */
const CROSS = -2

const CLUSTER_OPTIONS = new Set(['nodes', 'maxRedirections'])
const SCAN_OPTIONS = new Set(['match', 'count', 'type'])
/** Slot map reloads: at most one per this interval, however many redirections ask for one. */
const REFRESH_MIN_INTERVAL_MS = 100
/** Background reload of the slot map, to notice changes nobody was redirected by. */
const REFRESH_IDLE_MS = 30_000

/** The parts of a node's RedisClient the cluster client drives (TypeScript-private there). */
interface NodeClient {
  send<T>(op: number, ...args: unknown[]): Promise<T>
  native: NativeClient
  localCache?: LocalCache
  state: string
}
const inner = (c: RedisClient) => c as unknown as NodeClient

/** Errors that certainly mean "not sent": safe to send again elsewhere. */
const notSent = new WeakSet<object>()
function markNotSent(e: unknown): never {
  const err = e instanceof RedisError ? e : RedisError.from(e)
  notSent.add(err)
  throw err
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.())

/** One cluster node: a standalone RedisClient connection, made once and reused. */
class Node {
  client?: RedisClient
  readonly ready: Promise<RedisClient>
  failed = false
  retired = false
  epoch?: Uint32Array
  seenEpoch = 0
  constructor(
    readonly address: NodeAddress,
    connect: (a: NodeAddress) => Promise<RedisClient>,
    onReady: (n: Node, c: RedisClient) => void,
  ) {
    this.ready = connect(address).then(
      (c) => {
        this.client = c
        onReady(this, c)
        return c
      },
      (e) => {
        this.failed = true
        throw e
      },
    )
    this.ready.catch(() => {}) // observed by whoever sends; never an unhandled rejection
  }
}

/**
 * RedisClient over a Redis Cluster (see docs/cluster-and-sentinel.md). Made by
 * `RedisClient.connect({ cluster: { nodes } })`; same API as the standalone client.
 * @internal
 */
export class ClusterClient extends RedisClient {
  private readonly nodes = new Map<string, Node>()
  private slotOwner: Array<Node | undefined> = new Array(SLOTS)
  private masters: Node[] = []
  /** Every address heard of (masters, replicas, seeds): where to ask for the slot map. */
  private readonly known = new Map<string, NodeAddress>()
  private nextAny = 0
  private refreshing?: Promise<void>
  private refreshAgain = false
  private lastRefresh = 0
  private refreshTimer?: NodeJS.Timeout
  private idleTimer?: NodeJS.Timeout
  private readonly prefix: string
  private readonly prefixBuf?: Buffer
  private readonly timeoutMs: number
  private readonly retiredStats = { commands: 0, batches: 0, replies: 0, errors: 0, timeouts: 0, reconnects: 0 }
  private cacheNodes = false
  private readonly counters = { moved: 0, ask: 0, retries: 0, refreshes: 0 }

  private constructor(
    private readonly base: ConnectOptions,
    private readonly seeds: NodeAddress[],
    private readonly maxRedirections: number,
  ) {
    super()
    this.prefix = base.keyPrefix ?? ''
    this.clusterPrefix = this.prefix
    if (this.prefix !== '') this.prefixBuf = Buffer.from(this.prefix, 'utf8')
    this.timeoutMs = typeof base.commandTimeoutMs === 'number' ? base.commandTimeoutMs : 5000
    for (const s of seeds) this.known.set(s.addr, s)
    const cc = base.clientCache
    if (cc !== undefined && isPlainObject(cc)) {
      // One cache for all nodes; each node connection tracks its own keys and
      // hands its invalidations to it (see nodeReady).
      this.cacheNodes = true
      this.localCache = new LocalCache(
        { prefixes: cc.prefixes, maxEntries: cc.maxEntries ?? 10_000, ttlMs: cc.ttlMs ?? 60_000 },
        new Uint32Array(1),
        () => {},
      )
    }
  }

  /** `RedisClient.connect()` in cluster mode. @internal */
  static async open(options: ConnectOptions | undefined): Promise<RedisClient> {
    const o = options === undefined ? clusterOptionsFromEnv() : options
    const { cluster, ...base } = o
    if (!isPlainObject(cluster)) throw invalidArgument('connect(): option cluster must be an object, e.g. { nodes: [\'host:port\'] }')
    checkOptionKeys('connect(): cluster', cluster, CLUSTER_OPTIONS)
    if ((base as Record<string, unknown>).sentinel !== undefined) throw invalidArgument('connect(): options cluster and sentinel cannot be combined')
    if (base.db !== undefined && base.db !== 0) throw invalidArgument('connect(): Redis Cluster has database 0 only (option db)')
    const nodes = cluster.nodes ?? []
    if (!Array.isArray(nodes)) throw invalidArgument('connect(): cluster.nodes must be an array of \'host:port\' strings')
    let seeds = nodes.map((n) => parseAddress(n))
    if (seeds.length === 0) seeds = [seedFromOptions(base)]
    const max = (cluster as { maxRedirections?: unknown }).maxRedirections ?? 16
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 0 || max > 1000) throw invalidArgument(`connect(): cluster.maxRedirections must be an integer from 0 to 1000, got ${String(max)}`)
    const client = new ClusterClient(base, seeds, max)
    try {
      await client.start()
    } catch (e) {
      await client.closeNodes()
      client.state = 'closed'
      throw e instanceof RedisError ? e : RedisError.from(e)
    }
    return client
  }

  private async start(): Promise<void> {
    let last: unknown
    for (const seed of this.seeds) {
      try {
        const node = this.node(seed)
        const client = await node.ready
        const ranges = parseClusterSlots(await inner(client).send(O.Command, 'CLUSTER', ['SLOTS']), seed.host)
        if (ranges.length === 0) throw new RedisError(ErrorCode.Reply, `CLUSTERDOWN ${seed.addr} serves no slots (is the cluster created?)`)
        this.apply(ranges)
        // Masters connected before the client is handed out. One that cannot be
        // reached now (a failover under way) is not fatal: calls for its slots wait
        // for a reloaded slot map, as after any lost node. Credentials or TLS refused
        // by any node are.
        const settled = await Promise.allSettled(this.masters.map((m) => m.ready))
        const refused = settled.find((r) => r.status === 'rejected' && fatal((r.reason as RedisError)?.code))
        if (refused !== undefined) throw (refused as PromiseRejectedResult).reason
        if (!settled.some((r) => r.status === 'fulfilled')) throw (settled[0] as PromiseRejectedResult).reason
        this.state = 'ready'
        this.idleTimer = setInterval(() => this.refreshSoon(), REFRESH_IDLE_MS)
        this.idleTimer.unref()
        return
      } catch (e) {
        last = e
        // An auth or TLS problem is the same on every node: no point going on.
        if (fatal((e as RedisError).code)) break
      }
    }
    throw last
  }

  // ---- nodes and the slot map -------------------------------------------------------------

  /** The node at `a`, connecting to it the first time (or again after a failed connect). */
  private node(a: NodeAddress): Node {
    let n = this.nodes.get(a.addr)
    if (n === undefined || n.failed || n.retired) {
      n = new Node(a, this.connectNode, this.nodeReady)
      this.nodes.set(a.addr, n)
      this.known.set(a.addr, a)
    }
    return n
  }

  private connectNode = (a: NodeAddress): Promise<RedisClient> => {
    const opts: ConnectOptions = { ...this.base, host: a.host, port: a.port }
    return RedisClient.connect(opts)
  }

  private nodeReady = (n: Node, c: RedisClient): void => {
    if (this.state === 'closing' || this.state === 'closed' || n.retired) {
      void c.close()
      return
    }
    if (this.cacheNodes) {
      // The node's invalidations (and its lost-connection resets) go to the one shared cache.
      const ic = inner(c)
      ic.localCache = this.localCache
      n.epoch = new Uint32Array(ic.native.cacheEpoch())
      n.seenEpoch = n.epoch[0]
    }
  }

  /** Installs a CLUSTER SLOTS answer; retires the nodes that no longer serve slots. */
  private apply(ranges: SlotRange[]): void {
    const owner: Array<Node | undefined> = new Array(SLOTS)
    const masters = new Set<Node>()
    for (const r of ranges) {
      const n = this.node(r.master)
      masters.add(n)
      for (let s = r.from; s <= r.to; s++) owner[s] = n
      for (const rep of r.replicas) this.known.set(rep.addr, rep)
    }
    this.slotOwner = owner
    this.masters = [...masters]
    for (const [addr, n] of this.nodes) {
      if (!masters.has(n)) {
        this.nodes.delete(addr)
        this.retire(n)
      }
    }
  }

  private retire(n: Node): void {
    n.retired = true
    const c = n.client
    if (c !== undefined) {
      addCounters(this.retiredStats, c.stats())
      void c.close() // waits for its replies in flight
    }
  }

  private anyMaster(): Node {
    const m = this.masters
    if (m.length === 0) throw new RedisError(ErrorCode.Connection, 'no Redis Cluster master is known')
    this.nextAny = (this.nextAny + 1) % m.length
    return m[this.nextAny]
  }

  private owner(slot: number): Node {
    return (slot >= 0 ? this.slotOwner[slot] : undefined) ?? this.anyMaster()
  }

  /** Reload the slot map soon (at most once per REFRESH_MIN_INTERVAL_MS), in the background. */
  private refreshSoon(): void {
    if (this.state !== 'ready') return
    if (this.refreshing !== undefined) {
      this.refreshAgain = true
      return
    }
    if (this.refreshTimer !== undefined) return
    const wait = Math.max(0, this.lastRefresh + REFRESH_MIN_INTERVAL_MS - performance.now())
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined
      void this.refresh()
    }, wait)
    this.refreshTimer.unref()
  }

  /** Reloads the slot map from the first node that answers. Never rejects. */
  refresh(): Promise<void> {
    if (this.refreshing !== undefined) return this.refreshing
    this.lastRefresh = performance.now()
    this.refreshing = this.loadSlots()
      .catch(() => {})
      .finally(() => {
        this.refreshing = undefined
        if (this.refreshAgain) {
          this.refreshAgain = false
          this.refreshSoon()
        }
      })
    return this.refreshing
  }

  private async loadSlots(): Promise<void> {
    // Connected masters first, then anything else ever heard of (replicas, seeds).
    const tried = new Set<string>()
    const candidates: NodeAddress[] = []
    const start = this.nextAny
    for (let i = 0; i < this.masters.length; i++) candidates.push(this.masters[(start + i) % this.masters.length].address)
    for (const a of this.known.values()) candidates.push(a)
    for (const a of candidates) {
      if (this.state !== 'ready') return
      if (tried.has(a.addr)) continue
      tried.add(a.addr)
      const existing = this.nodes.get(a.addr)
      let temp: RedisClient | undefined
      try {
        let c: RedisClient
        if (existing?.client !== undefined && !existing.retired) c = existing.client
        else c = temp = await RedisClient.connect({ ...this.base, clientCache: undefined, host: a.host, port: a.port })
        const ranges = parseClusterSlots(await inner(c).send(O.Command, 'CLUSTER', ['SLOTS']), a.host)
        if (ranges.length === 0 || this.state !== 'ready') continue
        this.apply(ranges)
        this.counters.refreshes++
        return
      } catch {
        // next candidate
      } finally {
        if (temp !== undefined) void temp.close()
      }
    }
  }

  // ---- routing ------------------------------------------------------------------------------

  /** The slot of a key as the server sees it (keyPrefix included); ANY when it is not a key. */
  private slotOf(key: unknown): number {
    if (typeof key === 'string') return key.length === 0 ? ANY : keySlot(this.prefix === '' ? key : this.prefix + key)
    if (Buffer.isBuffer(key)) {
      if (key.length === 0) return ANY
      return keySlot(this.prefixBuf === undefined ? key : Buffer.concat([this.prefixBuf, key]))
    }
    if (typeof key === 'number') return keySlot(this.prefix + String(key))
    return ANY
  }

  protected send<T>(op: number, ...args: unknown[]): Promise<T> {
    if (this.state !== 'ready') return super.send(op, ...args) // rejects as the standalone client does
    switch (op) {
      case O.MGet:
        return this.split(op, args[0], (sub) => [sub], joinInOrder) as Promise<T>
      case O.Del:
      case O.Exists:
        return this.split(op, args[0], (sub) => [sub], sum) as Promise<T>
      case O.MSet:
        return this.msetSplit(O.MSet, args[0], (flat) => [flat]) as Promise<T>
      case O.Command:
        return this.command_<T>(args[0], args[1])
      case O.Script:
      case O.Eval:
        return this.route(this.slotOfAll(args[1]), op, args)
      // multi(): checked to be in one slot by the builder (transaction.ts)
      case O.Transaction:
        return this.route(this.slotOfAll(keysOfOps(args[1])), op, args)
      case O.Watch:
        return this.route(this.slotOfAll(args[0]), op, args)
      case O.Unwatch:
        return this.everyMaster(op, args).then(() => undefined as T)
      case O.Ping:
        return this.route(ANY, op, args)
      default:
        return this.route(this.slotOf(args[0]), op, args)
    }
  }

  /** The one slot of a script's keys; CROSS when they span several (ANY when not keys). */
  private slotOfAll(keys: unknown): number {
    if (!Array.isArray(keys) || keys.length === 0) return ANY
    const s = this.slotOf(keys[0])
    for (let i = 1; i < keys.length; i++) if (this.slotOf(keys[i]) !== s) return CROSS
    return s
  }

  /** Sends to the owner of `slot`, following redirections and retrying what did not run. */
  private route<T>(slot: number, op: number, args: unknown[]): Promise<T> {
    if (slot === CROSS) {
      return Promise.reject(new RedisError(ErrorCode.Reply, "CROSSSLOT Keys in request don't hash to the same slot", 'CROSSSLOT'))
    }
    let node: Node
    try {
      node = this.owner(slot)
    } catch (e) {
      return Promise.reject(e)
    }
    const started = performance.now()
    return this.sendTo<T>(node, op, args).catch((e) => this.recover<T>(e, node, slot, op, args, 1, started))
  }

  private sendTo<T>(node: Node, op: number, args: unknown[]): Promise<T> {
    const c = node.client
    if (c !== undefined) return inner(c).send<T>(op, ...args)
    return node.ready.then((c) => inner(c).send<T>(op, ...args), markNotSent)
  }

  /** ASKING then the command, in one batch: consecutive on that connection. */
  private askingTo<T>(node: Node, op: number, args: unknown[]): Promise<T> {
    const go = (c: RedisClient) => {
      const ic = inner(c)
      ic.send(O.Command, 'ASKING', []).catch(() => {})
      return ic.send<T>(op, ...args)
    }
    const c = node.client
    if (c !== undefined) return go(c)
    return node.ready.then(go, markNotSent)
  }

  private async recover<T>(e: unknown, node: Node, slot: number, op: number, args: unknown[], attempt: number, started: number): Promise<T> {
    for (;;) {
      if (this.state !== 'ready') throw e
      const err = e as RedisError
      const code = err?.code
      const elapsed = performance.now() - started
      const mayRetry = attempt <= this.maxRedirections && elapsed < this.timeoutMs
      let next: Promise<T> | undefined
      if (code === ErrorCode.Reply) {
        const msg = err.message
        if (/^ERR_REPLY: (MOVED|ASK) /.test(msg)) {
          const r = parseRedirect(msg)
          if (r === undefined || !mayRetry) throw e
          if (r.to.host === '' || r.to.host === '?') r.to = addressOf(node.address.host, r.to.port)
          const target = this.node(r.to)
          if (r.kind === 'MOVED') {
            this.counters.moved++
            this.slotOwner[r.slot] = target
            this.refreshSoon()
            node = target
            next = this.sendTo<T>(target, op, args)
          } else {
            this.counters.ask++
            node = target
            next = this.askingTo<T>(target, op, args)
          }
        } else if (/^ERR_REPLY: (TRYAGAIN|CLUSTERDOWN|MASTERDOWN|LOADING)\b/.test(msg)) {
          if (!mayRetry || elapsed + backoff(attempt) >= this.timeoutMs) throw e
          this.counters.retries++
          if (!msg.startsWith('ERR_REPLY: TRYAGAIN')) this.refreshSoon()
          await sleep(backoff(attempt))
          node = this.owner(slot)
          next = this.sendTo<T>(node, op, args)
        } else {
          throw e
        }
      } else if (code === ErrorCode.Connection || code === ErrorCode.Closed || code === ErrorCode.Timeout) {
        this.refreshSoon()
        // Resend only what certainly did not run: refused before the write (the node
        // was not connected, or its connection was retired), never a call that was
        // in flight when its connection died or that timed out.
        const unsent =
          notSent.has(err) ||
          (code === ErrorCode.Connection && /^ERR_CONNECTION: not connected to /.test(err.message)) ||
          (code === ErrorCode.Closed && (node.retired || node.failed))
        // (and only while the pause still ends within commandTimeoutMs of the call)
        if (!unsent || !mayRetry || elapsed + backoff(attempt) >= this.timeoutMs) throw e
        this.counters.retries++
        await sleep(backoff(attempt))
        if (this.state !== 'ready') throw e
        // The slot map may have moved on in the meantime (a replica promoted).
        if (!node.retired) await this.refresh()
        node = this.owner(slot)
        next = this.sendTo<T>(node, op, args)
      } else {
        throw e
      }
      try {
        return await next
      } catch (e2) {
        e = e2
        attempt++
      }
    }
  }

  // ---- calls split by slot -------------------------------------------------------------------

  /**
   * Splits a call on `keys` into one call per slot; `combine` puts the replies
   * back in the callers' order. Anything that is not a list of keys goes whole
   * to one node, whose native layer refuses it with the standalone message.
   */
  private split<R>(
    op: number,
    keys: unknown,
    argsFor: (sub: unknown[]) => unknown[],
    combine: (parts: Array<{ idx: number[]; reply: unknown }>, n: number) => R,
  ): Promise<R> {
    if (!Array.isArray(keys) || keys.length === 0) return this.route(ANY, op, argsFor(keys as unknown[]))
    const groups = new Map<number, number[]>()
    for (let i = 0; i < keys.length; i++) {
      const s = this.slotOf(keys[i])
      if (s === ANY) return this.route(ANY, op, argsFor(keys))
      const g = groups.get(s)
      if (g === undefined) groups.set(s, [i])
      else g.push(i)
    }
    if (groups.size === 1) {
      const [slot] = groups.keys()
      return this.route<unknown>(slot, op, argsFor(keys)).then((reply) => combine([{ idx: range(keys.length), reply }], keys.length))
    }
    const calls: Array<Promise<{ idx: number[]; reply: unknown }>> = []
    for (const [slot, idx] of groups) {
      const sub = idx.map((i) => keys[i])
      calls.push(this.route<unknown>(slot, op, argsFor(sub)).then((reply) => ({ idx, reply })))
    }
    return Promise.all(calls).then((parts) => combine(parts, keys.length))
  }

  /** MSET (or command('MSET')) split by slot: one MSET per slot, each atomic, not all together. */
  private msetSplit<T>(op: number, entries: unknown, argsFor: (flat: unknown[]) => unknown[]): Promise<T> {
    let flat: unknown[] | undefined
    if (Array.isArray(entries)) {
      if (entries.length % 2 === 0) flat = entries
    } else if (isPlainObject(entries)) {
      flat = []
      for (const k of Object.keys(entries)) flat.push(k, entries[k])
    }
    if (flat === undefined || flat.length === 0) return this.route(ANY, op, argsFor(entries as unknown[]))
    const groups = new Map<number, unknown[]>()
    for (let i = 0; i < flat.length; i += 2) {
      const s = this.slotOf(flat[i])
      if (s === ANY) return this.route(ANY, op, argsFor(entries as unknown[]))
      const g = groups.get(s)
      if (g === undefined) groups.set(s, [flat[i], flat[i + 1]])
      else g.push(flat[i], flat[i + 1])
    }
    const calls: Array<Promise<T>> = []
    for (const [slot, pairs] of groups) calls.push(this.route<T>(slot, op, argsFor(pairs)))
    return Promise.all(calls).then((r) => r[0])
  }

  /** command(): routed by its first key; multi-key and server-wide commands split. */
  private command_<T>(name: unknown, args: unknown): Promise<T> {
    if (typeof name !== 'string' || !Array.isArray(args)) return this.route(ANY, O.Command, [name, args])
    const upper = name.toUpperCase()
    switch (upper) {
      case 'DEL':
      case 'UNLINK':
      case 'EXISTS':
      case 'TOUCH':
        return this.split(O.Command, args, (sub) => [name, sub], sum) as Promise<T>
      case 'MGET':
        return this.split(O.Command, args, (sub) => [name, sub], joinInOrder) as Promise<T>
      case 'MSET':
        return this.msetSplit(O.Command, args, (flat) => [name, flat])
      case 'FLUSHALL':
      case 'FLUSHDB':
      case 'DBSIZE':
      case 'KEYS':
      case 'SCRIPT':
        return this.everyMaster(O.Command, [name, args]).then((replies) => {
          if (upper === 'DBSIZE') return replies.reduce((a: number, b) => a + Number(b), 0)
          if (upper === 'KEYS') return ([] as unknown[]).concat(...(replies as unknown[][]))
          return replies[0]
        }) as Promise<T>
    }
    const idx = keyIndices(upper, args)
    if (idx.length === 0) return this.route(ANY, O.Command, [name, args])
    let slot = this.slotOf(args[idx[0]])
    for (let i = 1; i < idx.length; i++) if (this.slotOf(args[idx[i]]) !== slot) slot = CROSS
    return this.route(slot, O.Command, [name, args])
  }

  private everyMaster(op: number, args: unknown[]): Promise<unknown[]> {
    return Promise.all(this.masters.map((m) => this.sendTo(m, op, args)))
  }

  // ---- the public methods that differ on a cluster ------------------------------------------

  get(key: RedisKey): Promise<string | null> {
    if (this.localCache !== undefined) this.syncCaches()
    return super.get(key)
  }

  /** Applies the invalidations each node's I/O thread already received (see LocalCache.lookup). */
  private syncCaches(): void {
    for (const n of this.masters) {
      const e = n.epoch
      if (e === undefined || n.client === undefined) continue
      const v = e[0]
      if (v !== n.seenEpoch) {
        n.seenEpoch = v
        inner(n.client).native.drain()
      }
    }
  }

  /**
   * Iterates over the keys of every master, one after the other. Keys moved
   * between nodes while the scan runs may be missed or seen twice.
   */
  async *scan(options: ScanOptions = {}): AsyncIterableIterator<string> {
    if (!isPlainObject(options)) throw invalidArgument('scan(): options must be a plain object')
    checkOptionKeys('scan()', options, SCAN_OPTIONS)
    if (this.state !== 'ready') await super.send(O.Scan)
    for (const node of [...this.masters]) {
      let cursor = '0'
      do {
        const [next, keys] = await this.sendTo<[string, string[]]>(node, O.Scan, [cursor, options.match, options.count, options.type])
        cursor = next
        yield* keys
      } while (cursor !== '0')
    }
  }

  /** Counters summed over the node connections; latency is the worst node's. */
  stats(): ClientStats {
    const total = { ...this.retiredStats }
    let inFlight = 0
    const latency = { p50Ms: 0, p99Ms: 0, maxMs: 0 }
    for (const n of this.nodes.values()) {
      if (n.client === undefined) continue
      const s = n.client.stats()
      addCounters(total, s)
      inFlight += s.inFlight
      latency.p50Ms = Math.max(latency.p50Ms, s.latency.p50Ms)
      latency.p99Ms = Math.max(latency.p99Ms, s.latency.p99Ms)
      latency.maxMs = Math.max(latency.maxMs, s.latency.maxMs)
    }
    const stats = super.statsWith(total, inFlight, latency)
    stats.cluster = { masters: this.masters.length, ...this.counters }
    return stats
  }

  /** The nodes this client routes to now (`host:port` of each master, and the slots each serves). */
  clusterNodes(): Array<{ addr: string; slots: number }> {
    const count = new Map<Node, number>()
    for (const n of this.slotOwner) if (n !== undefined) count.set(n, (count.get(n) ?? 0) + 1)
    return this.masters.map((m) => ({ addr: m.address.addr, slots: count.get(m) ?? 0 }))
  }

  /** @internal */
  siblingKey(key: string, suffix: string): string {
    const full = this.prefix + key
    const open = full.indexOf('{')
    if (open >= 0 && full.indexOf('}', open + 1) > open + 1) return key + suffix // tagged: the suffix keeps the tag
    if (open >= 0) return key + suffix // an unclosed `{`: no tag can be added after it
    return `${key}${suffix}{${tagForSlot(keySlot(full))}}`
  }

  private closing?: Promise<void>

  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve()
    if (this.closing === undefined) {
      this.state = 'closing'
      this.closing = this.closeNodes().then(() => {
        this.state = 'closed'
      })
    }
    return this.closing
  }

  private async closeNodes(): Promise<void> {
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer)
    if (this.idleTimer !== undefined) clearInterval(this.idleTimer)
    this.refreshTimer = this.idleTimer = undefined
    const closing: Array<Promise<void>> = []
    for (const n of this.nodes.values()) {
      n.retired = true
      closing.push(n.ready.then((c) => c.close(), () => {}))
    }
    this.nodes.clear()
    await Promise.all(closing)
    if (this.refreshing !== undefined) await this.refreshing
  }
}

function seedFromOptions(o: ConnectOptions): NodeAddress {
  let host = '127.0.0.1'
  let port = 6379
  if (typeof o.url === 'string') {
    try {
      const u = new URL(o.url)
      if (u.hostname) host = u.hostname.replace(/^\[|\]$/g, '')
      if (u.port) port = Number(u.port)
    } catch {
      throw invalidArgument('connect(): url is not a valid URL')
    }
  }
  if (typeof o.host === 'string' && o.host !== '') host = o.host
  if (typeof o.port === 'number') port = o.port
  return addressOf(host, port)
}

/** Errors that no other node or later attempt would answer differently. */
function fatal(code: string | undefined): boolean {
  return code === ErrorCode.Auth || code === ErrorCode.Tls || code === ErrorCode.InvalidArgument
}

function backoff(attempt: number): number {
  return Math.min(10 * 2 ** Math.min(attempt, 6), 250)
}

function range(n: number): number[] {
  const a = new Array<number>(n)
  for (let i = 0; i < n; i++) a[i] = i
  return a
}

function joinInOrder(parts: Array<{ idx: number[]; reply: unknown }>, n: number): unknown[] {
  if (parts.length === 1 && parts[0].idx.length === n) return parts[0].reply as unknown[]
  const out = new Array<unknown>(n)
  for (const { idx, reply } of parts) {
    const r = reply as unknown[]
    for (let j = 0; j < idx.length; j++) out[idx[j]] = r[j]
  }
  return out
}

function sum(parts: Array<{ idx: number[]; reply: unknown }>): number {
  let t = 0
  for (const p of parts) t += Number(p.reply)
  return t
}

type Counters = Pick<ClientStats, 'commands' | 'batches' | 'replies' | 'errors' | 'timeouts' | 'reconnects'>

/** Adds a node connection's counters to `into`. */
function addCounters(into: Counters, s: Counters): void {
  into.commands += s.commands
  into.batches += s.batches
  into.replies += s.replies
  into.errors += s.errors
  into.timeouts += s.timeouts
  into.reconnects += s.reconnects
}
