// Self-test of the real-Redis harness, checked with ioredis (a dev tool here, not the package under test).
import fs from 'fs'
import net from 'net'
import tls from 'tls'
import Redis, { RedisOptions } from 'ioredis'
import { startRedis, stopAll, makeCerts, RedisServer } from './harness'

const clients: Redis[] = []

/** An ioredis client that fails fast instead of retrying, closed in afterEach. */
function client(srv: RedisServer, opts: RedisOptions = {}): Redis {
  const c = new Redis({
    host: srv.host,
    port: srv.port,
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    ...opts,
  })
  c.on('error', () => {}) // no unhandled 'error' events; failure() collects them where a test expects one
  clients.push(c)
  return c
}

/** Connect and PING; resolves every error message seen (connect() itself only says "Connection is closed."). */
async function failure(c: Redis): Promise<string> {
  const seen: string[] = []
  c.on('error', (e: Error) => seen.push(e.message))
  try {
    await c.connect()
    await c.ping()
  } catch (e) {
    seen.push((e as Error).message)
  }
  return seen.join('; ')
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Resolves true if a TCP connection to the port succeeds. */
function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port })
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => { s.destroy(); resolve(false) })
  })
}

afterEach(async () => {
  // Wait for 'end': ioredis' disconnect() keeps a timer until the socket has closed.
  await Promise.all(clients.splice(0).map((c) => {
    if (c.status === 'end') return undefined
    const ended = new Promise((resolve) => c.once('end', resolve))
    c.disconnect()
    return ended
  }))
})
afterAll(stopAll)

describe('plain server', () => {
  let srv: RedisServer
  beforeAll(async () => {
    srv = await startRedis()
  })

  test('answers on its own port, never 6379', async () => {
    expect(srv.host).toBe('127.0.0.1')
    expect(srv.port).not.toBe(6379)
    expect(srv.url).toBe(`redis://127.0.0.1:${srv.port}`)
    const c = client(srv)
    await c.connect()
    await c.set('k', 'v')
    expect(await c.get('k')).toBe('v')
    expect(await srv.cli('GET', 'k')).toBe('v')
    expect(await srv.cli('CONFIG', 'GET', 'dir')).toContain(srv.dir)
  })

  test('cli rejects when redis-cli fails, resolves error replies as text', async () => {
    expect(await srv.cli('NOSUCHCOMMAND')).toMatch(/^ERR unknown command/)
    const down = await startRedis()
    await down.kill()
    await expect(down.cli('PING')).rejects.toThrow(/redis-cli PING failed/)
    await down.stop()
  })

  test('restart keeps the port and the config', async () => {
    const port = srv.port
    const pid = srv.pid!
    await srv.restart()
    expect(srv.port).toBe(port)
    expect(srv.pid).not.toBe(pid)
    expect(isAlive(pid)).toBe(false)
    expect(await srv.cli('PING')).toBe('PONG')
  })

  test('kill then restart (crash and recovery)', async () => {
    const pid = srv.pid!
    await srv.kill()
    expect(srv.pid).toBeUndefined()
    expect(isAlive(pid)).toBe(false)
    expect(await canConnect(srv.port)).toBe(false)
    await srv.restart()
    expect(await srv.cli('PING')).toBe('PONG')
  })

  test('pause stops answers, resume brings them back', async () => {
    const c = client(srv, { commandTimeout: 300 })
    await c.connect()
    srv.pause()
    try {
      await expect(c.ping()).rejects.toThrow(/timed out/i)
    } finally {
      srv.resume()
    }
    expect(await c.ping()).toBe('PONG')
  })

  test('extra args reach the server', async () => {
    const s = await startRedis({ args: ['--maxmemory', '1mb', '--maxmemory-policy', 'noeviction'] })
    expect(await s.cli('CONFIG', 'GET', 'maxmemory')).toBe('maxmemory\n1048576')
    await s.stop()
  })
})

describe('password and ACL users', () => {
  let srv: RedisServer
  beforeAll(async () => {
    srv = await startRedis({
      password: 'default-secret',
      users: [
        { name: 'app', password: 'app-secret' },
        { name: 'reader', password: 'reader-secret', rules: '~* &* -@all +get +ping' },
      ],
    })
  })

  test('the URL carries no credentials', () => {
    expect(srv.url).toBe(`redis://127.0.0.1:${srv.port}`)
  })

  test('requirepass is enforced', async () => {
    // ioredis 6 opens with HELLO 3, which is what meets the NOAUTH.
    expect(await failure(client(srv))).toMatch(/NOAUTH/)
    const c = client(srv, { password: 'default-secret' })
    await c.connect()
    expect(await c.ping()).toBe('PONG')
    expect(await srv.cli('ACL', 'WHOAMI')).toBe('default')
  })

  test('ACL users can authenticate, with their rules', async () => {
    const app = client(srv, { username: 'app', password: 'app-secret' })
    await app.connect()
    expect(await app.call('ACL', 'WHOAMI')).toBe('app')
    await app.set('acl:k', 'v')
    // No ready check: its INFO is not in the reader's rules.
    const reader = client(srv, { username: 'reader', password: 'reader-secret', enableReadyCheck: false })
    await reader.connect()
    expect(await reader.get('acl:k')).toBe('v')
    await expect(reader.set('acl:k', 'w')).rejects.toThrow(/NOPERM/)
  })

  test('a wrong password fails', async () => {
    expect(await failure(client(srv, { username: 'app', password: 'wrong' }))).toMatch(/WRONGPASS/)
    expect(await failure(client(srv, { password: 'wrong' }))).toMatch(/WRONGPASS/)
  })
})

describe('TLS', () => {
  let srv: RedisServer
  beforeAll(async () => {
    srv = await startRedis({ tls: true })
  })

  test('certs are generated once per process', () => {
    expect(srv.certs).toBe(makeCerts())
    expect(srv.certs!.ca).toMatch(/^-----BEGIN CERTIFICATE-----/)
    expect(srv.certs!.key).toMatch(/PRIVATE KEY/)
    expect(srv.url).toBe(`rediss://127.0.0.1:${srv.port}`)
  })

  test('the plain port is off', async () => {
    expect(srv.port).not.toBe(0)
    expect(await srv.cli('CONFIG', 'GET', 'port')).toBe('port\n0')
  })

  test('connects with the CA (hostname 127.0.0.1 and localhost)', async () => {
    const c = client(srv, { tls: { ca: srv.certs!.ca } })
    await c.connect()
    expect(await c.ping()).toBe('PONG')
    const byName = client(srv, { host: 'localhost', tls: { ca: srv.certs!.ca } })
    await byName.connect()
    expect(await byName.ping()).toBe('PONG')
  })

  test('fails without the CA, and with an unrelated CA', async () => {
    expect(await failure(client(srv, { tls: {} }))).toMatch(/certificate/)
    expect(await failure(client(srv, { tls: { ca: srv.certs!.otherCa } }))).toMatch(/certificate/)
    expect(await failure(client(srv))).not.toBe('') // plain TCP to the TLS port
  })

  test('the wrong-host cert fails hostname verification', async () => {
    const wrong = await startRedis({ tls: { wrongHost: true } })
    const { ca } = wrong.certs!
    expect(await failure(client(wrong, { tls: { ca } }))).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list/)
    expect(await failure(client(wrong, { host: 'localhost', tls: { ca } }))).toMatch(/altnames: DNS:wrong\.example/)
    // The chain is fine: checked against the name it was issued for, the cert passes.
    const ok = client(wrong, { tls: { ca, checkServerIdentity: (_host, cert) => tls.checkServerIdentity('wrong.example', cert) } })
    await ok.connect()
    expect(await ok.ping()).toBe('PONG')
    await wrong.stop()
  })

  test('authClients yes requires a client cert signed by the CA', async () => {
    const s = await startRedis({ tls: { authClients: 'yes' }, password: 'pw' })
    const { ca, clientCert, clientKey, otherClientCert, otherClientKey } = s.certs!
    const good = client(s, { password: 'pw', tls: { ca, cert: clientCert, key: clientKey } })
    await good.connect()
    expect(await good.ping()).toBe('PONG')
    expect(await s.cli('PING')).toBe('PONG')
    // TLS 1.3: the server's refusal comes after the client's side of the handshake is done,
    // as an alert or, when the client is already writing, a reset.
    expect(await failure(client(s, { password: 'pw', tls: { ca } }))).toMatch(/certificate required|ECONNRESET/)
    expect(await failure(client(s, { password: 'pw', tls: { ca, cert: otherClientCert, key: otherClientKey } })))
      .toMatch(/unknown ca|ECONNRESET/)
    await s.stop()
  })

  test('restart keeps the TLS port', async () => {
    const port = srv.port
    await srv.restart()
    expect(srv.port).toBe(port)
    const c = client(srv, { tls: { ca: srv.certs!.ca } })
    await c.connect()
    expect(await c.ping()).toBe('PONG')
  })
})

test('cluster: the process starts with cluster mode on', async () => {
  const s = await startRedis({ cluster: true })
  expect(s.busPort).toBeGreaterThan(0)
  expect(await s.cli('CLUSTER', 'INFO')).toMatch(/cluster_state:fail/)
  expect(await s.cli('CLUSTER', 'MYID')).toMatch(/^[0-9a-f]{40}$/)
  await s.stop()
})

test('a server that cannot start fails fast with its output', async () => {
  await expect(startRedis({ args: ['--no-such-option', 'x'] })).rejects.toThrow(/exited during startup[\s\S]*Bad directive/)
})

test('stop leaves nothing running', async () => {
  const a = await startRedis()
  const b = await startRedis({ tls: true, password: 'x' })
  const pids = [a.pid!, b.pid!]
  b.pause() // stop() must also end a paused server
  expect(pids.every(isAlive)).toBe(true)
  await stopAll()
  expect(pids.some(isAlive)).toBe(false)
  expect(fs.existsSync(a.dir)).toBe(false)
  expect(fs.existsSync(b.dir)).toBe(false)
  expect(await canConnect(a.port)).toBe(false)
  expect(await canConnect(b.port)).toBe(false)
})
