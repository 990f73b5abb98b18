import { routingKeys } from './binding'
// Redis Cluster helpers that need no connection: addresses, the CLUSTER SLOTS
// reply, the key positions of commands (for routing `command()`), and the
// environment's cluster settings. The client itself is cluster-client.ts.
import { invalidArgument } from './errors'
import { SLOTS, keySlot } from './slot'
import type { ConnectOptions } from './types'

/** @internal */
export interface NodeAddress {
  host: string
  port: number
  /** `host:port` (an IPv6 host in brackets), the key of a node. */
  addr: string
}

/** @internal */
export function addressOf(host: string, port: number): NodeAddress {
  return { host, port, addr: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}` }
}

/** `'host:port'` or `'[v6]:port'`; throws ERR_INVALID_ARGUMENT otherwise. @internal */
export function parseAddress(text: unknown, what = 'cluster.nodes'): NodeAddress {
  if (typeof text !== 'string') throw invalidArgument(`${what}: a node must be a 'host:port' string, got ${typeof text}`)
  const t = text.trim()
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(t) ?? /^([^:\s]+):(\d+)$/.exec(t)
  const port = m ? Number(m[2]) : NaN
  if (!m || !(port > 0 && port < 65536)) throw invalidArgument(`${what}: ${JSON.stringify(text)} is not 'host:port'`)
  return addressOf(m[1], port)
}

/** One range of slots and the nodes that serve it, master first. @internal */
export interface SlotRange {
  from: number
  to: number
  master: NodeAddress
  replicas: NodeAddress[]
}

/**
 * The ranges of a CLUSTER SLOTS reply. A node announced without an address
 * (`''` or `'?'`: "the address you reached me at") gets `fallbackHost`.
 * @internal
 */
export function parseClusterSlots(reply: unknown, fallbackHost: string): SlotRange[] {
  if (!Array.isArray(reply)) throw new Error(`CLUSTER SLOTS: unexpected reply ${typeof reply}`)
  const out: SlotRange[] = []
  const node = (n: unknown): NodeAddress | undefined => {
    if (!Array.isArray(n) || n.length < 2) return undefined
    let host = n[0] === null || n[0] === undefined ? '' : String(n[0])
    if (host === '' || host === '?') host = fallbackHost
    const port = Number(n[1])
    if (!(port > 0 && port < 65536)) return undefined
    return addressOf(host, port)
  }
  for (const r of reply) {
    if (!Array.isArray(r) || r.length < 3) continue
    const from = Number(r[0])
    const to = Number(r[1])
    const master = node(r[2])
    if (!master || !(from >= 0 && to < SLOTS && from <= to)) continue
    const replicas: NodeAddress[] = []
    for (let i = 3; i < r.length; i++) {
      const n = node(r[i])
      if (n) replicas.push(n)
    }
    out.push({ from, to, master, replicas })
  }
  return out
}

/** `MOVED <slot> <host:port>` / `ASK <slot> <host:port>` from an error message. @internal */
export function parseRedirect(message: string): { kind: 'MOVED' | 'ASK'; slot: number; to: NodeAddress; rawHost: string } | undefined {
  const m = /\b(MOVED|ASK) (\d+) (\S*):(\d+)\s*$/.exec(message)
  if (!m) return undefined
  let host = m[3]
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
  return { kind: m[1] as 'MOVED' | 'ASK', slot: Number(m[2]), to: addressOf(host, Number(m[4])), rawHost: host }
}

// ---- key positions for command() -----------------------------------------------------

/**
 * Indices (into `args`, the arguments after the name) of the keys of command
 * `upper` — and of the shard channel of SPUBLISH / SSUBSCRIBE — as the native
 * command table (generated from Redis' own COMMAND) finds them. A command the
 * table does not know is taken to have its key first, as module commands do.
 * @internal
 */
export function keyIndices(upper: string, args: ReadonlyArray<unknown>): number[] {
  const words = args.map((a) => (Buffer.isBuffer(a) ? a.toString('latin1') : String(a)))
  return routingKeys(upper, words) ?? (args.length >= 1 ? [0] : [])
}

// ---- the environment -------------------------------------------------------------------

const TRUE = new Set(['1', 'true', 'yes', 'on'])

/**
 * ConnectOptions from `REDIS_CLUSTER_NODES` and the other REDIS_* variables
 * (REDIS_URL for credentials/TLS, else REDIS_USERNAME, REDIS_PASSWORD, REDIS_TLS;
 * REDIS_KEY_PREFIX). The native layer checks the values as for any options.
 * @internal
 */
export function clusterOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectOptions {
  const get = (k: string) => {
    const v = env[k]
    return v !== undefined && v.trim() !== '' ? v.trim() : undefined
  }
  const nodes = (get('REDIS_CLUSTER_NODES') ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  const o: ConnectOptions = { cluster: { nodes } }
  const url = get('REDIS_URL')
  if (url !== undefined) o.url = url
  else {
    const user = get('REDIS_USERNAME')
    if (user !== undefined) o.username = user
    const pw = env.REDIS_PASSWORD
    if (pw) o.password = pw
    const t = get('REDIS_TLS')
    if (t !== undefined) {
      const v = t.toLowerCase()
      if (TRUE.has(v)) o.tls = true
      else if (!['0', 'false', 'no', 'off'].includes(v)) throw invalidArgument(`REDIS_TLS ${JSON.stringify(t)} must be true or false`)
    }
  }
  const prefix = env.REDIS_KEY_PREFIX
  if (prefix) o.keyPrefix = prefix
  return o
}

// ---- a key in a given slot ---------------------------------------------------------------

let slotTags: string[] | undefined

/**
 * A short string whose hash tag `{tag}` puts a key in `slot`: for keys that must
 * live next to a key they cannot share a `{…}` with (e.g. a lock beside a
 * caller's untagged cache key). Built once, on first use (~50 ms).
 * @internal
 */
export function tagForSlot(slot: number): string {
  if (slotTags === undefined) {
    const tags = new Array<string>(SLOTS)
    let found = 0
    for (let i = 0; found < SLOTS; i++) {
      const t = i.toString(36)
      const s = keySlot(t)
      if (tags[s] === undefined) {
        tags[s] = t
        found++
      }
    }
    slotTags = tags
  }
  return slotTags[slot]
}
