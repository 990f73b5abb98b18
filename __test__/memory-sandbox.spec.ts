// memory:// scripts run in Redis 7's sandbox (issue 18 point 4): a differential corpus of
// probes (forbidden globals, os/io/require, read-only tables, bytecode, metatables...) must
// get the same replies from memory:// as from a real redis-server; a script past
// lua-time-limit makes others BUSY until SCRIPT KILL (UNKILLABLE once it wrote), as on
// Redis; and memory://'s cap on a script's Lua memory fails the script, not the process.
import { RedisClient } from '../lib'
import { RedisServer, startRedis, stopAll } from './harness'
import { closeAll, connect, eventually, rejection, sleep } from './helpers'

let srv: RedisServer
let seq = 0
const memoryUrl = () => `memory://memory-sandbox-${process.pid}-${++seq}`

beforeAll(async () => {
  srv = await startRedis()
})
afterEach(closeAll)
afterAll(stopAll)

/** Scripts whose replies (or error texts) must agree. */
const PROBES: string[] = [
  // what Redis leaves out
  'return type(os)',
  "return os.getenv('HOME')",
  'return os.clock()',
  'os.exit(1)',
  "return io.open('/etc/passwd')",
  "return require('os')",
  "return dofile('/etc/passwd')",
  "return loadfile('/etc/passwd')",
  "module('m')",
  'return package.loaded',
  "print('x')",
  'return type(debug)',
  'return getfenv(0)',
  'setfenv(1, {})',
  'return newproxy(true)',
  // exactly these globals, and this redis API
  'local t = {} for k in pairs(_G) do t[#t + 1] = k end table.sort(t) return t',
  'local t = {} for k in pairs(redis) do t[#t + 1] = k end table.sort(t) return t',
  'return {_VERSION, redis.REDIS_VERSION, redis.REDIS_VERSION_NUM}',
  // globals cannot be created, replaced or read when absent
  'x = 1',
  'local ok, e = pcall(function() x = 1 end) return e',
  'return nope',
  "return rawget(_G, 'nope')",
  "rawset(_G, 'x', 1)",
  'KEYS = {}',
  "KEYS[1] = 'changed' return KEYS[1]",
  '_G.string = nil',
  'table.insert(_G, 1)',
  'return {rawequal(_G, _G._G), #_G, tostring(next(_G) ~= nil)}',
  'local n = 0 for _ in ipairs(_G) do n = n + 1 end return n',
  // the tables reachable from _G are read-only, their metatables too
  'string.rep = nil',
  'redis.call = nil',
  'coroutine.create = nil',
  'math.floor = nil',
  "rawset(string, 'x', 1)",
  'setmetatable(string, {})',
  'return type(getmetatable(string))',
  'local ok, e = pcall(setmetatable, _G, {}) return {tostring(ok), e}',
  'setmetatable(_G, nil)',
  'return type(getmetatable(_G))',
  'getmetatable(_G).__index = nil',
  'local t = {} for k in pairs(getmetatable(_G)) do t[#t + 1] = k end return t',
  "local mt = getmetatable(_G) return {pcall(mt.__index, _G, 'zz')}",
  'return {pcall(getmetatable(_G).__index)}',
  "return getmetatable('').__index == string",
  "getmetatable('').__index = 1",
  "getmetatable('').__index.rep = nil",
  // bytecode: string.dump exists, but nothing loads its output
  'return string.dump(function() return 1 end):len() > 0',
  'return {select(2, loadstring(string.dump(function() return 1 end)))}',
  'return {select(2, load(string.dump(function() return 1 end)))}',
  'local parts = {string.dump(function() return 1 end)} return {select(2, load(function() return table.remove(parts) end))}',
  // what loadstring/load compile sees the script's globals
  "return {loadstring('return 1 + 1')()}",
  "loadstring('y = 1')()",
  "return {pcall(loadstring('return nope'))}",
  "local parts = {'return 40 + 2'} return load(function() return table.remove(parts) end)()",
  "local co = coroutine.create(function() return loadstring('return 5')() end) return {coroutine.resume(co)}",
  // the libraries Redis bundles
  'local t = {} for _, lib in ipairs({cjson, cmsgpack, bit, struct}) do for k in pairs(lib) do t[#t + 1] = k end end table.sort(t) return t',
  "return cjson.encode({a = {1, 2, 3}, b = 'x/y\"\\n\\127', c = 0.1, d = 1e20, e = {}})",
  'return {cjson.encode({[1] = 1, [3] = 3}), tostring(cjson.null), cjson.encode_max_depth()}',
  'return cjson.encode({[1] = 1, [20] = 3})',
  'return cjson.encode(function() end)',
  "return cjson.decode('[1,2')",
  "return cjson.decode('x')",
  "local t = cjson.decode('{\"a\":[1,null,\"\\u00e9\"],\"b\":-0.5e1}') return {t.a[1], t.a[2] == cjson.null, t.a[3], t.b * 2}",
  "local s = cmsgpack.pack({1, 2, 300}, -1, -200, 1.5, 0.1, 'ab', true, {a = 1}, 2^40) return string.format(string.rep('%02x', #s), s:byte(1, -1))",
  "local t = {cmsgpack.unpack(cmsgpack.pack({1, {x = 'y'}}, -5, 1.5))} return {t[1][2].x, t[2], tostring(t[3])}",
  'return {bit.tohex(255), bit.tohex(-1, -4), bit.band(0xff, 0x0f, 0x3), bit.lshift(1, 31), bit.arshift(-256, 4), bit.bswap(0x01020304)}',
  // the rest of the base library
  "return collectgarbage('count') > 0",
  'return type(gcinfo())',
  'return {unpack({1, 2})}',
  "return {pcall(error, 'e')}",
]

/** What a client gets for each probe: the reply, or the error (its message starts with its code). */
async function replies(c: RedisClient): Promise<string[]> {
  const out: string[] = []
  for (const src of PROBES) {
    out.push(
      await c.command('EVAL', src, 0).then(
        (v) => `${src} -> ${JSON.stringify(v)}`,
        (e) => `${src} -> ${e.message}`,
      ),
    )
  }
  return out
}

test('the probes get the same replies from memory:// as from redis-server', async () => {
  const [real, mem] = await Promise.all([connect(srv.url), connect(memoryUrl())])
  const [want, got] = await Promise.all([replies(real), replies(mem)])
  expect(got).toEqual(want)
  // and the sandbox is what they show: no way to the host
  expect(got.find((r) => r.startsWith("return os.getenv('HOME')"))).toMatch(/nonexistent global variable 'os'/)
  expect(got.find((r) => r.startsWith('x = 1'))).toMatch(/Attempt to modify a readonly table/)
})

test('a rejected probe leaves the store working and the globals intact for the next script', async () => {
  const c = await connect(memoryUrl())
  await rejection(c.command('EVAL', 'string.rep = nil', 0))
  await rejection(c.command('EVAL', "rawset(_G, 'redis', nil)", 0))
  expect(await c.command('EVAL', "return string.rep('ab', 2) .. redis.call('PING').ok", 0)).toBe('ababPONG')
})

/**
 * Runs `script` on one client of `url` while another waits until it is BUSY, then
 * sends SCRIPT KILL: what each saw (BUSY, SCRIPT KILL, the script's reply, a second
 * SCRIPT KILL), error texts included.
 */
async function busyScenario(url: string, script: string): Promise<string[]> {
  const [runner, other] = await Promise.all([
    connect({ url, commandTimeoutMs: 20_000 }),
    connect({ url, commandTimeoutMs: 20_000 }),
  ])
  await other.command('CONFIG', 'SET', 'lua-time-limit', 100)
  const text = (p: Promise<unknown>) => p.then((v) => JSON.stringify(v), (e) => String(e.message))
  try {
    const running = text(runner.command('EVAL', script, 1, 'sandbox:k'))
    let busy = ''
    await eventually(async () => {
      busy = await text(other.command('GET', 'sandbox:k'))
      expect(busy).toMatch(/BUSY/)
    }, 5000, 20)
    const kill = await text(other.command('SCRIPT', 'KILL'))
    return [busy, kill, await running, await text(other.command('SCRIPT', 'KILL'))]
  } finally {
    await other.command('CONFIG', 'SET', 'lua-time-limit', 5000)
  }
}

test('lua-time-limit: others get BUSY; SCRIPT KILL stops the script, as on redis-server', async () => {
  const script = 'while true do end'
  const [want, got] = [await busyScenario(srv.url, script), await busyScenario(memoryUrl(), script)]
  expect(got).toEqual(want)
  expect(got[0]).toBe('ERR_REPLY: BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.')
  expect(got[1]).toBe('"OK"')
  expect(got[2]).toMatch(/^ERR_REPLY: ERR Script killed by user with SCRIPT KILL\.\.\. script: [0-9a-f]{40}, on @user_script:1\.$/)
  expect(got[3]).toBe('ERR_REPLY: NOTBUSY No scripts in execution right now.')
})

test('a busy script that wrote is UNKILLABLE and runs to its end, as on redis-server', async () => {
  // writes, then spins ~600 ms by the server's clock
  const script = `redis.call('SET', KEYS[1], 'v')
    local t0 = redis.call('TIME')
    while true do
      local t = redis.call('TIME')
      if (t[1] - t0[1]) * 1e6 + (t[2] - t0[2]) > 600000 then return 'done' end
    end`
  const [want, got] = [await busyScenario(srv.url, script), await busyScenario(memoryUrl(), script)]
  expect(got).toEqual(want)
  expect(got[1]).toMatch(/^ERR_REPLY: UNKILLABLE Sorry the script already executed write commands/)
  expect(got[2]).toBe('"done"')
})

test('CONFIG GET answers lua-time-limit and busy-reply-threshold as redis-server does', async () => {
  const [real, mem] = await Promise.all([connect(srv.url), connect(memoryUrl())])
  for (const name of ['lua-time-limit', 'busy-reply-threshold']) {
    expect(await mem.command('CONFIG', 'GET', name)).toEqual(await real.command('CONFIG', 'GET', name))
  }
  expect(await mem.command('CONFIG', 'GET', 'lua-time-limit')).toEqual(['lua-time-limit', '5000'])
  const bad = await rejection(mem.command('CONFIG', 'SET', 'lua-time-limit', 'soon'))
  expect(bad.message).toBe((await rejection(real.command('CONFIG', 'SET', 'lua-time-limit', 'soon'))).message)
})

test('SHUTDOWN NOSAVE stops even a script that wrote, and the store starts over empty', async () => {
  const url = memoryUrl()
  const [runner, other] = await Promise.all([connect({ url, commandTimeoutMs: 20_000 }), connect(url)])
  await other.command('SET', 'kept', 'no')
  await other.command('CONFIG', 'SET', 'lua-time-limit', 50)
  const running = runner.command('EVAL', "redis.call('SET', 'k', 'v') while true do end", 0).catch((e) => e)
  await eventually(async () => {
    expect((await rejection(other.command('SCRIPT', 'KILL'))).message).toMatch(/UNKILLABLE/)
  }, 5000, 20)
  // SHUTDOWN without NOSAVE is refused while busy, as on Redis
  expect((await rejection(other.command('SHUTDOWN'))).message).toMatch(/BUSY/)
  // the server hangs up instead of answering; the client reconnects
  expect(await rejection(other.command('SHUTDOWN', 'NOSAVE'))).toMatchObject({ code: 'ERR_CONNECTION' })
  expect(await running).toMatchObject({ message: expect.stringMatching(/Script killed by user with SCRIPT KILL/) })
  const after = await connect(url)
  expect(await after.command('MGET', 'k', 'kept')).toEqual([null, null])
  expect(await after.command('EVAL', 'return 1', 0)).toBe(1)
})

test('a script past the Lua memory cap fails with a clear error; the store goes on', async () => {
  const c = await connect(memoryUrl())
  expect(await c.command('CONFIG', 'GET', 'lua-memory-limit')).toEqual(['lua-memory-limit', String(64 * 1024 * 1024)])
  await c.command('CONFIG', 'SET', 'lua-memory-limit', '4mb')
  const big = "return #string.rep('x', 8 * 1024 * 1024)"
  const e = await rejection(c.command('EVAL', big, 0))
  expect(e.message).toMatch(/^ERR_REPLY: ERR Error running script [0-9a-f]{40}: not enough memory \(memory:\/\/ lets scripts use 4 MB of Lua memory: CONFIG SET lua-memory-limit\)$/)
  const grow = 'local t = {} for i = 1, 1e7 do t[i] = i end return #t'
  expect((await rejection(c.command('EVAL', grow, 0))).message).toMatch(/not enough memory/)
  expect(await c.command('EVAL', "return {pcall(string.rep, 'x', 8 * 1024 * 1024)}", 0)).toEqual([null, 'not enough memory'])
  await c.command('CONFIG', 'SET', 'lua-memory-limit', '64mb')
  expect(await c.command('EVAL', big, 0)).toBe(8 * 1024 * 1024)
  expect(await c.command('SET', 'k', 'v')).toBe('OK')
})

test('while a script runs, other stores and the client itself keep being served', async () => {
  const url = memoryUrl()
  const runner = await connect({ url, commandTimeoutMs: 20_000 })
  const [other, elsewhere] = await Promise.all([connect(url), connect(memoryUrl())])
  await other.command('CONFIG', 'SET', 'lua-time-limit', 10_000)
  const running = runner.command('EVAL', 'local n = 0 while n < 3e7 do n = n + 1 end return n', 0)
  // another store answers at once; this one waits for the script, as Redis does
  await sleep(20)
  expect(await elsewhere.command('PING')).toBe('PONG')
  const waited = other.command('GET', 'k')
  expect(await running).toBe(3e7)
  expect(await waited).toBeNull()
})

test('a brief script that turns long after writing is stopped at lua-time-limit (memory:// only)', async () => {
  const c = await connect({ url: memoryUrl(), commandTimeoutMs: 20_000 })
  await c.command('CONFIG', 'SET', 'lua-time-limit', 100)
  const script = "redis.call('SET', KEYS[1], ARGV[1]) local n = 0 while n < tonumber(ARGV[1]) do n = n + 1 end return n"
  // brief every time: it runs on the I/O thread from its second run on
  for (let i = 0; i < 3; i++) expect(await c.command('EVAL', script, 1, 'k', 10)).toBe(10)
  const e = await rejection(c.command('EVAL', script, 1, 'k', 1e12))
  expect(e.message).toMatch(/^ERR_REPLY: ERR Script killed by memory:\/\/: it wrote, then ran past lua-time-limit on the I\/O thread/)
  // its write stays, as after any script error
  expect(await c.command('GET', 'k')).toBe('1000000000000')
})
