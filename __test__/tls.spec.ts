// TLS: CA verification, hostname verification (and servername), client
// certificates, rediss:// URLs.
import { RedisClient, ENV_VARS } from '../lib'
import { startRedis, stopAll, RedisServer } from './harness'
import { attempt, closeAll, connect, ns, track } from './helpers'

let srv: RedisServer // localhost cert (SAN localhost, 127.0.0.1), client certs optional
let wrong: RedisServer // cert whose only SAN is DNS:wrong.example
let mtls: RedisServer // tls-auth-clients yes

beforeAll(async () => {
  ;[srv, wrong, mtls] = await Promise.all([
    startRedis({ tls: true }),
    startRedis({ tls: { wrongHost: true } }),
    startRedis({ tls: { authClients: 'yes' }, password: 'mtls-pw' }),
  ])
})
afterEach(closeAll)
afterAll(stopAll)

test('with tls: { ca } it works (by IP and by name)', async () => {
  const { ca } = srv.certs!
  const c = await connect({ host: '127.0.0.1', port: srv.port, tls: { ca } })
  const k = ns('tls') + 'k'
  await c.set(k, 'over tls')
  expect(await c.get(k)).toBe('over tls')
  expect(await srv.cli('GET', k)).toBe('over tls')
  const byName = await connect({ host: 'localhost', port: srv.port, tls: { ca: Buffer.from(ca) } })
  expect(await byName.get(k)).toBe('over tls')
  // a large value through the TLS stream, both ways
  const big = Buffer.alloc(2 * 1024 * 1024, 7)
  big[12345] = 1
  await c.set(k + ':big', big)
  expect((await byName.getBuffer(k + ':big'))!.equals(big)).toBe(true)
})

test('rediss:// URL with the ca option', async () => {
  const c = await connect({ url: srv.url, tls: { ca: srv.certs!.ca } })
  expect(await c.ping()).toBeGreaterThan(0)
  const viaTrue = await attempt({ url: srv.url, tls: true })
  expect(viaTrue).toMatchObject({ code: 'ERR_TLS' })
})

test('without the CA (default roots) → ERR_TLS', async () => {
  for (const opts of [srv.url, { port: srv.port, tls: true }, { port: srv.port, tls: {} }]) {
    const e = await attempt(opts as any)
    expect(e).toMatchObject({ code: 'ERR_TLS' })
    expect(e.message).toContain(`127.0.0.1:${srv.port}`)
  }
})

test('an unrelated CA → ERR_TLS', async () => {
  expect(await attempt({ port: srv.port, tls: { ca: srv.certs!.otherCa } })).toMatchObject({
    code: 'ERR_TLS',
  })
})

test('REDIS_TLS=true from the environment turns TLS on (default roots → ERR_TLS)', async () => {
  const saved = Object.fromEntries(ENV_VARS.map((k) => [k, process.env[k]]))
  for (const k of ENV_VARS) delete process.env[k]
  process.env.REDIS_HOST = '127.0.0.1'
  process.env.REDIS_PORT = String(srv.port)
  process.env.REDIS_TLS = 'true'
  try {
    expect(await attempt()).toMatchObject({ code: 'ERR_TLS' })
  } finally {
    for (const k of ENV_VARS) {
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
    }
  }
})

test('plain TCP to a TLS port fails (no hang)', async () => {
  const e = await attempt({ port: srv.port, connectTimeoutMs: 2000 })
  expect(e).toMatchObject({ code: expect.stringMatching(/^ERR_(CONNECTION|TLS)$/) })
})

test('rejectUnauthorized: false accepts any certificate', async () => {
  const c = await connect({ port: wrong.port, tls: { rejectUnauthorized: false } })
  expect(await c.ping()).toBeGreaterThan(0)
})

test('wrong-host certificate: ERR_TLS unless servername matches it', async () => {
  const { ca } = wrong.certs!
  const byIp = await attempt({ port: wrong.port, tls: { ca } })
  expect(byIp).toMatchObject({ code: 'ERR_TLS' })
  const byName = await attempt({ host: 'localhost', port: wrong.port, tls: { ca } })
  expect(byName).toMatchObject({ code: 'ERR_TLS' })
  const otherName = await attempt({ port: wrong.port, tls: { ca, servername: 'right.example' } })
  expect(otherName).toMatchObject({ code: 'ERR_TLS' })
  // The chain is fine: checked against the name it was issued for, the cert passes.
  const ok = await connect({ host: '127.0.0.1', port: wrong.port, tls: { ca, servername: 'wrong.example' } })
  const k = ns('sni') + 'k'
  await ok.set(k, 'v')
  expect(await ok.get(k)).toBe('v')
  // and through a rediss:// URL
  const viaUrl = await connect({ url: wrong.url, tls: { ca, servername: 'wrong.example' } })
  expect(await viaUrl.get(k)).toBe('v')
})

test('tls-auth-clients yes: works with cert+key', async () => {
  const { ca, clientCert, clientKey } = mtls.certs!
  const c = await connect({ port: mtls.port, password: 'mtls-pw', tls: { ca, cert: clientCert, key: clientKey } })
  const k = ns('mtls') + 'k'
  await c.set(k, 'mutual')
  expect(await c.get(k)).toBe('mutual')
  const viaBuffers = await connect({
    url: mtls.url,
    password: 'mtls-pw',
    tls: { ca: Buffer.from(ca), cert: Buffer.from(clientCert), key: Buffer.from(clientKey) },
  })
  expect(await viaBuffers.get(k)).toBe('mutual')
})

test('tls-auth-clients yes: without a client cert → ERR_TLS', async () => {
  const e = await attempt({ port: mtls.port, password: 'mtls-pw', tls: { ca: mtls.certs!.ca }, connectTimeoutMs: 2000 })
  expect(e).toMatchObject({ code: 'ERR_TLS' })
  expect(e.message).not.toContain('mtls-pw')
})

test('tls-auth-clients yes: a client cert from another CA → ERR_TLS', async () => {
  const { ca, otherClientCert, otherClientKey } = mtls.certs!
  const e = await attempt({
    port: mtls.port,
    password: 'mtls-pw',
    tls: { ca, cert: otherClientCert, key: otherClientKey },
    connectTimeoutMs: 2000,
  })
  expect(e).toMatchObject({ code: 'ERR_TLS' })
})

test('unusable TLS material is refused with a clear code, never a hang', async () => {
  const bad = [
    { ca: 'not a pem' },
    { ca: srv.certs!.ca, cert: 'not a pem', key: 'not a pem' },
    { ca: srv.certs!.ca, cert: srv.certs!.clientCert, key: srv.certs!.otherClientKey }, // mismatched pair
  ]
  for (const tls of bad) {
    const e = await attempt({ port: srv.port, tls, connectTimeoutMs: 2000 })
    expect(e).toMatchObject({ code: expect.stringMatching(/^ERR_(TLS|INVALID_ARGUMENT)$/) })
    // key material is never echoed
    expect(e.message).not.toContain('PRIVATE KEY')
  }
})
