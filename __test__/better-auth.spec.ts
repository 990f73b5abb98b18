// @atlas-erp/redis/better-auth with the real better-auth 1.7 package against a
// real redis-server: redisSecondaryStorage under Better Auth's own flows (sign
// up, sign in, getSession, list, revoke, sign out, its rate limiter), and
// sessionVerifier compared side by side with auth.api.getSession.
//
// The test auth leaves Better Auth's session settings at their defaults:
// - the cookie cache is off (it is by default), so getSession reads secondary
//   storage on every call, as the verifier does;
// - session refresh (updateAge, one day by default) only rewrites a session
//   older than a day: the sessions here are seconds old, so getSession returns
//   them unchanged and the two can be compared field by field. (The verifier
//   never refreshes: it is read-only; Better Auth's own endpoints refresh.)
import { createHmac } from 'crypto'
import { betterAuth } from 'better-auth'
import { memoryAdapter } from 'better-auth/adapters/memory'
import { RedisClient } from '../lib'
import { redisSecondaryStorage, sessionVerifier } from '../lib/sessions/better-auth'
import type { RedisSecondaryStorage } from '../lib/sessions/better-auth'
import { startRedis, stopAll, RedisServer } from './harness'
import { closeAll, connect, ns, rejection, sleep } from './helpers'

const SECRET = 'a-test-secret-of-at-least-32-characters-0123456789'
const BASE_URL = 'http://localhost:3000'

let srv: RedisServer
let client: RedisClient
let other: RedisClient // a second API instance

beforeAll(async () => {
  srv = await startRedis()
  client = await connect(srv.url)
  other = await connect(srv.url)
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

/**
 * `toMatchSession(expected)`: toEqual, plus the same keys (none missing, none
 * extra, none undefined on one side only) and the same kind of value at every
 * key (a Date where getSession has a Date, a string where it has a string).
 * Not toStrictEqual: Better Auth's dates come out of structuredClone, which
 * under jest makes them Dates of the outer realm (in an app there is one realm).
 */
function kinds(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return typeof v
  const tag = Object.prototype.toString.call(v)
  if (tag !== '[object Object]') return tag
  const entries: Array<[string, unknown]> = Object.entries(v as object).map(([k, x]) => [k, kinds(x)])
  return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : 1)))
}
expect.extend({
  toMatchSession(received: unknown, expected: unknown) {
    const same = this.equals(received, expected) && JSON.stringify(kinds(received)) === JSON.stringify(kinds(expected))
    return {
      pass: same,
      message: () =>
        `expected ${this.utils.printReceived(received)} ${same ? 'not ' : ''}to match ${this.utils.printExpected(expected)}\n` +
        `kinds: ${JSON.stringify(kinds(received))} vs ${JSON.stringify(kinds(expected))}`,
    }
  },
})
declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace jest {
    interface Matchers<R> {
      toMatchSession(expected: unknown): R
    }
  }
}

/** Round trips and commands spent by `fn`. */
async function cost<T>(c: RedisClient, fn: () => Promise<T>): Promise<{ value: T; commands: number; batches: number }> {
  const s0 = c.stats()
  const value = await fn()
  const s1 = c.stats()
  return { value, commands: s1.commands - s0.commands, batches: s1.batches - s0.batches }
}

// ---- the adapter on its own ------------------------------------------------------------------

describe('redisSecondaryStorage', () => {
  let storage: RedisSecondaryStorage
  beforeAll(() => {
    storage = redisSecondaryStorage(client)
  })

  test('get, set without ttl (no expiry), set with ttl (seconds), delete', async () => {
    const k = ns('k')
    expect(await storage.get(k)).toBeNull()
    await storage.set(k, 'v1')
    expect(await storage.get(k)).toBe('v1')
    expect(await client.get(`better-auth:${k}`)).toBe('v1')
    expect(await client.ttl(`better-auth:${k}`)).toBe(-1)
    await storage.set(k, 'v2', 120)
    expect(await storage.get(k)).toBe('v2')
    const ttl = await client.ttl(`better-auth:${k}`)
    expect(ttl).toBeGreaterThanOrEqual(119)
    expect(ttl).toBeLessThanOrEqual(120)
    await storage.set(k, 'v3', 1.5) // fractions keep their milliseconds
    const pttl = await client.pttl(`better-auth:${k}`)
    expect(pttl).toBeGreaterThan(1400)
    expect(pttl).toBeLessThanOrEqual(1500)
    await storage.delete(k)
    expect(await storage.get(k)).toBeNull()
    await storage.delete(k) // deleting nothing is fine
  })

  test('a ttl of 0 or less deletes instead of storing for ever', async () => {
    for (const ttl of [0, -1, -3600, -0.5]) {
      const k = ns('zero')
      await storage.set(k, 'old', 60)
      await storage.set(k, 'new', ttl)
      expect(await storage.get(k)).toBeNull()
      expect(await client.exists(`better-auth:${k}`)).toBe(0)
    }
  })

  test('getAndDelete returns the value and removes it, atomically: one of many concurrent callers gets it', async () => {
    const k = ns('gad')
    expect(await storage.getAndDelete(k)).toBeNull()
    await storage.set(k, 'once', 60)
    const got = await Promise.all([storage.getAndDelete(k), storage.getAndDelete(k), other.get(`better-auth:${k}`)])
    expect(got.filter((v) => v === 'once')).toHaveLength(1)
    expect(got.slice(0, 2)).toContain(null)
    expect(await storage.get(k)).toBeNull()
  })

  test('increment: a new counter is 1 with the ttl; the ttl is only set on creation; atomic across instances', async () => {
    const k = ns('inc')
    const key = `better-auth:${k}`
    expect(await storage.increment(k, 10)).toBe(1)
    const first = await client.pttl(key)
    expect(first).toBeGreaterThan(9000)
    expect(first).toBeLessThanOrEqual(10_000)
    await sleep(120)
    expect(await storage.increment(k, 10)).toBe(2)
    const second = await client.pttl(key)
    expect(second).toBeLessThanOrEqual(first - 100) // not reset

    const k2 = ns('inc-many')
    const s2 = redisSecondaryStorage(other)
    const counts = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? storage : s2).increment(k2, 60)))
    expect(counts.sort((x, y) => x - y)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
    expect(await client.ttl(`better-auth:${k2}`)).toBeGreaterThan(55)

    // a counter that somehow lost its expiry gets one back rather than blocking for ever
    const k3 = ns('inc-noexpiry')
    await client.set(`better-auth:${k3}`, '41')
    expect(await storage.increment(k3, 30)).toBe(42)
    expect(await client.ttl(`better-auth:${k3}`)).toBeGreaterThan(25)
  })

  test('a counter expires after its ttl and starts again at 1', async () => {
    const k = ns('inc-expire')
    expect(await storage.increment(k, 1)).toBe(1)
    expect(await storage.increment(k, 1)).toBe(2)
    await sleep(1100)
    expect(await storage.increment(k, 1)).toBe(1)
  })

  test('listKeys and clear cover the prefix only (SCAN, glob characters escaped), never FLUSHDB', async () => {
    const prefix = `${ns('ba')}[x]*?:`
    const s = redisSecondaryStorage(client, { keyPrefix: prefix })
    const mine = Array.from({ length: 1200 }, (_, i) => `key-${i}`)
    await Promise.all(mine.map((k) => s.set(k, 'v', 600)))
    // look-alikes that a raw glob of the prefix would match
    const lookAlikes = [`${prefix.replace('[x]', 'x')}key-0`, `${prefix.replace('*?', 'zz')}key-0`, `${prefix.slice(0, -1)}`, 'unrelated']
    for (const k of lookAlikes) await client.set(k, 'keep')
    const listed = await s.listKeys()
    expect(listed.sort()).toEqual([...mine].sort())
    const s0 = client.stats().commands
    await s.clear()
    expect(client.stats().commands - s0).toBeGreaterThanOrEqual(1200) // one DEL per key (cluster-safe)
    expect(await s.listKeys()).toEqual([])
    for (const k of lookAlikes) expect(await client.get(k)).toBe('keep')
    await s.clear() // nothing left: fine
  })

  test("keys carry the client's keyPrefix too; listKeys returns them without either prefix", async () => {
    const p = await connect({ url: srv.url, keyPrefix: 'tenant9:' })
    const s = redisSecondaryStorage(p, { keyPrefix: 'auth:' })
    await s.set('session-x', '{"a":1}', 60)
    expect(await client.get('tenant9:auth:session-x')).toBe('{"a":1}')
    expect(await s.increment('rl', 60)).toBe(1)
    expect(await client.get('tenant9:auth:rl')).toBe('1')
    expect((await s.listKeys()).sort()).toEqual(['rl', 'session-x'])
    await s.clear()
    expect(await client.exists('tenant9:auth:session-x', 'tenant9:auth:rl')).toBe(0)
  })

  test('takes a RedisService-like { client } too', async () => {
    const s = redisSecondaryStorage({ client })
    const k = ns('svc')
    await s.set(k, 'x', 10)
    expect(await s.get(k)).toBe('x')
  })

  test('bad arguments reject with ERR_INVALID_ARGUMENT before any I/O', async () => {
    const before = client.stats().commands
    const calls: Array<Promise<unknown>> = [
      storage.get(42 as any),
      storage.get(''),
      storage.set(undefined as any, 'v'),
      storage.set('k', 42 as any),
      storage.set('k', null as any),
      storage.set('k', 'v', NaN),
      storage.set('k', 'v', Infinity),
      storage.set('k', 'v', '60' as any),
      storage.delete({} as any),
      storage.getAndDelete(null as any),
      storage.increment('k', 0),
      storage.increment('k', -1),
      storage.increment('k', 1.5),
      storage.increment('k', NaN),
      storage.increment('k', undefined as any),
      storage.increment(7 as any, 10),
      redisSecondaryStorage(client, { keyPrefix: '' }).clear(),
    ]
    for (const p of calls) expect(await rejection(p)).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(client.stats().commands).toBe(before)
    const bad = [
      () => redisSecondaryStorage({} as any),
      () => redisSecondaryStorage(client, { prefix: 'x' } as any),
      () => redisSecondaryStorage(client, { keyPrefix: 5 } as any),
    ]
    for (const f of bad) expect(f).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})

// ---- with Better Auth ---------------------------------------------------------------------------

/** The storage, recording what Better Auth asked of it. */
function recorded(storage: RedisSecondaryStorage) {
  const sets: Array<{ key: string; ttl: number | undefined }> = []
  const increments: Array<{ key: string; ttl: number }> = []
  return {
    sets,
    increments,
    storage: {
      ...storage,
      set: (key: string, value: string, ttl?: number) => {
        sets.push({ key, ttl })
        return storage.set(key, value, ttl)
      },
      increment: (key: string, ttl: number) => {
        increments.push({ key, ttl })
        return storage.increment(key, ttl)
      },
    },
  }
}

// Compile-time: the adapter is a Better Auth SecondaryStorage (checked by `tsc -p __test__`).
type BetterAuthSecondaryStorage = NonNullable<Parameters<typeof betterAuth>[0]['secondaryStorage']>
export const isSecondaryStorage = (c: RedisClient): BetterAuthSecondaryStorage => redisSecondaryStorage(c)

function makeAuth(storage: unknown, overrides: Record<string, unknown> = {}) {
  const db = { user: [], session: [], account: [], verification: [] }
  return betterAuth({
    baseURL: BASE_URL,
    secret: SECRET,
    database: memoryAdapter(db),
    secondaryStorage: storage as any,
    emailAndPassword: { enabled: true },
    logger: { disabled: true },
    user: {
      additionalFields: {
        department: { type: 'string', required: false },
        internalNote: { type: 'string', required: false, returned: false },
      },
    },
    rateLimit: {
      enabled: true,
      window: 60,
      max: 1000,
      customRules: { '/sign-in/email': { window: 10, max: 3 } },
    },
    ...overrides,
  } as any)
}

type Auth = ReturnType<typeof makeAuth>

/** The session cookie (`name=value`) from a response's Set-Cookie headers. */
function sessionCookie(headers: Headers, name = 'better-auth.session_token'): string {
  const c = headers.getSetCookie().find((h) => h.startsWith(`${name}=`))
  if (!c) throw new Error(`no ${name} cookie in ${JSON.stringify(headers.getSetCookie())}`)
  return c.split(';')[0]
}

async function signUp(auth: Auth, email: string, extra: Record<string, unknown> = {}) {
  const r = await auth.api.signUpEmail({ body: { email, password: 'correct horse battery', name: 'Ada', ...extra } as any, returnHeaders: true })
  return { cookie: sessionCookie(r.headers), token: r.response.token as string, userId: r.response.user.id as string }
}

async function signIn(auth: Auth, email: string) {
  const r = await auth.api.signInEmail({ body: { email, password: 'correct horse battery' }, returnHeaders: true })
  return { cookie: sessionCookie(r.headers), token: r.response.token as string }
}

const getSession = (auth: Auth, cookie: string) => auth.api.getSession({ headers: new Headers({ cookie }) })

describe('Better Auth with redisSecondaryStorage', () => {
  test('sign up, sign in, getSession, list, revoke one, sign out: sessions live in Redis with the TTL Better Auth asked for', async () => {
    const rec = recorded(redisSecondaryStorage(client))
    const auth = makeAuth(rec.storage)
    const email = `${ns('ada')}@example.com`.replace(/:/g, '-')
    const first = await signUp(auth, email, { department: 'finance' })
    const second = await signIn(auth, email)
    expect(second.token).not.toBe(first.token)

    // getSession from each cookie
    for (const s of [first, second]) {
      const got = await getSession(auth, s.cookie)
      expect(got?.user).toMatchObject({ email, department: 'finance', id: first.userId })
      expect(got?.session.token).toBe(s.token)
    }

    // the records are in Redis under the prefix, as JSON { session, user }, with the TTL asked for
    for (const s of [first, second]) {
      const key = `better-auth:${s.token}`
      const record = JSON.parse((await client.get(key))!)
      expect(record.session.token).toBe(s.token)
      expect(record.user.email).toBe(email)
      const asked = rec.sets.find((x) => x.key === s.token)?.ttl
      // expiresIn (7 days), counted from a moment before the write, floored to seconds
      expect(asked).toBeGreaterThanOrEqual(7 * 24 * 3600 - 1)
      expect(asked).toBeLessThanOrEqual(7 * 24 * 3600)
      const ttl = await client.ttl(key)
      expect(ttl).toBeGreaterThanOrEqual(asked! - 2)
      expect(ttl).toBeLessThanOrEqual(asked!)
    }
    const listKey = `better-auth:active-sessions-${first.userId}`
    expect(JSON.parse((await client.get(listKey))!).map((x: { token: string }) => x.token).sort()).toEqual([first.token, second.token].sort())
    expect(await client.ttl(listKey)).toBeGreaterThan(7 * 24 * 3600 - 5)

    // list sessions
    const listed = await auth.api.listSessions({ headers: new Headers({ cookie: second.cookie }) })
    expect(listed.map((s: { token: string }) => s.token).sort()).toEqual([first.token, second.token].sort())

    // revoke the first from the second
    await auth.api.revokeSession({ body: { token: first.token }, headers: new Headers({ cookie: second.cookie }) })
    expect(await getSession(auth, first.cookie)).toBeNull()
    expect(await client.exists(`better-auth:${first.token}`)).toBe(0)
    expect(await getSession(auth, second.cookie)).not.toBeNull()

    // sign out
    await auth.api.signOut({ headers: new Headers({ cookie: second.cookie }) })
    expect(await getSession(auth, second.cookie)).toBeNull()
    expect(await client.exists(`better-auth:${second.token}`)).toBe(0)
  })

  test("Better Auth's rate limiter counts through increment and blocks as configured, shared by instances", async () => {
    const recA = recorded(redisSecondaryStorage(client))
    const recB = recorded(redisSecondaryStorage(other))
    const authA = makeAuth(recA.storage)
    const authB = makeAuth(recB.storage)
    const email = `${ns('rl')}@example.com`.replace(/:/g, '-')
    await signUp(authA, email)
    const attempt = (auth: Auth, ip: string) =>
      auth.handler(
        new Request(`${BASE_URL}/api/auth/sign-in/email`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
          body: JSON.stringify({ email, password: 'wrong password!' }),
        }),
      )
    // 3 per 10 s from one address, across both instances
    const statuses: number[] = []
    for (let i = 0; i < 5; i++) statuses.push((await attempt(i % 2 ? authB : authA, '203.0.113.7')).status)
    expect(statuses.slice(0, 3).every((s) => s !== 429)).toBe(true)
    expect(statuses.slice(3)).toEqual([429, 429])
    const blocked = await attempt(authA, '203.0.113.7')
    expect(blocked.status).toBe(429)
    expect(Number(blocked.headers.get('x-retry-after'))).toBeGreaterThan(0)
    // another address is not affected
    expect((await attempt(authB, '198.51.100.1')).status).not.toBe(429)

    // it went through increment, with the window as ttl, and the counter is in Redis under the prefix
    const calls = [...recA.increments, ...recB.increments]
    expect(calls.length).toBeGreaterThanOrEqual(7)
    const counterKeys = [...new Set(calls.filter((c) => c.ttl === 10).map((c) => c.key))]
    expect(counterKeys).toHaveLength(2)
    const counts = await Promise.all(counterKeys.map((k) => client.get(`better-auth:${k}`)))
    expect(counts.map(Number).sort()).toEqual([1, 6])
    for (const k of counterKeys) {
      const ttl = await client.ttl(`better-auth:${k}`)
      expect(ttl).toBeGreaterThan(0)
      expect(ttl).toBeLessThanOrEqual(10)
    }
  })
})

// ---- sessionVerifier ----------------------------------------------------------------------------

describe('sessionVerifier', () => {
  let auth: Auth
  let verifier: ReturnType<typeof sessionVerifier>
  beforeAll(() => {
    auth = makeAuth(redisSecondaryStorage(client))
    verifier = sessionVerifier(other, { secret: SECRET, hiddenFields: { user: ['internalNote'] } })
  })

  /** verify() and getSession() for one cookie header: verify first (getSession may delete an expired session). */
  async function both(cookie: string) {
    const v = await verifier.verify(cookie)
    const g = await getSession(auth, cookie)
    return { v, g }
  }

  test('returns what getSession returns, field by field, over a sign-in / sign-out flow', async () => {
    const email = `${ns('grace')}@example.com`.replace(/:/g, '-')
    const first = await signUp(auth, email, { department: 'treasury', internalNote: 'do not show' })
    const second = await signIn(auth, email)

    for (const s of [first, second]) {
      const { v, g } = await both(s.cookie)
      expect(g).not.toBeNull()
      expect(v).toMatchSession(g)
      expect(v!.session.expiresAt).toBeInstanceOf(Date)
      expect(v!.user.createdAt).toBeInstanceOf(Date)
      expect(v!.user).not.toHaveProperty('internalNote')
      expect(v!.user.department).toBe('treasury')
    }
    // the cookie value alone, URI-encoded or not, and as a bearer token
    const value = first.cookie.slice(first.cookie.indexOf('=') + 1)
    const g1 = await getSession(auth, first.cookie)
    expect(await verifier.verify(value)).toMatchSession(g1)
    expect(await verifier.verify(decodeURIComponent(value))).toMatchSession(g1)
    expect(await verifier.verify(`Bearer ${value}`)).toMatchSession(g1)
    // among other cookies
    expect(await verifier.verify(`theme=dark; ${first.cookie}; other=1`)).toMatchSession(g1)

    // revoke the first: both say null
    await auth.api.revokeSession({ body: { token: first.token }, headers: new Headers({ cookie: second.cookie }) })
    expect(await both(first.cookie)).toEqual({ v: null, g: null })
    const still = await both(second.cookie)
    expect(still.v).toMatchSession(still.g)
    expect(still.v).not.toBeNull()

    // sign out: both null
    await auth.api.signOut({ headers: new Headers({ cookie: second.cookie }) })
    expect(await both(second.cookie)).toEqual({ v: null, g: null })
  })

  test('without hiddenFields, a returned: false field would show: the option matters', async () => {
    const email = `${ns('hidden')}@example.com`.replace(/:/g, '-')
    const s = await signUp(auth, email, { internalNote: 'secret note' })
    const plain = sessionVerifier(client, { secret: SECRET })
    const v = await plain.verify(s.cookie)
    expect(v!.user.internalNote).toBe('secret note')
    expect(await verifier.verify(s.cookie)).toMatchSession(await getSession(auth, s.cookie))
  })

  test('a session revoked by revoke-all is null even if its record survived (the "revoked before" mark)', async () => {
    const email = `${ns('mark')}@example.com`.replace(/:/g, '-')
    const s = await signUp(auth, email)
    const s2 = await signIn(auth, email)
    const record = await client.get(`better-auth:${s.token}`)
    await sleep(5) // the mark is a time: let it pass the sessions' creation
    await auth.api.revokeSessions({ headers: new Headers({ cookie: s2.cookie }) })
    expect(await client.get(`better-auth:revoked-sessions-before-${s.userId}`)).not.toBeNull()
    expect(await both(s.cookie)).toEqual({ v: null, g: null })
    // put the record back, as a racing write could: the mark still revokes it
    await client.set(`better-auth:${s.token}`, record!, 600)
    expect(await both(s.cookie)).toEqual({ v: null, g: null })
    // a session made after the mark is fine
    const s3 = await signIn(auth, email)
    const after = await both(s3.cookie)
    expect(after.v).not.toBeNull()
    expect(after.v).toMatchSession(after.g)
  })

  test('an expired session is null for both', async () => {
    const email = `${ns('old')}@example.com`.replace(/:/g, '-')
    const s = await signUp(auth, email)
    const key = `better-auth:${s.token}`
    const record = JSON.parse((await client.get(key))!)
    record.session.expiresAt = new Date(Date.now() - 1000).toISOString()
    await client.set(key, JSON.stringify(record), 600)
    expect(await both(s.cookie)).toEqual({ v: null, g: null })
  })

  test('bad signatures, other secrets, unknown and malformed cookies are null; only a well-signed cookie costs a round trip', async () => {
    const email = `${ns('bad')}@example.com`.replace(/:/g, '-')
    const s = await signUp(auth, email)
    expect(await verifier.verify(s.cookie)).not.toBeNull()
    const value = decodeURIComponent(s.cookie.slice(s.cookie.indexOf('=') + 1))
    const [token, sig] = [value.slice(0, value.lastIndexOf('.')), value.slice(value.lastIndexOf('.') + 1)]
    const flip = (str: string, i: number) => str.slice(0, i) + (str[i] === 'A' ? 'B' : 'A') + str.slice(i + 1)
    const sign = (t: string, secret = SECRET) => `${t}.${createHmac('sha256', secret).update(t).digest('base64')}`
    const name = 'better-auth.session_token'
    const noRoundTrip = [
      '',
      'garbage',
      `${name}=`,
      `${name}=${token}`, // unsigned
      `${name}=${token}.`,
      `${name}=${token}.${flip(sig, 3)}`,
      `${name}=${flip(token, 0)}.${sig}`,
      `${name}=${encodeURIComponent(sign(token, 'another secret of the same length!!!!!!!!!!!'))}`,
      `${name}=${token}.${sig.replace('=', '')}`,
      `${name}=${token}.${'-' + sig.slice(1)}`, // base64url is not base64
      `other.session_token=${encodeURIComponent(value)}`,
      `x${name}=${encodeURIComponent(value)}`,
      encodeURIComponent(value).slice(0, -3),
      `Bearer ${token}`,
      'Bearer ',
      `${name}=${encodeURIComponent(value)}; `.repeat(4000), // ~400 KB: no server sends that
      'a'.repeat(1 << 20),
      undefined as unknown as string,
      null as unknown as string,
    ]
    const { value: results, commands } = await cost(other, () => Promise.all(noRoundTrip.map((c) => verifier.verify(c))))
    expect(results).toEqual(noRoundTrip.map(() => null))
    expect(commands).toBe(0)
    for (const c of noRoundTrip.slice(0, 12)) expect(await getSession(auth, c ?? '')).toBeNull()

    // a well-signed token that is no session: one read, null (getSession agrees)
    const forged = `${name}=${encodeURIComponent(sign('NoSuchSessionToken0123456789abcd'))}`
    const r = await cost(other, () => verifier.verify(forged))
    expect(r.value).toBeNull()
    expect(r.commands).toBe(1)
    expect(await getSession(auth, forged)).toBeNull()

    // the first cookie of a name wins, as in Better Auth
    const twice = `${name}=${encodeURIComponent(sign('NoSuchSessionToken0123456789abcd'))}; ${s.cookie}`
    expect(await verifier.verify(twice)).toBeNull()
    expect(await getSession(auth, twice)).toBeNull()
  })

  test('a known token is verified in one round trip (its session and its user\'s revocation mark together)', async () => {
    const email = `${ns('fast')}@example.com`.replace(/:/g, '-')
    const s = await signUp(auth, email)
    const firstTime = await cost(other, () => verifier.verify(s.cookie))
    expect(firstTime.value).not.toBeNull()
    expect(firstTime.commands).toBe(2)
    expect(firstTime.batches).toBe(2)
    const again = await cost(other, () => verifier.verify(s.cookie))
    expect(again.value).toEqual(firstTime.value)
    expect(again.commands).toBe(2)
    expect(again.batches).toBe(1)
  })

  test('https: the __Secure- cookie of an auth on https verifies the same; cookieName and keyPrefix options', async () => {
    const storage = redisSecondaryStorage(client, { keyPrefix: 'ba2:' })
    const secureAuth = makeAuth(storage, { baseURL: 'https://erp.example.com' })
    const email = `${ns('tls')}@example.com`.replace(/:/g, '-')
    const r = await secureAuth.api.signUpEmail({ body: { email, password: 'correct horse battery', name: 'T' }, returnHeaders: true })
    const cookie = sessionCookie(r.headers, '__Secure-better-auth.session_token')
    expect(await client.exists(`ba2:${r.response.token}`)).toBe(1)
    const g = await secureAuth.api.getSession({ headers: new Headers({ cookie }) })
    expect(g).not.toBeNull()
    expect(await sessionVerifier(client, { secret: SECRET, keyPrefix: 'ba2:', hiddenFields: { user: ['internalNote'] } }).verify(cookie)).toMatchSession(g)
    // the default keyPrefix does not find it
    expect(await verifier.verify(cookie)).toBeNull()
    // an exact cookie name only reads that cookie
    const exact = sessionVerifier(client, { secret: SECRET, keyPrefix: 'ba2:', cookieName: '__Secure-better-auth.session_token', hiddenFields: { user: ['internalNote'] } })
    expect(await exact.verify(cookie)).toMatchSession(g)
    expect(await exact.verify(cookie.replace('__Secure-', ''))).toBeNull()
    const custom = sessionVerifier(client, { secret: SECRET, keyPrefix: 'ba2:', cookieName: 'erp.sid' })
    expect(await custom.verify(cookie)).toBeNull()
    expect(await custom.verify(cookie.replace('__Secure-better-auth.session_token', '__Secure-erp.sid'))).not.toBeNull()
  })

  test('bad options throw ERR_INVALID_ARGUMENT; a non-string input rejects with it', async () => {
    const bad = [
      () => sessionVerifier(client, undefined as any),
      () => sessionVerifier(client, {} as any),
      () => sessionVerifier(client, { secret: '' }),
      () => sessionVerifier(client, { secret: 42 as any }),
      () => sessionVerifier(client, { secret: SECRET, cookie: 'x' } as any),
      () => sessionVerifier(client, { secret: SECRET, cookieName: 'a;b' }),
      () => sessionVerifier(client, { secret: SECRET, keyPrefix: null as any }),
      () => sessionVerifier(client, { secret: SECRET, hiddenFields: { user: 'x' } as any }),
      () => sessionVerifier(null as any, { secret: SECRET }),
    ]
    for (const f of bad) expect(f).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(await rejection(verifier.verify(42 as any))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(await rejection(verifier.verify({ cookie: 'x' } as any))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })

  test('a Redis failure rejects with its code (a guard then answers 503, not 401)', async () => {
    const c = await connect(srv.url)
    const v = sessionVerifier(c, { secret: SECRET })
    const email = `${ns('down')}@example.com`.replace(/:/g, '-')
    const s = await signUp(auth, email)
    await c.close()
    expect(await rejection(v.verify(s.cookie))).toMatchObject({ code: 'ERR_CLOSED' })
  })
})
