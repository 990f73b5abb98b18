'use strict'
// One adapter per client, all with the same small interface:
//
//   const conn = await adapter.connect({ url, host, port })
//   conn.get(key) -> Promise<string | null>
//   conn.set(key, value) -> Promise<unknown>
//   conn.mget(keys[]) -> Promise<Array<string | null>>
//   conn.close() -> Promise<void>
//
// Every adapter adds the same single arrow-function layer over its client, so the
// wrapper cost is equal for all of them. Clients are loaded lazily: a missing or
// broken package only fails its own rows.
const fs = require('fs')
const path = require('path')
const engines = require('./engines')

const ROOT = path.resolve(__dirname, '..')

/** Version of an installed package, read from its package.json (works when `exports` hides it). */
function packageVersion(name) {
  try {
    const file = name === '.' ? path.join(ROOT, 'package.json') : path.join(ROOT, 'node_modules', name, 'package.json')
    return JSON.parse(fs.readFileSync(file, 'utf8')).version
  } catch {
    return 'not installed'
  }
}

const CONNECT_TIMEOUT_MS = 10_000

function ioredisAdapter(autoPipelining) {
  return async ({ url }) => {
    const { Redis } = require('ioredis')
    const client = new Redis(url, {
      enableAutoPipelining: autoPipelining,
      // Fail instead of retrying for ever while connecting, so a dead server shows up as "failed".
      retryStrategy: () => null,
      lazyConnect: true,
    })
    // Without a listener ioredis prints "[ioredis] Unhandled error event" for every socket error.
    let lastError
    client.on('error', (e) => { lastError = e })
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => setTimeout(() => reject(lastError || new Error('connect timed out')), CONNECT_TIMEOUT_MS).unref()),
    ])
    return {
      get: (k) => client.get(k),
      set: (k, v) => client.set(k, v),
      mget: (keys) => client.mget(keys),
      close: async () => {
        try { await client.quit() } catch { client.disconnect() }
      },
    }
  }
}

function atlasAdapter(engine) {
  return async ({ url }) => {
    const { RedisClient } = engines.load(engine)
    const client = await RedisClient.connect(url)
    return {
      get: (k) => client.get(k),
      set: (k, v) => client.set(k, v),
      mget: (keys) => client.mget(keys),
      close: () => client.close(),
    }
  }
}

async function connectNodeRedis({ url }) {
  const { createClient } = require('redis')
  const client = createClient({ url, socket: { connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy: false } })
  // node-redis throws 'error' events at the process when nobody listens.
  client.on('error', () => {})
  await client.connect()
  return {
    get: (k) => client.get(k),
    set: (k, v) => client.set(k, v),
    mget: (keys) => client.mGet(keys),
    close: async () => {
      try { await client.close() } catch { try { client.destroy() } catch { /* gone */ } }
    },
  }
}

let glideLoggerConfigured = false

async function connectGlide({ host, port }) {
  const { GlideClient, Logger } = require('@valkey/valkey-glide')
  if (!glideLoggerConfigured) {
    // GLIDE's core logs to the console (stdout) by default; keep the tables readable.
    Logger.setLoggerConfig('off')
    glideLoggerConfigured = true
  }
  const client = await GlideClient.createClient({
    addresses: [{ host, port }],
    // The default request timeout is 250 ms, which a GC pause at 1000 callers can exceed;
    // a timeout would be a benchmark artefact, not a property of the client.
    requestTimeout: 5000,
  })
  return {
    get: (k) => client.get(k),
    set: (k, v) => client.set(k, v),
    mget: (keys) => client.mget(keys),
    close: async () => { client.close() },
  }
}

/** An engine of this package (engines.js) as a client. */
function atlasClient(engine) {
  if (engine.current) return { id: engine.id, label: engine.label, pkg: '.', pkgName: '@atlas-erp/redis', connect: atlasAdapter(engine) }
  const from = path.relative(ROOT, engine.dir)
  return {
    id: engine.id,
    label: engine.label,
    pkgName: '@atlas-erp/redis (own engine)',
    version: engine.commit ? `${engine.version} (git ${engine.commit.slice(0, 7)}, packed in ${from})` : `${engine.version} (from ${from})`,
    connect: atlasAdapter(engine),
  }
}

/**
 * The other clients, in report order after this package's engines. `id` is what
 * --only takes; `baseline` marks the client the ratio column divides by.
 */
const PEERS = [
  { id: 'ioredis', label: 'ioredis (default)', pkg: 'ioredis', pkgName: 'ioredis', connect: ioredisAdapter(false) },
  { id: 'ioredis-auto', label: 'ioredis (auto-pipelining)', pkg: 'ioredis', pkgName: 'ioredis', connect: ioredisAdapter(true), baseline: true },
  { id: 'node-redis', label: 'node-redis', pkg: 'redis', pkgName: 'redis (node-redis)', connect: connectNodeRedis },
  { id: 'glide', label: 'valkey-glide', pkg: '@valkey/valkey-glide', pkgName: '@valkey/valkey-glide', connect: connectGlide },
]

const BASELINE_ID = 'ioredis-auto'

/** Every client of a run: the engines' (engines.resolveEngines), then the peers. */
const clientsFor = (list) => [...list.map(atlasClient), ...PEERS]

/** The other clients' ids. */
const PEER_IDS = PEERS.map((c) => c.id)

/** Every id --only can name. */
const CLIENT_IDS = ['atlas', engines.OWN_ENGINE_ID, ...PEER_IDS]

module.exports = { clientsFor, CLIENT_IDS, PEER_IDS, BASELINE_ID, packageVersion }
