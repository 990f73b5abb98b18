// Connecting: URL, options, environment, db selection, refused ports,
// authentication (requirepass and ACL users), secrets in messages, bad options.
import net from 'net'
import { RedisClient, ENV_VARS } from '../lib'
import type { ConnectOptions } from '../lib'
import { startRedis, stopAll, RedisServer } from './harness'
import { attempt, closeAll, connect, ns, rejection, timed, track } from './helpers'

const DEFAULT_PW = 'd3fault-Secret-pw'
const APP_PW = 'app-S3cret-pw'

let plain: RedisServer
let auth: RedisServer

beforeAll(async () => {
  ;[plain, auth] = await Promise.all([
    startRedis(),
    startRedis({ password: DEFAULT_PW, users: [{ name: 'app', password: APP_PW }] }),
  ])
})
afterEach(closeAll)
afterAll(stopAll)

/** A port nothing listens on (it was free a moment ago). */
function deadPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

/** Runs `fn` with only the given REDIS_* variables set, restoring process.env afterwards. */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved: Record<string, string | undefined> = {}
  for (const k of ENV_VARS) {
    saved[k] = process.env[k]
    delete process.env[k]
  }
  Object.assign(process.env, vars)
  try {
    return await fn()
  } finally {
    for (const k of ENV_VARS) {
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
    }
  }
}

/** Everything an error exposes as text. */
function errorText(e: any): string {
  return [String(e), e?.message, e?.stack, JSON.stringify(e), JSON.stringify(Object.entries(e ?? {}))].join('\n')
}

describe('connect forms', () => {
  test('from a URL', async () => {
    const c = await connect(plain.url)
    const k = ns('url') + 'k'
    await c.set(k, 'v')
    expect(await plain.cli('GET', k)).toBe('v')
  })

  test('from options, and options override the URL', async () => {
    const a = await connect({ host: '127.0.0.1', port: plain.port })
    const k = ns('opt') + 'k'
    await a.set(k, 'v')
    expect(await a.get(k)).toBe('v')
    // url points at a dead port; the explicit port wins
    const b = await connect({ url: `redis://127.0.0.1:${await deadPort()}`, port: plain.port })
    expect(await b.get(k)).toBe('v')
    // url for the address, password from options
    const c = await connect({ url: auth.url, password: DEFAULT_PW })
    expect(await c.ping()).toBeGreaterThan(0)
  })

  test('URL with credentials and a database', async () => {
    const c = await connect(`redis://:${encodeURIComponent(DEFAULT_PW)}@127.0.0.1:${auth.port}/3`)
    const k = ns('urldb') + 'k'
    await c.set(k, 'in-3')
    expect(await auth.cli('-n', 3, 'GET', k)).toBe('in-3')
    expect(await auth.cli('-n', 0, 'GET', k)).toBe('')
    const u = await connect(`redis://app:${encodeURIComponent(APP_PW)}@127.0.0.1:${auth.port}?db=4`)
    expect(await u.command('ACL', 'WHOAMI')).toBe('app')
    await u.set(k, 'in-4')
    expect(await auth.cli('-n', 4, 'GET', k)).toBe('in-4')
  })

  test('db selection isolates data', async () => {
    const k = ns('db') + 'k'
    const d0 = await connect({ port: plain.port })
    const d1 = await connect({ port: plain.port, db: 1 })
    const d2 = await connect(`${plain.url}/2`)
    await d0.set(k, 'zero')
    await d1.set(k, 'one')
    expect(await d0.get(k)).toBe('zero')
    expect(await d1.get(k)).toBe('one')
    expect(await d2.get(k)).toBeNull()
    expect(await plain.cli('-n', 1, 'GET', k)).toBe('one')
    // a database the server does not have: refused by the server's SELECT
    expect(await attempt({ port: plain.port, db: 999 })).toMatchObject({
      code: expect.stringMatching(/^ERR_(REPLY|INVALID_ARGUMENT)$/),
      message: expect.stringMatching(/999|DB index/),
    })
  })
})

test('a call issued the moment connect() resolves is served (300 fresh clients)', async () => {
  const failures: string[] = []
  for (let i = 0; i < 300; i++) {
    const c = await RedisClient.connect({ port: plain.port })
    try {
      await c.ping()
    } catch (e: any) {
      failures.push(`#${i}: ${e?.code} ${e?.message}`)
    } finally {
      await c.close()
    }
  }
  expect(failures.slice(0, 5)).toEqual([])
  expect(failures.length).toBe(0)
})

describe('connect from the environment', () => {
  test('REDIS_URL', async () => {
    const k = ns('envurl') + 'k'
    const c = await withEnv({ REDIS_URL: `${plain.url}/5` }, () => connect())
    await c.set(k, 'env')
    expect(await plain.cli('-n', 5, 'GET', k)).toBe('env')
  })

  test('REDIS_URL with REDIS_KEY_PREFIX', async () => {
    const k = ns('envurlp') + 'k'
    const c = await withEnv({ REDIS_URL: plain.url, REDIS_KEY_PREFIX: 'envp:' }, () => connect())
    await c.set(k, 'p')
    expect(await plain.cli('GET', `envp:${k}`)).toBe('p')
  })

  test('REDIS_HOST / REDIS_PORT / REDIS_PASSWORD', async () => {
    const k = ns('envhp') + 'k'
    const c = await withEnv(
      { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(auth.port), REDIS_PASSWORD: DEFAULT_PW },
      () => connect(),
    )
    expect(await c.command('ACL', 'WHOAMI')).toBe('default')
    await c.set(k, 'v')
    expect(await auth.cli('GET', k)).toBe('v')
  })

  test('REDIS_USERNAME, REDIS_DB and REDIS_KEY_PREFIX', async () => {
    const k = ns('envall') + 'k'
    const c = await withEnv(
      {
        REDIS_HOST: '127.0.0.1',
        REDIS_PORT: String(auth.port),
        REDIS_USERNAME: 'app',
        REDIS_PASSWORD: APP_PW,
        REDIS_DB: '6',
        REDIS_KEY_PREFIX: 'atlas:',
      },
      () => connect(),
    )
    expect(await c.command('ACL', 'WHOAMI')).toBe('app')
    await c.set(k, 'v')
    expect(await auth.cli('-n', 6, 'GET', `atlas:${k}`)).toBe('v')
    expect(await c.get(k)).toBe('v')
  })

  test('the environment is read at connect time, and restored', async () => {
    const before = { ...process.env }
    await withEnv({ REDIS_HOST: '127.0.0.1', REDIS_PORT: String(await deadPort()) }, async () => {
      expect(await attempt()).toMatchObject({ code: 'ERR_CONNECTION' })
    })
    await withEnv({ REDIS_HOST: '127.0.0.1', REDIS_PORT: 'not-a-port' }, async () => {
      expect(await attempt()).toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
        message: expect.stringContaining('REDIS_PORT'),
      })
    })
    await withEnv({ REDIS_URL: 'http://127.0.0.1:1' }, async () => {
      expect(await attempt()).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    })
    expect(process.env).toEqual(before)
  })
})

describe('connection failures', () => {
  test('a port nothing listens on rejects with ERR_CONNECTION naming host:port', async () => {
    const port = await deadPort()
    const r = await timed(RedisClient.connect({ host: '127.0.0.1', port, connectTimeoutMs: 2000 }).then(track))
    expect(r.error).toMatchObject({ code: 'ERR_CONNECTION' })
    expect(r.error.message).toContain(`127.0.0.1:${port}`)
    expect(r.error.message).toContain('connection refused')
    expect(r.ms).toBeLessThan(1000)
    // the same from a URL
    expect(await attempt(`redis://127.0.0.1:${port}`)).toMatchObject({
      code: 'ERR_CONNECTION',
      message: expect.stringMatching(new RegExp(`127\\.0\\.0\\.1:${port}.*connection refused`)),
    })
  })

  test('a server that accepts but never answers: ERR_CONNECTION after connectTimeoutMs', async () => {
    const sockets = new Set<net.Socket>()
    const mute = net.createServer((s) => {
      sockets.add(s)
      s.on('error', () => undefined)
    })
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r))
    const { port } = mute.address() as net.AddressInfo
    try {
      const r = await timed(RedisClient.connect({ port, connectTimeoutMs: 300 }).then(track))
      expect(r.error).toMatchObject({ code: 'ERR_CONNECTION' })
      expect(r.error.message).toContain(`127.0.0.1:${port}`)
      expect(r.ms).toBeGreaterThanOrEqual(250)
      expect(r.ms).toBeLessThan(1300)
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise((r) => mute.close(r))
    }
  })

  test('a non-Redis server: ERR_CONNECTION', async () => {
    const sockets = new Set<net.Socket>()
    const http = net.createServer((s) => {
      sockets.add(s)
      s.on('error', () => undefined)
      s.end('HTTP/1.1 400 Bad Request\r\n\r\n')
    })
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
    const { port } = http.address() as net.AddressInfo
    try {
      expect(await attempt({ port, connectTimeoutMs: 1000 })).toMatchObject({
        code: 'ERR_CONNECTION',
        message: expect.stringContaining('did not answer as a Redis server'),
      })
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise((r) => http.close(r))
    }
  })
})

describe('authentication', () => {
  test('the right password works', async () => {
    const c = await connect({ port: auth.port, password: DEFAULT_PW })
    expect(await c.command('ACL', 'WHOAMI')).toBe('default')
  })

  test('a wrong password: ERR_AUTH', async () => {
    const e = await attempt({ port: auth.port, password: 'wrong-pw-123' })
    expect(e).toMatchObject({ code: 'ERR_AUTH' })
    expect(e.message).toMatch(/WRONGPASS|invalid/)
    expect(errorText(e)).not.toContain('wrong-pw-123')
  })

  test('no password against a requirepass server: ERR_AUTH', async () => {
    const e = await attempt({ port: auth.port })
    expect(e).toMatchObject({ code: 'ERR_AUTH' })
    expect(e.message).toMatch(/NOAUTH|auth/i)
    const u = await attempt(auth.url)
    expect(u).toMatchObject({ code: 'ERR_AUTH' })
  })

  test('a password against a server without one: ERR_AUTH', async () => {
    const e = await attempt({ port: plain.port, password: 'unneeded-pw-9' })
    expect(e).toMatchObject({ code: 'ERR_AUTH' })
    expect(errorText(e)).not.toContain('unneeded-pw-9')
  })

  test('ACL username + password works; a wrong ACL password or unknown user fails', async () => {
    const c = await connect({ port: auth.port, username: 'app', password: APP_PW })
    expect(await c.command('ACL', 'WHOAMI')).toBe('app')
    const k = ns('acl') + 'k'
    await c.set(k, 'v')
    expect(await c.get(k)).toBe('v')

    const wrong = await attempt({ port: auth.port, username: 'app', password: 'nope-' + APP_PW })
    expect(wrong).toMatchObject({ code: 'ERR_AUTH' })
    expect(errorText(wrong)).not.toContain(APP_PW)
    const cross = await attempt({ port: auth.port, username: 'app', password: DEFAULT_PW })
    expect(cross).toMatchObject({ code: 'ERR_AUTH' })
    const unknown = await attempt({ port: auth.port, username: 'ghost', password: APP_PW })
    expect(unknown).toMatchObject({ code: 'ERR_AUTH' })
    for (const e of [cross, unknown]) {
      expect(errorText(e)).not.toContain(APP_PW)
      expect(errorText(e)).not.toContain(DEFAULT_PW)
    }
  })

  test('passwords never appear in messages or stats', async () => {
    const secrets = [DEFAULT_PW, APP_PW, 'hunter2-xyz']
    const failures: unknown[] = []
    const port = await deadPort()
    const attempts: Array<string | ConnectOptions> = [
      `redis://:hunter2-xyz@127.0.0.1:${port}`,
      `redis://app:hunter2-xyz@127.0.0.1:${auth.port}`,
      `redis://:hunter2-xyz@127.0.0.1:${auth.port}/notadb`,
      `redis://:hunter2-xyz@127.0.0.1:99999`,
      `redis://:hunter2-xyz@127.0.0.1:${auth.port}?foo=bar`,
      `http://:hunter2-xyz@127.0.0.1:${auth.port}`,
      { port, password: 'hunter2-xyz' },
      { port: auth.port, password: 'hunter2-xyz' },
      { port: auth.port, username: 'app', password: 'hunter2-xyz' },
      { port: auth.port, password: 'hunter2-xyz', db: -1 },
      { port: auth.port, password: 'hunter2-xyz', hots: 'x' } as ConnectOptions,
      { port: 'x' as unknown as number, password: 'hunter2-xyz' },
      { url: `redis://:hunter2-xyz@127.0.0.1:${auth.port}`, port: 0 },
      { port: auth.port, password: DEFAULT_PW, db: 99999 },
    ]
    for (const a of attempts) failures.push(await attempt(a))
    for (const e of failures) {
      expect(e).toMatchObject({ code: expect.stringMatching(/^ERR_/) })
      for (const s of secrets) expect(errorText(e)).not.toContain(s)
    }
    // env form
    const envErr = await withEnv({ REDIS_HOST: '127.0.0.1', REDIS_PORT: String(auth.port), REDIS_PASSWORD: 'hunter2-xyz' }, () =>
      attempt(),
    )
    expect(envErr).toMatchObject({ code: 'ERR_AUTH' })
    expect(errorText(envErr)).not.toContain('hunter2-xyz')

    // a connected client: its stats, and command errors
    const c = await connect({ port: auth.port, password: DEFAULT_PW })
    const k = ns('secret') + 'k'
    await c.set(k, 'v')
    // AUTH through command() would change the shared connection's user: refused before sending.
    const cmdErr = await rejection(c.command('AUTH', 'default', 'hunter2-xyz'))
    expect(cmdErr).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(errorText(cmdErr)).not.toContain('hunter2-xyz')
    const stats = JSON.stringify(c.stats())
    for (const s of secrets) expect(stats).not.toContain(s)
    expect(JSON.stringify(c)).not.toContain(DEFAULT_PW)
  })
})

describe('bad connect options', () => {
  const bad: Array<[string, unknown]> = [
    ['unknown field', { port: 1234, hots: 'x' }],
    ['port 0', { port: 0 }],
    ['port 65536', { port: 65536 }],
    ['port 1.5', { port: 1.5 }],
    ['port as string', { port: '6379' }],
    ['connectTimeoutMs -1', { port: 1234, connectTimeoutMs: -1 }],
    ['connectTimeoutMs 0', { port: 1234, connectTimeoutMs: 0 }],
    ['commandTimeoutMs 1.5', { port: 1234, commandTimeoutMs: 1.5 }],
    ['db -1', { port: 1234, db: -1 }],
    ['db as string', { port: 1234, db: '1' }],
    ['empty host', { host: '' }],
    ['tls.cert without tls.key', { port: 1234, tls: { cert: 'x' } }],
    ['unknown tls field', { port: 1234, tls: { verify: false } }],
    ['reconnect min > max', { port: 1234, reconnect: { minDelayMs: 500, maxDelayMs: 100 } }],
    ['unknown reconnect field', { port: 1234, reconnect: { retries: 3 } }],
    ['a number', 42],
    ['null', null],
    ['an array', [plainUrlPlaceholder()]],
    ['not a URL', 'not a url'],
    ['unsupported scheme', 'http://127.0.0.1:1234'],
    ['URL db not a number', 'redis://127.0.0.1:1234/abc'],
    ['URL unknown query option', 'redis://127.0.0.1:1234?timeout=5'],
  ]
  test.each(bad)('%s → ERR_INVALID_ARGUMENT', async (_name, options) => {
    const r = await timed(RedisClient.connect(options as ConnectOptions).then(track))
    expect(r.error).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(r.ms).toBeLessThan(200) // refused before any network activity
  })

  // NaN and Infinity must be refused like any other bad number. The base URL names a port
  // nothing listens on, so a value that is silently dropped shows up as ERR_CONNECTION
  // (and the test never reaches the default 127.0.0.1:6379).
  const nonFinite: Array<[string, Record<string, unknown>]> = [
    ['port NaN', { port: NaN }],
    ['db NaN', { db: NaN }],
    ['connectTimeoutMs NaN', { connectTimeoutMs: NaN }],
  ]
  test.each(nonFinite)('%s → ERR_INVALID_ARGUMENT (not the default)', async (_name, extra) => {
    const url = `redis://127.0.0.1:${await deadPort()}`
    expect(await attempt({ url, ...extra } as ConnectOptions)).toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    })
  })

  test('messages name the offending option', async () => {
    expect(await attempt({ port: 1234, hots: 'x' } as ConnectOptions)).toMatchObject({
      message: expect.stringContaining('hots'),
    })
    expect(await attempt({ port: 0 })).toMatchObject({ message: expect.stringContaining('port') })
    expect(await attempt({ port: 1234, connectTimeoutMs: -1 })).toMatchObject({
      message: expect.stringContaining('connectTimeoutMs'),
    })
  })
})

function plainUrlPlaceholder(): string {
  return 'redis://127.0.0.1:1'
}
