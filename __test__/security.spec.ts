// Security (issue #10, point 3), against real redis-servers:
// - with a known password, every error path we can provoke — wrong password,
//   NOAUTH, a reconnect whose AUTH is refused, wrong db, WRONGTYPE, timeouts,
//   refused and killed connections, bad options, a bad TLS CA, a closed client —
//   leaves the password out of every message, stack, String()/util.inspect() of
//   the error, stats(), the client object, and everything a process printed;
// - TLS refuses a certificate issued for another host (with a password set);
// - a keyPrefix keeps a client away from another prefix's keys through every
//   public method;
// - keys holding quotes, newlines, braces, `]]`, `--` or Lua code round-trip
//   through get/set, rateLimit, the throttler and the package's scripts, and
//   never reach script text (no injection: bystander keys and a canary survive).
//
// connect.spec.ts already checks messages of failed connects and tls.spec.ts the
// TLS refusals in detail; this file adds the paths after connect, util.inspect,
// the printed output of a process, prefix isolation and injection.
import { spawn } from 'child_process'
import net from 'net'
import path from 'path'
import util from 'util'
import { RedisClient } from '../lib'
import type { ConnectOptions } from '../lib'
import { RedisThrottlerStorage } from '../lib/ratelimit/throttler'
import { KeyvRedisStore } from '../lib/caching/keyv'
import { redisSecondaryStorage } from '../lib/sessions/better-auth'
import { startRedis, stopAll, RedisServer } from './harness'
import { attempt, closeAll, connect, eventually, ns, rejection, sleep } from './helpers'

const PW = 'Sup3r-Secret-Pw-4711'
const APP_PW = 'App-Secret-Pw-0815'
const SECRETS = [PW, APP_PW]

let srv: RedisServer // requirepass PW, ACL user app/APP_PW, DEBUG enabled
let tlsWrong: RedisServer // TLS with a cert for wrong.example, requirepass PW

beforeAll(async () => {
  ;[srv, tlsWrong] = await Promise.all([
    startRedis({ password: PW, users: [{ name: 'app', password: APP_PW }], args: ['--enable-debug-command', 'yes'] }),
    startRedis({ tls: { wrongHost: true }, password: PW }),
  ])
})
afterEach(closeAll)
afterAll(stopAll)

/** A port nothing listens on. */
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

/** Every way an error can end up as text: message, stack, String(), inspect(), JSON, own fields. */
function everyText(e: any): string {
  const parts = [String(e), e?.message, e?.stack, util.inspect(e), util.inspect(e, { showHidden: true, depth: 5 })]
  try {
    parts.push(JSON.stringify(e), JSON.stringify(Object.entries(e ?? {})))
  } catch {
    /* not serialisable */
  }
  return parts.join('\n')
}

/** Fails with the offending text when any secret appears in `text`. */
function expectNoSecret(what: string, text: string) {
  for (const s of SECRETS) {
    if (text.includes(s)) throw new Error(`${what} contains a password:\n${text.slice(0, 2000)}`)
  }
}

const BASE = () => ({ host: '127.0.0.1', port: srv.port, connectTimeoutMs: 1000, commandTimeoutMs: 300 })

// ---- the password ---------------------------------------------------------------------------

describe('the password never appears', () => {
  test('in errors of failed connects, of every kind (wrong password, NOAUTH, wrong db, refused, bad options, bad CA, wrong TLS host)', async () => {
    const dead = await deadPort()
    const cases: Array<[string, string | ConnectOptions]> = [
      ['wrong password (options)', { ...BASE(), password: `${PW}-wrong` }],
      ['wrong password (URL)', `redis://:${encodeURIComponent(`${PW}x`)}@127.0.0.1:${srv.port}`],
      ['wrong ACL password', { ...BASE(), username: 'app', password: PW }],
      ['unknown ACL user', { ...BASE(), username: 'nobody', password: APP_PW }],
      ['no password (NOAUTH)', { ...BASE() }],
      ['database out of range', { ...BASE(), password: PW, db: 4000 }],
      ['database out of range (URL)', `redis://app:${APP_PW}@127.0.0.1:${srv.port}/4000`],
      ['connection refused', { ...BASE(), port: dead, password: PW }],
      ['connection refused (URL)', `redis://app:${APP_PW}@127.0.0.1:${dead}`],
      ['unknown option', { ...BASE(), password: PW, passwd: PW } as ConnectOptions],
      ['port not a number', { ...BASE(), port: 'x' as unknown as number, password: PW }],
      ['unsupported scheme', `http://:${PW}@127.0.0.1:${srv.port}`],
      ['bad URL query', `redis://:${PW}@127.0.0.1:${srv.port}?password=${PW}`],
      ['URL db not a number', `redis://:${PW}@127.0.0.1:${srv.port}/x`],
      ['URL with a slash missing', `redis:/app:${APP_PW}@127.0.0.1:${srv.port}`],
      ['URL without slashes', `redis:default:${PW}@127.0.0.1:${srv.port}/0`],
      ['bad TLS CA', { ...BASE(), password: PW, tls: { ca: 'not a certificate' } }],
      ['unrelated TLS CA', { ...BASE(), port: tlsWrong.port, password: PW, tls: { ca: tlsWrong.certs!.otherCa } }],
      ['plain TCP to a TLS port', { ...BASE(), port: tlsWrong.port, password: PW }],
      ['TLS to a plain port', { ...BASE(), password: PW, tls: true }],
    ]
    const codes: Record<string, string> = {}
    const leaks: string[] = []
    for (const [name, options] of cases) {
      const e = await attempt(options)
      codes[name] = e?.code
      try {
        expectNoSecret(`${name}: the error`, everyText(e))
      } catch (x: any) {
        leaks.push(`${name}: ${e?.message}`)
      }
    }
    expect(leaks).toEqual([])
    // each case failed, with a code
    for (const [name] of cases) expect([name, codes[name]]).toEqual([name, expect.stringMatching(/^ERR_(AUTH|REPLY|CONNECTION|INVALID_ARGUMENT|TLS)$/)])
    expect(codes['wrong password (options)']).toBe('ERR_AUTH')
    expect(codes['no password (NOAUTH)']).toBe('ERR_AUTH')
  })

  test('TLS: a certificate for another host name is refused (ERR_TLS), without the password in the error', async () => {
    const { ca } = tlsWrong.certs!
    const e = await attempt({ host: '127.0.0.1', port: tlsWrong.port, password: PW, tls: { ca } })
    expect(e).toMatchObject({ code: 'ERR_TLS' })
    expectNoSecret('wrong-host TLS error', everyText(e))
    const byUrl = await attempt({ url: `rediss://:${PW}@localhost:${tlsWrong.port}`, tls: { ca } })
    expect(byUrl).toMatchObject({ code: 'ERR_TLS' })
    expectNoSecret('wrong-host TLS error (URL)', everyText(byUrl))
  })

  test('a password given as a number (a config parsed as JSON or YAML) is refused without being echoed', async () => {
    const numeric = 4711081512
    const e = await attempt({ ...BASE(), password: numeric as unknown as string })
    expect(e).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(everyText(e)).not.toContain(String(numeric))
  })

  test('in errors of a connected client: WRONGTYPE, timeouts, lost connections, a refused re-AUTH, ERR_CLOSED; and in stats() and the client', async () => {
    const c = await connect({ ...BASE(), password: PW, reconnect: { minDelayMs: 20, maxDelayMs: 100 } })
    const app = await connect({ ...BASE(), username: 'app', password: APP_PW, reconnect: { minDelayMs: 20, maxDelayMs: 100 } })
    const p = ns('leak')
    const errors: any[] = []
    const collect = (x: Promise<unknown>) => rejection(x).then((e) => errors.push(e))

    // error replies
    await c.hset(p + 'h', 'f', 'v')
    await collect(c.get(p + 'h')) // WRONGTYPE
    await collect(c.incr(p + 'h'))
    await collect(c.command('NOSUCHCOMMAND', 'x'))
    await collect(c.command('AUTH', 'app', 'not-the-password')) // WRONGPASS for the connection's own AUTH
    await collect(c.command('SELECT', '4000')) // wrong db
    await collect(c.command('EVAL', 'error("boom")', '0'))
    // bad arguments
    await collect(c.set(p + 'k', 5 as any))
    await collect(c.rateLimit(p + 'rl', { limit: 0, windowMs: 1 }))
    // timeouts: a slow command
    await collect(c.command('DEBUG', 'SLEEP', '0.5'))
    await sleep(300)
    // a lost connection, then a reconnect whose AUTH is refused (the ACL password changed)
    await srv.cli('ACL', 'SETUSER', 'app', 'resetpass', '>another-password-42')
    const inFlight = collect(app.command('BLPOP', p + 'list', '5'))
    await sleep(50)
    await srv.cli('CLIENT', 'KILL', 'USER', 'app')
    await inFlight
    await sleep(100)
    for (let i = 0; i < 3; i++) {
      await collect(app.get(p + 'k')) // not connected: the last error says why (WRONGPASS)
      await sleep(60)
    }
    await srv.cli('ACL', 'SETUSER', 'app', 'resetpass', `>${APP_PW}`)
    await eventually(() => app.ping(), 3000)
    // a closed client
    const closed = await RedisClient.connect({ ...BASE(), password: PW })
    await closed.close()
    await collect(closed.get(p + 'k'))

    const codes = errors.map((e) => e?.code)
    // (command('AUTH', …) is refused before sending now; the refused re-AUTH below is the auth path.)
    for (const code of ['ERR_REPLY', 'ERR_INVALID_ARGUMENT', 'ERR_TIMEOUT', 'ERR_CONNECTION', 'ERR_CLOSED']) expect(codes).toContain(code)
    expect(errors.some((e) => /WRONGPASS|auth/i.test(e?.message) && e?.code === 'ERR_CONNECTION')).toBe(true)
    for (const e of errors) expectNoSecret(`${e?.code} error`, everyText(e))

    for (const client of [c, app, closed]) {
      expectNoSecret('stats()', JSON.stringify(client.stats()))
      expectNoSecret('util.inspect(client)', util.inspect(client, { depth: 6, showHidden: true }))
      expectNoSecret('JSON of the client', JSON.stringify(client, (_k, v) => (typeof v === 'bigint' ? String(v) : v)) ?? '')
    }
  })

  test('a server error that echoes arguments (a mistyped AUTH) does not carry the configured password', async () => {
    // Redis echoes the arguments of an unknown command: "ERR unknown command 'AUTHH', with args beginning with: …".
    const c = await connect({ ...BASE(), password: PW })
    const e = await rejection(c.command('AUTHH', PW))
    expect(e).toMatchObject({ code: 'ERR_REPLY' })
    expectNoSecret('echoed error', everyText(e))
  })

  test('in everything a process prints while its calls fail (console.error of errors, an unhandled rejection, stats)', async () => {
    const dead = await deadPort()
    const script = `
      const util = require('util')
      const { RedisClient } = require(process.env.ATLAS_DIST)
      const PW = process.env.T_PW
      const log = (e) => { console.error(e); console.log(String(e)); console.log(util.inspect(e, { showHidden: true })) }
      ;(async () => {
        await RedisClient.connect({ port: ${srv.port}, password: PW + 'x' }).catch(log)
        await RedisClient.connect('redis://:' + PW + '@127.0.0.1:${dead}').catch(log)
        await RedisClient.connect({ port: ${srv.port}, password: PW, hots: 1 }).catch(log)
        await RedisClient.connect().catch(log)   // REDIS_URL with a wrong password in the environment
        const c = await RedisClient.connect({ port: ${srv.port}, password: PW, commandTimeoutMs: 200 })
        await c.hset('leak:h', 'f', 'v')
        await c.get('leak:h').catch(log)
        await c.command('DEBUG', 'SLEEP', '0.4').catch(log)
        await new Promise((r) => setTimeout(r, 300))
        console.log(JSON.stringify(c.stats()))
        console.log(util.inspect(c, { depth: 6, showHidden: true }))
        await c.close()
        await c.get('x').catch(log)
        // last: an error nobody handles, printed by Node itself with its stack
        await RedisClient.connect({ port: ${srv.port}, password: PW + '-unhandled' })
      })()
    `
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, ['-e', script], {
        env: {
          ...process.env,
          ATLAS_DIST: path.resolve(__dirname, '..', 'dist'),
          T_PW: PW,
          REDIS_URL: `redis://:${encodeURIComponent(PW)}-env@127.0.0.1:${srv.port}`,
          NODE_OPTIONS: '',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let out = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
      child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d))
      const killer = setTimeout(() => child.kill('SIGKILL'), 15000)
      child.on('close', (code) => {
        clearTimeout(killer)
        resolve({ code, out })
      })
    })
    // the calls did fail, in all the expected ways, and the unhandled rejection crashed it
    for (const code of ['ERR_AUTH', 'ERR_CONNECTION', 'ERR_INVALID_ARGUMENT', 'ERR_REPLY', 'ERR_TIMEOUT', 'ERR_CLOSED']) expect(r.out).toContain(code)
    expect(r.out).toContain('"commands"')
    expect(r.code).not.toBe(0)
    expectNoSecret('the output of the process', r.out)
  })
})

// ---- key prefix isolation -------------------------------------------------------------------------

describe('a keyPrefix keeps a client away from other prefixes', () => {
  let raw: RedisClient
  let a: RedisClient
  const B_KEYS: Record<string, string> = { 'b:str': 'b-secret', 'b:other': 'b-other' }

  beforeAll(async () => {
    raw = await RedisClient.connect({ ...BASE(), password: PW })
    a = await RedisClient.connect({ ...BASE(), password: PW, keyPrefix: 'a:' })
  })
  afterAll(async () => {
    await Promise.all([raw.close(), a.close()])
  })
  /** Prefix b's keys, as every case starts with them. */
  async function resetB(): Promise<void> {
    await raw.del('b:str', 'b:other', 'b:hash', 'b:set', 'b:list', 'b:zset')
    await raw.mset(B_KEYS)
    await raw.hset('b:hash', { f: 'b-field-secret' })
    await raw.sadd('b:set', 'b-member-secret')
    await raw.command('RPUSH', 'b:list', 'b-item-secret')
    await raw.command('ZADD', 'b:zset', '1', 'b-z-secret')
  }
  beforeEach(async () => {
    await resetB()
    await raw.del('a:ids')
    await raw.command('RPUSH', 'a:ids', 'str', 'other') // SORT … GET b:* would turn these into b:str, b:other
    await raw.set('a:own', 'mine')
  })

  /** b's data exactly as it was. */
  async function expectBIntact(what: string) {
    const state = {
      str: await raw.mget('b:str', 'b:other'),
      hash: await raw.hgetall('b:hash'),
      set: await raw.smembers('b:set'),
      list: await raw.command('LRANGE', 'b:list', '0', '-1'),
      zset: await raw.command('ZRANGE', 'b:zset', '0', '-1'),
      ttl: await raw.pttl('b:str'),
    }
    expect([what, state]).toEqual([what, { str: ['b-secret', 'b-other'], hash: { f: 'b-field-secret' }, set: ['b-member-secret'], list: ['b-item-secret'], zset: ['b-z-secret'], ttl: -1 }])
  }

  /** Nothing b holds shows up in `value`. */
  function expectNoBData(what: string, value: unknown) {
    const text = JSON.stringify(value, (_k, v) => (Buffer.isBuffer(v) ? v.toString('latin1') : v)) ?? String(value)
    for (const secret of ['b-secret', 'b-other', 'b-field-secret', 'b-member-secret', 'b-item-secret', 'b-z-secret']) {
      if (text.includes(secret)) throw new Error(`${what} revealed b's data: ${text.slice(0, 300)}`)
    }
  }

  test('through the typed methods, with keys that try to name b\'s keys', async () => {
    const tries = ['b:str', '../b:str', '\r\nGET b:str', 'b:*', '*', ':b:str', '\0b:str']
    for (const k of tries) {
      const outcomes = await Promise.allSettled([
        a.get(k), a.getBuffer(k), a.mget(k, 'b:other'), a.exists(k), a.ttl(k), a.hgetall(k), a.smembers(k), a.hget(k, 'f'),
        a.getDel(k), a.getEx(k, { persist: true }), a.del(k, 'b:other'), a.expire(k, 1), a.pexpire(k, 1), a.incr(k), a.incrBy(k, 2),
        a.set(k, 'overwritten'), a.mset({ [k]: 'x', 'b:other': 'x' }), a.hset(k, 'f', 'x'), a.hdel(k, 'f'), a.sadd(k, 'x'), a.srem(k, 'b-member-secret'),
        a.cache.invalidate(k), a.rateLimit(k, { limit: 5, windowMs: 1000 }),
      ])
      expectNoBData(`typed methods with key ${JSON.stringify(k)}`, outcomes.map((o) => (o.status === 'fulfilled' ? o.value : String(o.reason))))
    }
    // scan yields a's keys only (named without 'a:'; a's own key 'a:b:str' comes back as 'b:str')
    for (const match of [undefined, '*', 'b:*', '*b:*', '\\*', '[b]*', '../*']) {
      const keys: string[] = []
      for await (const k of a.scan({ match, count: 1000 })) keys.push(k)
      const notA = []
      for (const k of keys) if ((await raw.exists('a:' + k)) !== 1) notA.push(k)
      expect([match, notA]).toEqual([match, []])
    }
    await expectBIntact('typed methods')
  })

  test('through command(): key-less and cross-key commands are refused or stay inside the prefix', async () => {
    const attempts: Array<[string, Array<string | number>]> = [
      ['KEYS', ['*']], ['KEYS', ['b:*']], ['SCAN', ['0', 'MATCH', 'b:*']], ['RANDOMKEY', []], ['FLUSHDB', []], ['FLUSHALL', []],
      ['flushdb', ['ASYNC']], ['SWAPDB', ['0', '1']], ['SELECT', ['1']], ['MOVE', ['b:str', '1']], ['MIGRATE', ['127.0.0.1', '1', 'b:str', '0', '100']],
      ['DEL', ['b:str']], ['UNLINK', ['b:str', 'b:other']], ['GET', ['b:str']], ['MGET', ['b:str', 'b:other']], ['RENAME', ['own', 'b:str']],
      ['COPY', ['own', 'b:str', 'REPLACE']], ['HGETALL', ['b:hash']], ['LRANGE', ['b:list', '0', '-1']], ['SUNION', ['b:set']],
      ['OBJECT', ['ENCODING', 'b:str']], ['DUMP', ['b:str']], ['TYPE', ['b:str']], ['EXPIRE', ['b:str', '1']],
      // commands whose extra arguments name keys: patterns and STORE destinations
      ['SORT', ['ids', 'BY', 'nosort', 'GET', 'b:*']],
      ['SORT_RO', ['ids', 'BY', 'nosort', 'GET', 'b:*']],
      ['SORT', ['ids', 'BY', 'b:*', 'GET', '#']],
      ['SORT', ['ids', 'ALPHA', 'STORE', 'b:str']],
      ['GEOADD', ['geo', '13.4', '52.5', 'x']],
      ['GEORADIUS', ['geo', '13.4', '52.5', '10', 'km', 'STORE', 'b:other']],
      ['MEMORY', ['USAGE', 'b:str']],
      ['DEBUG', ['OBJECT', 'b:str']],
      ['XREAD', ['STREAMS', 'b:str', '0']],
      ['ZUNIONSTORE', ['b:zset', '1', 'x']],
      ['BITOP', ['OR', 'b:str', 'own']],
      ['LMPOP', ['1', 'b:list', 'LEFT']],
      ['OBJECT', ['FREQ', 'b:str']],
      ['EVAL', ["return redis.call('GET', 'b:str')", '0']],
      ['EVAL', ["return redis.call('DEL', 'b:other')", '0']],
      ['EVAL', ["return redis.call('KEYS', 'b:*')", '0']],
      ['EVAL', ["redis.call('FLUSHDB') return 1", '0']],
      ['EVAL', ["return redis.call('GET', KEYS[1])", '1', 'b:str']],
      ['EVAL_RO', ["return redis.call('HGETALL', 'b:hash')", '0']],
      ['EVALSHA', ['0000000000000000000000000000000000000000', '0']],
      ['FCALL', ['nofunc', '0']],
    ]
    const leaks: string[] = []
    for (const [cmd, args] of attempts) {
      const before = JSON.stringify([await raw.mget('b:str', 'b:other'), await raw.hgetall('b:hash'), await raw.smembers('b:set'), await raw.command('LRANGE', 'b:list', '0', '-1'), await raw.pttl('b:str'), await raw.pttl('b:other')])
      const out = await a.command(cmd, ...args).then((v) => ({ v }), (e) => ({ e: e?.code as string }))
      try {
        if ('v' in out) expectNoBData(`${cmd} ${args.join(' ')}`, out.v)
      } catch (e: any) {
        leaks.push(e.message)
      }
      // commands about a key's existence, size or encoding: an answer about b's key is a leak
      if ('v' in out && out.v !== null && (cmd === 'MEMORY' || cmd === 'DEBUG')) leaks.push(`${cmd} ${args.join(' ')} answered about b's key: ${JSON.stringify(out.v)}`)
      const after = JSON.stringify([await raw.mget('b:str', 'b:other'), await raw.hgetall('b:hash'), await raw.smembers('b:set'), await raw.command('LRANGE', 'b:list', '0', '-1'), await raw.pttl('b:str'), await raw.pttl('b:other')])
      if (after !== before) {
        leaks.push(`${cmd} ${args.join(' ')} (${'v' in out ? 'ran' : out.e}) changed b's keys: ${before} → ${after}`)
        await resetB() // for the next attempt
      }
    }
    expect(leaks).toEqual([])
    await expectBIntact('command()')
  })

  test('through its rateLimit, throttler, cache and sessions: state stays under the prefix', async () => {
    const storage = new RedisThrottlerStorage(a)
    await a.rateLimit('b:str', { limit: 5, windowMs: 60_000 })
    await storage.increment('b:str', 60_000, 5, 0, 'default')
    await a.cache.wrap('b:wrap', 60_000, () => 'from-a')
    const s = await a.sessions.create('b:str', { who: 'a' }, 60)
    expect(await a.sessions.check(s.token)).toMatchObject({ userId: 'b:str' })
    const keys: string[] = []
    for await (const k of raw.scan()) keys.push(k) // exact keys (some hold newlines)
    // t<n>: and leak: are other tests' keys
    const outside = keys.filter((k) => !k.startsWith('a:') && !k.startsWith('b:') && !/^t\d+:/.test(k) && !k.startsWith('leak:'))
    expect(outside).toEqual([])
    expect(await a.cache.wrap('b:wrap', 60_000, () => 'again')).toBe('from-a')
    await expectBIntact('helpers')
  })
})

// ---- injection ----------------------------------------------------------------------------------

/** Keys a script splicer would trip on. None may reach script text. */
const NASTY_KEYS = [
  "it's", 'say "hi"', 'line\nbreak', 'cr\r\nlf', 'tab\there', '{braces}', '{', '}', '}{', '{{x}}', '~', '~e30', ']]', '[[', '[=[x]=]',
  '--', '-- comment', '--[[ block', "'); redis.call('FLUSHALL') --", "\"]] redis.call('FLUSHALL') --[[", "redis.call('FLUSHALL')",
  "return redis.call('FLUSHALL')", 'KEYS[1]', 'ARGV[1]', '$4\r\nPING\r\n', '*1\r\n$8\r\nFLUSHALL\r\n', '\\', '\\n', '%s%d', 'nul\0byte',
  'é ü 😀', '\u202eevil', 'x'.repeat(2000),
]

describe('keys with quotes, newlines, braces and Lua code are data, never script text', () => {
  let c: RedisClient
  let p: string
  const BYSTANDERS = 50

  beforeAll(async () => {
    c = await RedisClient.connect({ ...BASE(), password: PW })
    p = ns('inject')
    await c.set('canary', 'alive')
    await c.mset(Object.fromEntries(Array.from({ length: BYSTANDERS }, (_, i) => [`${p}bystander:${i}`, `b${i}`])))
  })

  afterAll(() => c.close())

  async function expectNothingElseTouched() {
    expect(await c.get('canary')).toBe('alive')
    expect(await c.mget(Array.from({ length: BYSTANDERS }, (_, i) => `${p}bystander:${i}`))).toEqual(Array.from({ length: BYSTANDERS }, (_, i) => `b${i}`))
    expect(await srv.cli('PING')).toBe('PONG')
  }

  test('get/set/mget/hset/sadd/getDel round-trip every key exactly (checked with redis-cli too)', async () => {
    for (const raw of NASTY_KEYS) {
      const k = p + raw
      await c.set(k, raw)
      expect(await c.get(k)).toBe(raw)
      expect((await c.getBuffer(k))!.equals(Buffer.from(raw))).toBe(true)
      await c.hset(k + ':h', raw, raw)
      expect(await c.hgetall(k + ':h')).toEqual({ [raw]: raw })
      await c.sadd(k + ':s', raw)
      expect(await c.smembers(k + ':s')).toEqual([raw])
      expect(await c.command('GET', k)).toBe(raw)
    }
    expect(await c.mget(NASTY_KEYS.map((raw) => p + raw))).toEqual(NASTY_KEYS)
    // the server holds exactly these keys (redis-cli reads the first few by their exact bytes)
    for (const raw of NASTY_KEYS.filter((r) => !r.includes('\0')).slice(0, 10)) expect(await srv.cli('GET', p + raw)).toBe(raw.trim() === raw ? raw : raw.trim())
    expect(await c.getDel(p + NASTY_KEYS[0])).toBe(NASTY_KEYS[0])
    await expectNothingElseTouched()
  })

  test('rateLimit, rateLimitAll and the throttler count each key on its own (no collision, no injection)', async () => {
    const storage = new RedisThrottlerStorage(c)
    const rule = { limit: 10, windowMs: 60_000, name: 'inj' }
    for (const raw of NASTY_KEYS) {
      const k = p + raw
      expect(await c.rateLimit(k, rule)).toMatchObject({ allowed: true, remaining: 9 })
      expect(await c.rateLimit(k, rule)).toMatchObject({ allowed: true, remaining: 8 })
      expect(await c.rateLimitAll(k, [rule, { limit: 3, windowMs: 1000, algorithm: 'fixed-window', name: raw || 'x' }])).toMatchObject([{ remaining: 7 }, { remaining: 2 }])
      expect(await storage.increment(k, 60_000, 5, 0, raw)).toMatchObject({ totalHits: 1, isBlocked: false })
      expect(await storage.increment(k, 60_000, 5, 0, raw)).toMatchObject({ totalHits: 2, isBlocked: false })
    }
    await expectNothingElseTouched()
  })

  test('cache.wrap, sessions, the Keyv store and the Better Auth storage take them as data', async () => {
    const keyv = new KeyvRedisStore(c)
    const ba = redisSecondaryStorage(c, { keyPrefix: p + 'ba:' })
    for (const raw of NASTY_KEYS) {
      const k = p + 'w:' + raw
      expect(await c.cache.wrap(k, 60_000, () => ({ raw }))).toEqual({ raw })
      expect(await c.cache.wrap(k, 60_000, () => ({ raw: 'reloaded' }))).toEqual({ raw }) // a hit
      expect(await c.cache.invalidate(k)).toBe(true)
      const s = await c.sessions.create(raw, { raw }, 60)
      expect(await c.sessions.check(s.token)).toMatchObject({ userId: raw, data: { raw } })
      expect((await c.sessions.list(raw)).map((x) => x.userId)).toEqual([raw])
      expect(await c.sessions.revokeAll(raw)).toBe(1)
      await keyv.set(p + 'kv:' + raw, raw)
      expect(await keyv.get(p + 'kv:' + raw)).toBe(raw)
      await ba.set(raw, raw, 60)
      expect(await ba.get(raw)).toBe(raw)
      expect(await ba.increment(raw + ':n', 60)).toBe(1)
      expect(await ba.increment(raw + ':n', 60)).toBe(2)
    }
    await expectNothingElseTouched()
  })

  test('command(EVAL) passes keys and arguments as KEYS/ARGV: the script sees them verbatim', async () => {
    for (const raw of NASTY_KEYS) {
      const reply = await c.command('EVAL', 'return {KEYS[1], ARGV[1], #KEYS, #ARGV}', '1', p + raw, raw)
      expect(reply).toEqual([p + raw, raw, 1, 1])
    }
    await expectNothingElseTouched()
  })
})
