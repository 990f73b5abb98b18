// The script API against a real server: eval() and defineScript().run() go by
// EVALSHA and fall back to EVAL on NOSCRIPT (after SCRIPT FLUSH too); the
// keyPrefix applies to KEYS, never to ARGV; bad input is refused before sending.
import { RedisClient } from '../lib'
import { startRedis, stopAll, type RedisServer } from './harness'
import { closeAll, connect, ns, realRedisTest, rejection } from './helpers'

let srv: RedisServer
let redis: RedisClient

beforeAll(async () => {
  srv = await startRedis()
  redis = await connect(srv.url)
})
afterAll(async () => {
  await closeAll()
  await stopAll()
})

/** Calls of EVAL and EVALSHA so far, from INFO commandstats. */
async function evalCalls(): Promise<{ eval: number; evalsha: number }> {
  const info = (await redis.command('INFO', 'commandstats')) as string
  const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
  return { eval: calls('eval'), evalsha: calls('evalsha') }
}

describe('eval()', () => {
  test('runs a script with KEYS and ARGV; replies as command() does', async () => {
    const k = ns('eval')
    expect(await redis.eval("return redis.call('SET', KEYS[1], ARGV[1])", [k + 'a'], ['hello'])).toBe('OK')
    expect(await redis.eval("return redis.call('GET', KEYS[1])", [k + 'a'])).toBe('hello')
    expect(await redis.eval('return {1, 2, ARGV[1]}', [], [3.5])).toEqual([1, 2, '3.5'])
    expect(await redis.eval('return nil')).toBeNull()
  })

  test('the keyPrefix applies to KEYS, not to ARGV', async () => {
    const k = ns('prefix')
    const p = await connect({ url: srv.url, keyPrefix: k })
    expect(await p.eval("redis.call('SET', KEYS[1], ARGV[1]); return KEYS[1]", ['key'], ['key'])).toBe(k + 'key')
    expect(await redis.get(k + 'key')).toBe('key')
    const script = p.defineScript("return redis.call('INCRBY', KEYS[1], ARGV[1])", { keys: 1 })
    expect(await script.run(['n'], [5])).toBe(5)
    expect(await redis.get(k + 'n')).toBe('5')
    // EVAL through command() stays refused on a prefixed client (its keys are not known)
    await expect(p.command('EVAL', 'return 1', '0')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })

  test("a script's error rejects with ERR_REPLY and the server's code", async () => {
    const e = await rejection(redis.eval("return redis.error_reply('MYCODE went wrong')"))
    expect(e).toMatchObject({ code: 'ERR_REPLY', serverCode: 'MYCODE' })
    const w = await rejection(redis.eval("return redis.call('NOSUCHCMD')"))
    expect(w).toMatchObject({ code: 'ERR_REPLY' })
  })

  test('bad input is refused with ERR_INVALID_ARGUMENT before sending', async () => {
    const before = redis.stats().commands
    for (const p of [
      redis.eval('' as string),
      redis.eval(42 as unknown as string),
      redis.eval('return 1', 'k' as unknown as string[]),
      redis.eval('return 1', [], {} as unknown as string[]),
      redis.eval('return 1', [''], []),
      redis.eval('return 1', [], [{}] as unknown as string[]),
    ]) {
      await expect(p).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    }
    expect(() => redis.defineScript('')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => redis.defineScript('return 1', { keys: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => redis.defineScript('return 1', { key: 1 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    const two = redis.defineScript('return #KEYS', { keys: 2 })
    await expect(two.run(['a'])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(redis.stats().commands).toBe(before)
    expect(await two.run(['a', 'b'])).toBe(2)
  })
})

describe('defineScript()', () => {
  // INFO commandstats counts EVAL and EVALSHA (memory:// has no such counters)
  realRedisTest('runs by EVALSHA; EVAL only when the server lacks the script, also after SCRIPT FLUSH', async () => {
    const k = ns('sha')
    const incr = redis.defineScript("return redis.call('INCR', KEYS[1])", { keys: 1 })
    expect(incr.sha1).toMatch(/^[0-9a-f]{40}$/)
    expect(await redis.command('SCRIPT', 'EXISTS', incr.sha1)).toEqual([0])
    const errors = redis.stats().errors
    const s0 = await evalCalls()
    expect(await incr.run([k + 'n'])).toBe(1) // NOSCRIPT, then EVAL
    const s1 = await evalCalls()
    expect(s1.eval - s0.eval).toBe(1)
    expect(s1.evalsha - s0.evalsha).toBe(1)
    expect(await redis.command('SCRIPT', 'EXISTS', incr.sha1)).toEqual([1])
    for (let i = 2; i <= 5; i++) expect(await incr.run([k + 'n'])).toBe(i) // EVALSHA only
    const s2 = await evalCalls()
    expect(s2.eval - s1.eval).toBe(0)
    expect(s2.evalsha - s1.evalsha).toBe(4)
    await srv.cli('SCRIPT', 'FLUSH')
    expect(await incr.run([k + 'n'])).toBe(6) // NOSCRIPT again, EVAL again
    const s3 = await evalCalls()
    expect(s3.eval - s2.eval).toBe(1)
    expect(await redis.command('SCRIPT', 'EXISTS', incr.sha1)).toEqual([1])
    // NOSCRIPT is answered, not counted as a failure
    expect(redis.stats().errors).toBe(errors)
  })

  test('many runs in one tick each get their own result', async () => {
    const k = ns('tick')
    const push = redis.defineScript("return redis.call('RPUSH', KEYS[1], ARGV[1])", { keys: 1 })
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => push.run([k + 'l'], [String(i)])))
    expect([...results].sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 100 }, (_, i) => i + 1))
    expect(await redis.lrange(k + 'l', 0, -1)).toHaveLength(100)
  })
})
