// client.sessions against a real redis-server: tokens never reach Redis, check()
// is one round trip, revocation reaches every instance, expiry, sliding, the
// per-user index (list, revokeAll, pruning), and argument checks before any I/O.
import { createHash } from 'crypto'
import { RedisClient, Sessions } from '../lib'
import { parseStored, tokenId } from '../lib/sessions/sessions'
import { startRedis, stopAll, RedisServer } from './harness'
import { closeAll, connect, ns, rejection, sleep } from './helpers'

let srv: RedisServer
let a: RedisClient // two API instances
let b: RedisClient

beforeAll(async () => {
  srv = await startRedis()
  a = await connect(srv.url)
  b = await connect(srv.url)
})
afterAll(async () => {
  await a.sessions.settled()
  await b.sessions.settled()
  await closeAll()
  await stopAll()
})

/** Every key of the server with a dump of its value (strings, hashes, sorted sets). */
async function dumpAll(c: RedisClient): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = []
  for await (const key of c.scan({ count: 1000 })) {
    const type = await c.command('TYPE', key)
    let value: unknown
    if (type === 'string') value = await c.get(key)
    else if (type === 'hash') value = await c.hgetall(key)
    else if (type === 'zset') value = await c.command('ZRANGE', key, 0, -1, 'WITHSCORES')
    else if (type === 'set') value = await c.smembers(key)
    else value = type
    out.push([key, JSON.stringify(value)])
  }
  return out
}

/** Round trips and commands spent by `fn`. */
async function cost<T>(c: RedisClient, fn: () => Promise<T>): Promise<{ value: T; commands: number; batches: number }> {
  const s0 = c.stats()
  const value = await fn()
  const s1 = c.stats()
  return { value, commands: s1.commands - s0.commands, batches: s1.batches - s0.batches }
}

const serverMs = async () => {
  const [s, us] = (await a.command('TIME')) as [string, string]
  return Number(s) * 1000 + Math.floor(Number(us) / 1000)
}

describe('create and check', () => {
  test('a token is 32 random bytes in base64url; check returns the session in one round trip', async () => {
    const user = ns('alice')
    const before = await serverMs()
    const { token, expiresAt } = await a.sessions.create(user, { role: 'accountant', tenant: 7 }, 3600)
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(Buffer.from(token, 'base64url')).toHaveLength(32)
    expect(Buffer.from(token, 'base64url').toString('base64url')).toBe(token)
    expect(expiresAt.getTime()).toBeGreaterThanOrEqual(before + 3600_000)
    expect(expiresAt.getTime()).toBeLessThan(before + 3600_000 + 2000)

    await a.sessions.check(token) // the script is loaded (EVALSHA from here on)
    const { value: s, commands, batches } = await cost(b, () => b.sessions.check(token))
    expect(commands).toBe(1)
    expect(batches).toBe(1)
    expect(s).toEqual({
      id: createHash('sha256').update(token).digest('base64url'),
      userId: user,
      data: { role: 'accountant', tenant: 7 },
      createdAt: expect.any(Date),
      expiresAt,
    })
    expect(s!.createdAt.getTime()).toBeGreaterThanOrEqual(before)
    expect(s!.createdAt.getTime()).toBeLessThanOrEqual(expiresAt.getTime() - 3600_000)
  })

  test('two creates give two different tokens; each checks to its own data', async () => {
    const user = ns('bob')
    const [x, y] = await Promise.all([a.sessions.create(user, 'x', 60), a.sessions.create(user, ['y'], 60)])
    expect(x.token).not.toBe(y.token)
    expect((await a.sessions.check(x.token))!.data).toBe('x')
    expect((await a.sessions.check(y.token))!.data).toEqual(['y'])
  })

  test('an unknown well-formed token is null (one round trip)', async () => {
    const token = Buffer.alloc(32, 7).toString('base64url')
    const { value, commands } = await cost(a, () => a.sessions.check(token))
    expect(value).toBeNull()
    expect(commands).toBe(1)
  })

  test('malformed tokens are null without a round trip', async () => {
    const { token } = await a.sessions.create(ns('u'), {}, 60)
    const lastBitsSet = token.slice(0, 42) + 'B' // decodes to the same 32 bytes, but is not canonical
    const malformed = [
      '',
      'x',
      token.slice(0, 42),
      token + 'A',
      token.slice(0, 42) + '+',
      token.slice(0, 42) + '=',
      `${token.slice(0, 40)}/${token.slice(41)}`,
      `${token.slice(0, 20)} ${token.slice(21)}`,
      Buffer.alloc(32).toString('base64') + '=',
      lastBitsSet,
      'A'.repeat(1024 * 1024),
      undefined as unknown as string,
      null as unknown as string,
    ]
    const { value, commands } = await cost(a, () => Promise.all(malformed.map((t) => a.sessions.check(t))))
    expect(value).toEqual(malformed.map(() => null))
    expect(commands).toBe(0)
    const { value: touched, commands: c2 } = await cost(a, () =>
      Promise.all([a.sessions.touch('nope', 10), a.sessions.revoke('A'.repeat(1 << 20)), a.sessions.revokeById('u', 'short')]),
    )
    expect(touched).toEqual([false, false, false])
    expect(c2).toBe(0)
    expect(await a.sessions.check(token)).not.toBeNull()
  })

  test('bad arguments reject with ERR_INVALID_ARGUMENT before any I/O', async () => {
    const { token } = await a.sessions.create(ns('u'), {}, 60)
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    const before = a.stats().commands
    const calls: Array<Promise<unknown>> = [
      a.sessions.create('', {}, 60),
      a.sessions.create(42 as any, {}, 60),
      a.sessions.create('u', {}, 0),
      a.sessions.create('u', {}, -5),
      a.sessions.create('u', {}, 1.5),
      a.sessions.create('u', {}, NaN),
      a.sessions.create('u', {}, '60' as any),
      a.sessions.create('u', {}, 2 ** 40),
      a.sessions.create('u', cyclic, 60),
      a.sessions.create('u', undefined, 60),
      a.sessions.create('u', () => 1, 60),
      a.sessions.create('u', { n: 10n } as any, 60),
      a.sessions.check(token, { slideSeconds: 0 }),
      a.sessions.check(token, { slideSeconds: -1 }),
      a.sessions.check(token, { slide: 10 } as any),
      a.sessions.check(token, null as any),
      a.sessions.check(42 as any),
      a.sessions.check({ token } as any),
      a.sessions.touch(token, 0),
      a.sessions.touch(token, -10),
      a.sessions.touch(Buffer.from(token) as any, 10),
      a.sessions.revoke(7 as any),
      a.sessions.revokeAll(''),
      a.sessions.revokeAll(undefined as any),
      a.sessions.list(''),
      a.sessions.list({} as any),
      a.sessions.revokeById('', 'x'),
      a.sessions.revokeById('u', 5 as any),
    ]
    for (const p of calls) expect(await rejection(p)).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(a.stats().commands).toBe(before)
    expect(() => new Sessions(a, { prefix: 'a{b' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => new Sessions(a, { prefx: 'x' } as any)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  test('client.sessions is one object per client', () => {
    expect(a.sessions).toBe(a.sessions)
    expect(a.sessions).not.toBe(b.sessions)
  })
})

describe('what Redis holds', () => {
  test('after a full flow, no key and no value holds a raw token', async () => {
    const user = ns('carol')
    const tokens: string[] = []
    for (let i = 0; i < 4; i++) tokens.push((await a.sessions.create(user, { device: `d${i}` }, 600)).token)
    await b.sessions.check(tokens[0], { slideSeconds: 3000 }) // slides past the bound: raises it
    await b.sessions.settled()
    await a.sessions.touch(tokens[1], 7200)
    await a.sessions.list(user)
    await b.sessions.revoke(tokens[2])
    const dump = await dumpAll(a)
    const everything = dump.map(([k, v]) => `${k}\n${v}`).join('\n')
    for (const t of tokens) {
      expect(everything).not.toContain(t)
      // not even in another encoding
      expect(everything).not.toContain(Buffer.from(t, 'base64url').toString('hex'))
      expect(everything).not.toContain(Buffer.from(t, 'base64url').toString('base64'))
    }
    // what is there: the hashes, as keys and index members
    const keys = dump.map(([k]) => k)
    expect(keys).toContain(`sess:t:{${tokenId(tokens[0])}}`)
    expect(keys).not.toContain(`sess:t:{${tokenId(tokens[2])}}`)
    const index = dump.find(([k]) => k === `sess:u:{${user}}`)
    expect(index).toBeDefined()
    for (const t of [tokens[0], tokens[1], tokens[3]]) expect(index![1]).toContain(tokenId(t))
    expect(index![1]).not.toContain(tokenId(tokens[2]))
  })

  test('a plain GET reads a whole session (what a client-side cache would hold)', async () => {
    const user = ns('get')
    const { token } = await a.sessions.create(user, { a: [1, 2] }, 60)
    const viaCheck = await a.sessions.check(token)
    const stored = parseStored(await b.get(`sess:t:{${tokenId(token)}}`))
    expect(stored).toMatchObject({ userId: user, data: { a: [1, 2] }, e: viaCheck!.expiresAt.getTime() })
    expect(Math.floor(stored!.c / 1000)).toBe(viaCheck!.createdAt.getTime())
  })

  test('keys are hash-tagged: a session by its id, the index by its user (braces in a user id are encoded)', async () => {
    const user = `${ns('odd')}{x}`
    const { token } = await a.sessions.create(user, 1, 60)
    const id = tokenId(token)
    expect(await a.exists(`sess:t:{${id}}`)).toBe(1)
    const tag = `{~${Buffer.from(user).toString('base64url')}}`
    expect(await a.exists(`sess:u:${tag}`)).toBe(1)
    expect((await a.sessions.list(user)).map((s) => s.id)).toEqual([id])
  })

  test("the client's keyPrefix and a store prefix apply", async () => {
    const p = await connect({ url: srv.url, keyPrefix: 'app1:' })
    const store = new Sessions(p, { prefix: 'auth:' })
    const user = ns('dave')
    const { token } = await store.create(user, { x: 1 }, 60)
    expect(await a.exists(`app1:auth:t:{${tokenId(token)}}`)).toBe(1)
    expect(await a.exists(`app1:auth:u:{${user}}`)).toBe(1)
    expect((await store.check(token))!.data).toEqual({ x: 1 })
    expect(await p.sessions.check(token)).toBeNull() // another store
    expect(await store.revokeAll(user)).toBe(1)
    expect(await store.check(token)).toBeNull()
  })
})

describe('revocation', () => {
  test('a revoked token fails on every instance', async () => {
    const user = ns('erin')
    const { token } = await a.sessions.create(user, { n: 1 }, 600)
    expect(await b.sessions.check(token)).not.toBeNull()
    expect(await b.sessions.revoke(token)).toBe(true)
    expect(await a.sessions.check(token)).toBeNull()
    expect(await b.sessions.check(token)).toBeNull()
    expect(await a.sessions.check(token, { slideSeconds: 600 })).toBeNull()
    expect(await a.sessions.touch(token, 600)).toBe(false)
    expect(await a.sessions.revoke(token)).toBe(false)
    expect(await a.sessions.list(user)).toEqual([])
    expect(await a.exists(`sess:t:{${tokenId(token)}}`)).toBe(0)
  })

  test('revokeAll ends every session of the user on every instance, and only theirs', async () => {
    const user = ns('frank')
    const other = ns('grace')
    const mine = await Promise.all(Array.from({ length: 5 }, (_, i) => (i % 2 ? a : b).sessions.create(user, i, 600)))
    const theirs = await a.sessions.create(other, 'x', 600)
    await a.sessions.check(mine[0].token, { slideSeconds: 5000 }) // one slid past its first bound
    await a.sessions.settled()
    expect(await b.sessions.revokeAll(user)).toBe(5)
    for (const s of mine) {
      expect(await a.sessions.check(s.token)).toBeNull()
      expect(await b.sessions.check(s.token)).toBeNull()
    }
    expect(await a.sessions.list(user)).toEqual([])
    const left = (await dumpAll(a)).map(([k]) => k)
    for (const s of mine) expect(left).not.toContain(`sess:t:{${tokenId(s.token)}}`)
    expect(left).not.toContain(`sess:u:{${user}}`)
    expect(await a.sessions.check(theirs.token)).not.toBeNull()
    expect(await a.sessions.revokeAll(user)).toBe(0)
  })

  test('revokeAll and list cost one command per session of that user, whatever the others have', async () => {
    const user = ns('heidi')
    const crowd = ns('crowd')
    for (let i = 0; i < 3; i++) await a.sessions.create(user, i, 600)
    await Promise.all(Array.from({ length: 200 }, (_, i) => a.sessions.create(`${crowd}${i % 10}`, i, 600)))
    const listed = await cost(a, () => a.sessions.list(user))
    expect(listed.value).toHaveLength(3)
    expect(listed.commands).toBe(1 + 3)
    expect(listed.batches).toBe(2)
    const revoked = await cost(a, () => a.sessions.revokeAll(user))
    expect(revoked.value).toBe(3)
    expect(revoked.commands).toBe(1 + 3)
    expect(revoked.batches).toBe(2)
  })

  test("revokeById ends one of the user's sessions (from list), never another user's", async () => {
    const user = ns('ivan')
    const [s1, s2] = [await a.sessions.create(user, 1, 600), await a.sessions.create(user, 2, 600)]
    const listed = await a.sessions.list(user)
    expect(listed.map((s) => s.data)).toEqual([1, 2])
    expect(await a.sessions.revokeById(ns('mallory'), listed[0].id)).toBe(false)
    expect(await a.sessions.check(s1.token)).not.toBeNull()
    expect(await a.sessions.revokeById(user, listed[0].id)).toBe(true)
    expect(await b.sessions.check(s1.token)).toBeNull()
    expect((await a.sessions.list(user)).map((s) => s.id)).toEqual([tokenId(s2.token)])
    // user ids that JSON escapes
    const odd = `${ns('q')}"\\ü\n`
    const s3 = await a.sessions.create(odd, 3, 600)
    expect(await a.sessions.revokeById(`${odd} `, tokenId(s3.token))).toBe(false)
    expect(await a.sessions.revokeById(odd, tokenId(s3.token))).toBe(true)
    expect(await a.sessions.check(s3.token)).toBeNull()
  })
})

describe('expiry', () => {
  test('an expired session fails, drops out of list, and its index entry is pruned', async () => {
    const user = ns('judy')
    const short = await a.sessions.create(user, 'short', 1)
    const long = await a.sessions.create(user, 'long', 600)
    expect(await b.sessions.check(short.token)).not.toBeNull()
    await sleep(1100)
    expect(await a.sessions.check(short.token)).toBeNull()
    expect(await b.sessions.check(short.token, { slideSeconds: 60 })).toBeNull()
    expect(await a.sessions.touch(short.token, 60)).toBe(false)
    expect((await a.sessions.list(user)).map((s) => s.data)).toEqual(['long'])
    // list pruned the dead entry from the index
    const members = (await a.command('ZRANGE', `sess:u:{${user}}`, 0, -1)) as string[]
    expect(members).toEqual([tokenId(long.token)])
  })

  test('index entries past their bound are pruned by the next call, and the index expires with its last entry', async () => {
    const user = ns('ken')
    const index = `sess:u:{${user}}`
    await a.sessions.create(user, 1, 30)
    await a.command('ZADD', index, String((await serverMs()) - 1), 'stale-entry')
    await a.sessions.create(user, 2, 30)
    expect(await a.command('ZSCORE', index, 'stale-entry')).toBeNull()
    const pttl = await a.pttl(index)
    // bound = 2 × ttl, plus a minute of grace
    expect(pttl).toBeGreaterThan(60_000 + 59_000)
    expect(pttl).toBeLessThanOrEqual(60_000 + 60_000)
  })
})

describe('sliding and touch', () => {
  test('check with slideSeconds extends a session (never shortens it)', async () => {
    const { token, expiresAt } = await a.sessions.create(ns('leo'), 'x', 3)
    await sleep(1000)
    const slid = await b.sessions.check(token, { slideSeconds: 4 }) // within its bound (2 × 3 s): no raise
    expect(slid!.expiresAt.getTime()).toBeGreaterThan(expiresAt.getTime() + 1800)
    // a slide shorter than what is left changes nothing
    const same = await a.sessions.check(token, { slideSeconds: 1 })
    expect(same!.expiresAt).toEqual(slid!.expiresAt)
    await sleep(2500) // past the first expiry
    const again = await a.sessions.check(token)
    expect(again).not.toBeNull()
    expect(again!.expiresAt).toEqual(slid!.expiresAt)
    // the server's clock read first: the PTTL read after it can only be smaller
    const now = await serverMs()
    const pttl = await a.pttl(`sess:t:{${tokenId(token)}}`)
    expect(pttl).toBeGreaterThan(0)
    expect(pttl).toBeLessThanOrEqual(slid!.expiresAt.getTime() - now + 5)
  })

  test("a slide past the session's bound is granted once the index was raised, and revokeAll still finds it", async () => {
    const user = ns('mia')
    const { token, expiresAt } = await a.sessions.create(user, 'x', 1) // bound: 2 s after creation
    const id = tokenId(token)
    // 50 concurrent checks want 30 s: answered at once within the bound, one raise in the background
    const { value: answers, commands } = await cost(a, async () => {
      const all = await Promise.all(Array.from({ length: 50 }, () => a.sessions.check(token, { slideSeconds: 30 })))
      await a.sessions.settled()
      return all
    })
    for (const s of answers) expect(s!.expiresAt.getTime()).toBeLessThanOrEqual(expiresAt.getTime() + 1000 + 5)
    expect(commands).toBe(50 + 2) // the checks, then the index's raise and the session's
    const s = await a.sessions.check(token)
    expect(s!.expiresAt.getTime() - (await serverMs())).toBeGreaterThan(28_000)
    // the index entry outlives the session
    const score = Number(await a.command('ZSCORE', `sess:u:{${user}}`, id))
    expect(score).toBeGreaterThanOrEqual(s!.expiresAt.getTime())
    expect(await a.pttl(`sess:u:{${user}}`)).toBeGreaterThanOrEqual(s!.expiresAt.getTime() - (await serverMs()))
    await sleep(2200) // past the bound it was created with
    expect(await b.sessions.check(token)).not.toBeNull()
    expect(await b.sessions.revokeAll(user)).toBe(1)
    expect(await a.sessions.check(token)).toBeNull()
  })

  test('a slide writes only when it moves the expiry by a step (a second): hot sessions are not rewritten per call', async () => {
    const { token } = await a.sessions.create(ns('step'), 'x', 3600)
    const key = `sess:t:{${tokenId(token)}}`
    const first = await a.sessions.check(token, { slideSeconds: 3600 })
    const value = await a.get(key)
    const burst = await Promise.all(Array.from({ length: 20 }, () => b.sessions.check(token, { slideSeconds: 3600 })))
    for (const s of burst) expect(s!.expiresAt).toEqual(first!.expiresAt)
    expect(await a.get(key)).toBe(value) // not rewritten
    await sleep(1100)
    const later = await b.sessions.check(token, { slideSeconds: 3600 })
    expect(later!.expiresAt.getTime()).toBeGreaterThanOrEqual(first!.expiresAt.getTime() + 1000)
  })

  test('touch sets the expiry from now, shorter or longer (past the bound too)', async () => {
    const user = ns('nina')
    const { token } = await a.sessions.create(user, 'x', 60)
    const key = `sess:t:{${tokenId(token)}}`
    expect(await b.sessions.touch(token, 1)).toBe(true)
    expect(await a.pttl(key)).toBeLessThanOrEqual(1000)
    expect(await b.sessions.touch(token, 100_000)).toBe(true) // far past the bound: raised first
    const s = await a.sessions.check(token)
    expect(s!.expiresAt.getTime() - (await serverMs())).toBeGreaterThan(99_990_000)
    expect(await a.pttl(key)).toBeGreaterThan(99_990_000)
    expect(Number(await a.command('ZSCORE', `sess:u:{${user}}`, tokenId(token)))).toBeGreaterThanOrEqual(s!.expiresAt.getTime())
    expect(await a.sessions.touch(Buffer.alloc(32, 1).toString('base64url'), 10)).toBe(false)
  })
})

describe('when Redis fails', () => {
  test('errors reject with their code; a closed client rejects with ERR_CLOSED', async () => {
    const c = await connect(srv.url)
    const { token } = await c.sessions.create(ns('olga'), 1, 60)
    // a key of another type where a session should be
    const key = `sess:t:{${tokenId(Buffer.alloc(32, 9).toString('base64url'))}}`
    await c.hset(key, 'not', 'a string')
    expect(await rejection(c.sessions.check(Buffer.alloc(32, 9).toString('base64url')))).toMatchObject({ code: 'ERR_REPLY' })
    await c.close()
    expect(await rejection(c.sessions.check(token))).toMatchObject({ code: 'ERR_CLOSED' })
    expect(await rejection(c.sessions.create('u', 1, 60))).toMatchObject({ code: 'ERR_CLOSED' })
  })
})
