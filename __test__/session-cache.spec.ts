// Sessions with client-side caching: a repeated verify()/check() of a live session
// is served from process memory, and a sign-out or revoke on one instance reaches
// every other instance's copy within 50 ms.
import { betterAuth } from 'better-auth'
import { memoryAdapter } from 'better-auth/adapters/memory'

import { RedisClient } from '../lib'
import { redisSecondaryStorage, sessionVerifier } from '../lib/sessions/better-auth'
import { RedisServer, startRedis, stopAll } from './harness'

// These cases depend on wall-clock timing against a live server (window edges, a 50 ms
// propagation bound); on a loaded 2-core CI machine a late timer can miss one, so a
// failure is retried (and logged) before it counts.
jest.retryTimes(2, { logErrorsBeforeRetry: true })

const SECRET = 'a-test-secret-of-at-least-32-characters-0123456789'
let srv: RedisServer
const open: RedisClient[] = []

async function connect(prefixes: string[]): Promise<RedisClient> {
  const c = await RedisClient.connect({ url: srv.url, clientCache: { prefixes } })
  open.push(c)
  return c
}

beforeAll(async () => {
  srv = await startRedis()
})
afterAll(async () => {
  await Promise.all(open.map((c) => c.close()))
  await stopAll()
})

/** Calls `read` until it resolves null; how long that took after `since`. */
async function msUntilNull(read: () => Promise<unknown>, since: bigint): Promise<number> {
  for (;;) {
    const v = await read()
    const ms = Number(process.hrtime.bigint() - since) / 1e6
    if (v === null) return ms
    if (ms > 1000) return ms
  }
}

test('client.sessions.check: from memory after the first read; a revoke elsewhere reaches this copy within 50 ms', async () => {
  const a = await connect(['sess:t:'])
  const b = await connect(['sess:t:'])
  const { token } = await a.sessions.create('user-1', { role: 'accountant' }, 3600)
  expect(await a.sessions.check(token)).toMatchObject({ userId: 'user-1', data: { role: 'accountant' } })
  expect(await b.sessions.check(token)).toMatchObject({ userId: 'user-1' })
  const [ca, cb] = [a.stats().commands, b.stats().commands]
  for (let i = 0; i < 50; i++) {
    expect(await a.sessions.check(token)).toMatchObject({ userId: 'user-1' })
    expect(await b.sessions.check(token)).toMatchObject({ userId: 'user-1' })
  }
  expect(a.stats().commands).toBe(ca) // no round trip
  expect(b.stats().commands).toBe(cb)

  // Timed from the moment the revoke is acknowledged on A.
  expect(await a.sessions.revoke(token)).toBe(true)
  const start = process.hrtime.bigint()
  const ms = await msUntilNull(() => b.sessions.check(token), start)
  expect(ms).toBeLessThan(50)
  expect(await b.sessions.check(token)).toBeNull()
})

test('a check that must slide still goes to the server, once per step', async () => {
  const a = await connect(['sess:t:'])
  const { token, expiresAt } = await a.sessions.create('user-2', {}, 60)
  await new Promise((r) => setTimeout(r, 1100))
  const before = a.stats().commands
  const s = await a.sessions.check(token, { slideSeconds: 60 })
  expect(a.stats().commands).toBeGreaterThan(before) // the slide was written
  expect(s!.expiresAt.getTime()).toBeGreaterThan(expiresAt.getTime())
  const after = a.stats().commands
  await a.ping() // let the invalidation of our own write arrive
  await a.sessions.check(token, { slideSeconds: 60 }) // reloads the new value once
  const settled = a.stats().commands
  expect(await a.sessions.check(token, { slideSeconds: 60 })).not.toBeNull()
  expect(a.stats().commands).toBe(settled) // within the step: from memory
  expect(settled - after).toBeLessThanOrEqual(2)
})

test('Better Auth: verify() is served from memory; a sign-out on one instance reaches the other within 50 ms', async () => {
  const a = await connect(['better-auth:'])
  const b = await connect(['better-auth:'])
  const db = { user: [], session: [], account: [], verification: [] }
  const authA = betterAuth({
    baseURL: 'http://localhost:3000',
    secret: SECRET,
    database: memoryAdapter(db),
    secondaryStorage: redisSecondaryStorage(a),
    emailAndPassword: { enabled: true },
    logger: { disabled: true },
  } as any)
  const r = await authA.api.signUpEmail({
    body: { email: 'ada@example.com', password: 'correct horse battery', name: 'Ada' } as any,
    returnHeaders: true,
  })
  const cookie = r.headers.getSetCookie().find((h: string) => h.startsWith('better-auth.session_token='))!.split(';')[0]
  const verifyB = sessionVerifier(b, { secret: SECRET })
  const first = await verifyB.verify(cookie)
  expect(first?.user.email).toBe('ada@example.com')
  await verifyB.verify(cookie)
  const cb = b.stats().commands
  for (let i = 0; i < 50; i++) expect((await verifyB.verify(cookie))?.session.token).toBe(r.response.token)
  expect(b.stats().commands).toBe(cb) // from memory

  // Timed from the moment the sign-out has answered on A.
  await authA.api.signOut({ headers: new Headers({ cookie }) })
  const start = process.hrtime.bigint()
  const ms = await msUntilNull(() => verifyB.verify(cookie), start)
  expect(ms).toBeLessThan(50)
  expect(await verifyB.verify(cookie)).toBeNull()
})
