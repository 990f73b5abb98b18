// Issue 18, point 11: secrets. security.spec.ts covers the error paths of a standalone
// client; this file covers what the issue found beyond them:
// - JSON.stringify / util.inspect / a walk of every own field of a client (standalone,
//   Sentinel, Cluster) never shows a password (the cluster client kept its options);
// - node and sentinel addresses carrying credentials are not echoed in errors;
// - a URL with an unencoded `?` (or `#`, `/`, `@`) in its password echoes no part of it;
// - configuration errors leave the password out of the whole message, not only out of
//   the part in backticks.
import util from 'util'
import { RedisClient } from '../../lib'
import type { ConnectOptions } from '../../lib'
import { startCluster, startRedis, startSentinel, stopAll, RedisCluster, RedisServer, SentinelTopology } from '../harness'
import { attempt, closeAll, connect } from '../helpers'

const PW = 'Vault-Pw-7731-Zq'
const QPW = 'Qx7?Vz9-leak-Canary'
/** A '?' after digits: `redis://default:6380?...@host` parses as host "default", port 6380, and a query. */
const DIGITS_QPW = '6380?Qz4-drip-Marmot'
const SENTINEL_PW = 'Snt-Pw-4420-Kjq' // no word of the API in it ("sentinel" is an option)
const CLUSTER_PW = 'Crab-Pw-9918-Hbx' // no word of the API in it ("cluster" is a stats() key)
const ALL = { PW, QPW, DIGITS_QPW, SENTINEL_PW, CLUSTER_PW }

/** Which secrets `text` shows, whole or in part (any 6 characters of one, raw or URL-encoded). */
function leaked(text: string): string[] {
  const out: string[] = []
  for (const [name, secret] of Object.entries(ALL)) {
    const pieces = [secret, encodeURIComponent(secret)]
    for (let i = 0; i + 6 <= secret.length; i++) pieces.push(secret.slice(i, i + 6))
    // pieces of a URL's own syntax or of the address are no secret
    const found = pieces.find((p) => text.includes(p) && !/^[0-9.:?@/]+$/.test(p))
    if (found !== undefined) out.push(found === secret ? `${name} (whole)` : `${name} (part: ${JSON.stringify(found)})`)
  }
  return out
}

/**
 * Everything a program could print of `v` without calling its methods: JSON, String,
 * util.inspect (hidden fields too), and the string values of every own field reached
 * from it (symbols and non-enumerable ones too, getters not run).
 */
function exposed(v: unknown): string {
  const parts: string[] = []
  try {
    parts.push(JSON.stringify(v) ?? '')
  } catch (e) {
    parts.push(`(JSON.stringify threw: ${(e as Error)?.message})`)
  }
  parts.push(String(v), util.inspect(v, { showHidden: true, depth: 12, getters: false }))
  const seen = new Set<unknown>()
  const walk = (x: unknown, depth: number) => {
    if (typeof x === 'string') return void parts.push(x)
    if (x === null || (typeof x !== 'object' && typeof x !== 'function') || seen.has(x) || depth > 12) return
    seen.add(x)
    if (Buffer.isBuffer(x)) return void parts.push(x.toString('latin1'))
    if (x instanceof Map) for (const [k, y] of x) (walk(k, depth + 1), walk(y, depth + 1))
    if (x instanceof Set) for (const y of x) walk(y, depth + 1)
    for (const key of Reflect.ownKeys(x as object)) {
      const d = Object.getOwnPropertyDescriptor(x, key)
      if (d && 'value' in d) walk(d.value, depth + 1)
    }
  }
  walk(v, 0)
  return parts.join('\n')
}

/** An error as every text a program could print of it. */
function errorText(e: any): string {
  return [String(e), e?.message, e?.stack, exposed(e)].join('\n')
}

let srv: RedisServer // requirepass PW
let qsrv: RedisServer // requirepass QPW (with a '?')
let sentinel: SentinelTopology
let cluster: RedisCluster

beforeAll(async () => {
  ;[srv, qsrv, sentinel, cluster] = await Promise.all([
    startRedis({ password: PW }),
    startRedis({ password: QPW }),
    startSentinel({ replicas: 1, sentinels: 3, password: PW, sentinelPassword: SENTINEL_PW }),
    startCluster({ masters: 3, password: CLUSTER_PW }),
  ])
}, 120_000)
afterAll(async () => {
  await closeAll()
  await cluster?.stop()
  await stopAll()
})

describe('a client, printed or walked, shows no password', () => {
  test('standalone (options and URL)', async () => {
    const a = await connect({ port: srv.port, password: PW })
    const b = await connect(`redis://default:${PW}@127.0.0.1:${srv.port}`)
    await a.set('sec:k', 'v')
    expect(leaked(exposed(a))).toEqual([])
    expect(leaked(exposed(b))).toEqual([])
    expect(leaked(exposed(a.stats()))).toEqual([])
  })

  test('Sentinel (data and sentinel passwords)', async () => {
    const c = await connect({ password: PW, sentinel: { masterName: sentinel.masterName, sentinels: sentinel.sentinelAddrs, password: SENTINEL_PW } })
    await c.set('sec:s', 'v')
    expect(leaked(exposed(c))).toEqual([])
  })

  test('Cluster (options, and a URL seed)', async () => {
    const a = await connect({ password: CLUSTER_PW, cluster: { nodes: [cluster.nodes[0]] } })
    const b = await connect({ url: `redis://default:${CLUSTER_PW}@${cluster.nodes[1]}`, cluster: {} })
    await a.set('sec:c', 'v')
    expect(await b.get('sec:c')).toBe('v')
    expect(leaked(exposed(a))).toEqual([])
    expect(leaked(exposed(b))).toEqual([])
    expect(leaked(exposed(a.stats()))).toEqual([])
  })
})

describe('addresses that carry credentials are not echoed', () => {
  const DEAD = '127.0.0.1:1' // nothing listens on port 1
  const cases = (): Array<[string, ConnectOptions]> => [
    ['a cluster seed as a URL with credentials (dead)', { cluster: { nodes: [`redis://default:${CLUSTER_PW}@${DEAD}`] }, connectTimeoutMs: 500 }],
    ['a cluster seed as user:password@host:port (dead)', { cluster: { nodes: [`default:${CLUSTER_PW}@${DEAD}`] }, connectTimeoutMs: 500 }],
    ['a cluster seed as a URL with credentials (live)', { cluster: { nodes: [`redis://default:${CLUSTER_PW}@${cluster.nodes[0]}`] }, connectTimeoutMs: 500 }],
    ['a sentinel as a URL with credentials (dead)', { sentinel: { masterName: 'atlas', sentinels: [`redis://:${SENTINEL_PW}@${DEAD}`] }, connectTimeoutMs: 500 }],
    ['a sentinel as :password@host:port (live)', { sentinel: { masterName: 'atlas', sentinels: [`:${SENTINEL_PW}@${sentinel.sentinelAddrs[0]}`] }, connectTimeoutMs: 500 }],
    ['a host holding credentials', { host: `default:${PW}@127.0.0.1`, port: srv.port, connectTimeoutMs: 500 }],
  ]
  test('in the errors of connect(), whatever they are', async () => {
    const found: Record<string, unknown> = {}
    for (const [name, o] of cases()) {
      const r = await attempt(o)
      const text = r instanceof RedisClient ? exposed(r) : errorText(r)
      found[name] = leaked(text)
      if (!(r instanceof RedisClient)) expect([name, r?.code]).toEqual([name, expect.stringMatching(/^ERR_[A-Z_]+$/)])
    }
    expect(found).toEqual(Object.fromEntries(cases().map(([name]) => [name, []])))
  })
})

describe("a URL with an unencoded '?', '#', '/' or '@' in the password", () => {
  test("'?': either it connects with that password or the error echoes no part of it", async () => {
    const found: Record<string, string[]> = {}
    for (const url of [
      `redis://default:${QPW}@127.0.0.1:${qsrv.port}`,
      `redis://:${QPW}@127.0.0.1:${qsrv.port}/0`,
      `redis://default:${DIGITS_QPW}@127.0.0.1:${qsrv.port}`,
      `redis://localhost:${DIGITS_QPW}@127.0.0.1:${qsrv.port}`,
      `rediss://default:${DIGITS_QPW}@127.0.0.1:${qsrv.port}/1`,
    ]) {
      const r = await attempt({ url, connectTimeoutMs: 500 })
      if (r instanceof RedisClient) expect(await r.ping()).toBeGreaterThan(0)
      else expect(r?.code).toMatch(/^ERR_/)
      found[url.replace(QPW, '<QPW>').replace(DIGITS_QPW, '<DIGITS_QPW>')] = leaked(r instanceof RedisClient ? exposed(r) : errorText(r))
    }
    expect(found).toEqual(Object.fromEntries(Object.keys(found).map((k) => [k, []])))
  })

  test.each(['#', '/', '@', '?x=1&', ':'])("'%s' in the password: no part of it in any error", async (ch) => {
    const pw = `Ab3${ch}Vz9-leak-Canary`
    const local = [pw, encodeURIComponent(pw), ...Array.from({ length: pw.length - 5 }, (_, i) => pw.slice(i, i + 6)).filter((p) => !/^[a-z0-9.:/-]*$/i.test(p) || p.includes('Canary') || p.includes('Vz9'))]
    for (const url of [`redis://default:${pw}@127.0.0.1:${srv.port}`, `redis://:${pw}@127.0.0.1:${srv.port}/0`, `rediss://:${pw}@127.0.0.1:1`]) {
      const r = await attempt({ url, connectTimeoutMs: 500 })
      const text = r instanceof RedisClient ? exposed(r) : errorText(r)
      expect([url.replace(pw, '<pw>'), local.filter((p) => text.includes(p))]).toEqual([url.replace(pw, '<pw>'), []])
    }
  })
})

describe('configuration errors: the password is nowhere in the message', () => {
  // built when the test runs: the server's port is not known while jest collects the tests
  const BAD: Array<[string, (port: number) => string | ConnectOptions]> = [
    ['port out of range', () => `redis://:${PW}@127.0.0.1:99999`],
    ['port not a number', () => `redis://:${PW}@127.0.0.1:port`],
    ['db not a number', (port) => `redis://:${PW}@127.0.0.1:${port}/db`],
    ['unknown scheme', (port) => `redis+tls://:${PW}@127.0.0.1:${port}`],
    ['unknown query parameter', (port) => `redis://:${PW}@127.0.0.1:${port}?secret=${PW}`],
    ['password in the query', (port) => `redis://127.0.0.1:${port}?password=${PW}`],
    ['broken IPv6 host', (port) => `redis://:${PW}@[::1:${port}`],
    ['spaces', (port) => `redis://:${PW}@127.0.0 .1:${port}`],
    ['no host', (port) => `redis://:${PW}@:${port}`],
    ['URL and a bad option', (port) => ({ url: `redis://:${PW}@127.0.0.1:${port}`, db: -1 })],
    ['password in the wrong option', (port) => ({ port, username: PW, password: 5 as unknown as string })],
    ['password in keyPrefix by mistake, with a bad port', () => ({ port: -1, password: PW, keyPrefix: PW })],
    ['password with a bad TLS option', (port) => ({ port, password: PW, tls: { ca: `-----BEGIN CERTIFICATE-----\n${PW}\n-----END CERTIFICATE-----\n` } })],
  ]
  test.each(BAD)('%s', async (_name, make) => {
    const r = await attempt(make(srv.port))
    const text = r instanceof RedisClient ? exposed(r) : errorText(r)
    expect({ settled: r instanceof RedisClient ? 'connected' : r?.code, leaked: leaked(text) }).toEqual({ settled: expect.stringMatching(/^(connected|ERR_[A-Z_]+)$/), leaked: [] })
  })

  test('from the environment (REDIS_URL, REDIS_PASSWORD with a bad REDIS_PORT, the password in REDIS_DB by mistake)', async () => {
    const saved = { ...process.env }
    try {
      const found: string[] = []
      for (const env of [
        { REDIS_URL: `redis://:${PW}@127.0.0.1:notaport` },
        { REDIS_HOST: '127.0.0.1', REDIS_PORT: 'x', REDIS_PASSWORD: PW },
        { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(srv.port), REDIS_PASSWORD: PW, REDIS_DB: PW },
      ]) {
        for (const k of ['REDIS_URL', 'REDIS_HOST', 'REDIS_PORT', 'REDIS_PASSWORD', 'REDIS_DB', 'REDIS_CLUSTER_NODES', 'REDIS_SENTINELS']) delete process.env[k]
        Object.assign(process.env, env)
        const r = await attempt()
        found.push(...leaked(r instanceof RedisClient ? exposed(r) : errorText(r)).map((l) => `${Object.keys(env).join('+')}: ${l}`))
      }
      expect(found).toEqual([])
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k]
      Object.assign(process.env, saved)
    }
  })
})
