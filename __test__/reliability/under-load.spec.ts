// The fault suite under load (issue 18): 100 callers in flight on one client, which talks
// to the server through the harness proxy, while each fault is injected — the path
// blackholed (pause), the connection cut (three times), the server restarted. For every
// fault:
// - every call settles within commandTimeoutMs + 1 s, with a code the fault explains;
// - the client serves again after the fault ends (within RECOVER_MS), by itself;
// - nothing acknowledged is lost: each caller INCRs its own counter, and the server's
//   final value lies between the INCRs acknowledged and those plus the ones whose
//   outcome is unknown (timeouts, dropped connections);
// - no reply reaches the wrong caller: each counter starts in its own range, and every
//   INCR a caller gets back lies in that range and grows.
import vm from 'vm'
import { RedisClient } from '../../lib'
import { startProxy, startRedis, stopAll, RedisServer, TcpProxy } from '../harness'
import { closeAll, connect, sleep } from '../helpers'
import { COMMAND_TIMEOUT_MS, CONNECT_TIMEOUT_MS, HEALTH_CHECK_MS, RECONNECT, RECOVER_MS } from './limits'

const CALLERS = 100
const SETTLE_LIMIT_MS = COMMAND_TIMEOUT_MS + 1000
/** Counter i starts at i * RANGE: a reply in another caller's range went to the wrong caller. */
const RANGE = 1_000_000

// jest gives each test file its own `process`: unhandled rejections surface on the real one
const realProcess = vm.runInThisContext('process') as NodeJS.Process
const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => void unhandled.push(reason)

let srv: RedisServer // appendfsync always: acknowledged writes survive a restart
let proxy: TcpProxy

beforeAll(async () => {
  realProcess.on('unhandledRejection', onUnhandled)
  srv = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] })
})
afterEach(async () => {
  await closeAll()
  await proxy?.close()
})
afterAll(async () => {
  realProcess.off('unhandledRejection', onUnhandled)
  await stopAll()
  expect(unhandled).toEqual([])
})

interface Outcome {
  caller: number
  at: number
  ms: number
  value?: number
  code?: string
  message?: string
}

/** 100 callers, each INCRing its own counter in a loop until stop(). */
function startLoad(c: RedisClient, prefix: string) {
  const outcomes: Outcome[] = []
  let stopping = false
  const loops = Array.from({ length: CALLERS }, async (_, caller) => {
    while (!stopping) {
      const at = performance.now()
      const o: Outcome = { caller, at, ms: 0 }
      try {
        o.value = await c.incr(`${prefix}${caller}`)
      } catch (e: any) {
        o.code = e?.code
        o.message = e?.message
      }
      o.ms = performance.now() - at
      outcomes.push(o)
      if (o.code !== undefined) await sleep(10) // no tight loop against a dead connection
    }
  })
  return {
    outcomes,
    stop: async () => {
      stopping = true
      await Promise.all(loops)
    },
  }
}

/** Resolves when an INCR succeeds again (ms after `since`), or undefined after `ms`. */
async function servedAgain(outcomes: Outcome[], since: number, ms: number): Promise<number | undefined> {
  const deadline = since + ms
  while (performance.now() < deadline) {
    const ok = outcomes.find((o) => o.code === undefined && o.at >= since)
    if (ok) return ok.at + ok.ms - since
    await sleep(20)
  }
  return undefined
}

async function scenario(name: string, inject: () => Promise<void>, explained: RegExp) {
  proxy = await startProxy(srv.port)
  const c = await connect({ port: proxy.port, commandTimeoutMs: COMMAND_TIMEOUT_MS, connectTimeoutMs: CONNECT_TIMEOUT_MS, reconnect: RECONNECT })
  const prefix = `ul:${name}:`
  for (let i = 0; i < CALLERS; i++) await srv.cli('SET', `${prefix}${i}`, i * RANGE)
  const load = startLoad(c, prefix)
  await sleep(300)
  await inject()
  const ended = performance.now()
  const recoveredMs = await servedAgain(load.outcomes, ended, RECOVER_MS)
  await sleep(200)
  // from here on the client should be steady again: every call issued succeeds
  const steadyFrom = performance.now()
  await sleep(600)
  await load.stop()

  const { outcomes } = load
  const slow = outcomes.filter((o) => o.ms > SETTLE_LIMIT_MS).map((o) => `${o.code ?? 'ok'} after ${Math.round(o.ms)} ms`)
  const unexplained = outcomes.filter((o) => o.code !== undefined && !explained.test(`${o.code} ${o.message}`)).map((o) => `${o.code}: ${o.message}`)
  const failingWhenSteady = outcomes.filter((o) => o.at >= steadyFrom && o.code !== undefined).length
  // acknowledged vs the server's count, per caller
  const lost: string[] = []
  const misrouted: string[] = []
  const finals = await Promise.all(Array.from({ length: CALLERS }, (_, i) => srv.cli('GET', `${prefix}${i}`)))
  for (let i = 0; i < CALLERS; i++) {
    const mine = outcomes.filter((o) => o.caller === i)
    const acked = mine.filter((o) => o.code === undefined)
    const unknown = mine.filter((o) => o.code === 'ERR_TIMEOUT' || o.code === 'ERR_CONNECTION').length
    const final = Number(finals[i]) - i * RANGE
    if (final < acked.length || final > acked.length + unknown) lost.push(`caller ${i}: ${acked.length} acknowledged, ${unknown} unknown, server has ${final}`)
    let last = i * RANGE
    for (const o of acked) {
      if (!(o.value! > last && o.value! < (i + 1) * RANGE)) misrouted.push(`caller ${i} got ${o.value} after ${last}`)
      last = o.value!
    }
  }
  const codes: Record<string, number> = {}
  for (const o of outcomes) codes[o.code ?? 'ok'] = (codes[o.code ?? 'ok'] ?? 0) + 1
  return {
    report: {
      slow: slow.slice(0, 5),
      unexplained: unexplained.slice(0, 5),
      recovered: recoveredMs !== undefined && recoveredMs <= RECOVER_MS ? 'yes' : `no (${recoveredMs === undefined ? `nothing succeeded within ${RECOVER_MS} ms` : `after ${Math.round(recoveredMs)} ms`}; codes ${JSON.stringify(codes)})`,
      failingWhenSteady,
      lost: lost.slice(0, 5),
      misrouted: misrouted.slice(0, 5),
    },
    codes,
  }
}

const CLEAN = { slow: [], unexplained: [], recovered: 'yes', failingWhenSteady: 0, lost: [], misrouted: [] }

test(`blackholed path (proxy paused ${COMMAND_TIMEOUT_MS + HEALTH_CHECK_MS + 1000} ms, then a new path): 100 callers`, async () => {
  const { report, codes } = await scenario(
    'pause',
    async () => {
      proxy.pause()
      await sleep(COMMAND_TIMEOUT_MS + HEALTH_CHECK_MS + 1000)
      proxy.resume()
    },
    /^(ERR_TIMEOUT|ERR_CONNECTION) /,
  )
  expect(report).toEqual(CLEAN)
  expect(codes.ERR_TIMEOUT ?? 0).toBeGreaterThan(0) // the fault was felt
}, 60_000)

test('connection cut three times, 300 ms apart: 100 callers', async () => {
  const { report } = await scenario(
    'cut',
    async () => {
      for (let i = 0; i < 3; i++) {
        proxy.cut()
        await sleep(300)
      }
    },
    /^ERR_CONNECTION /,
  )
  expect(report).toEqual(CLEAN)
  // the cuts were felt: the client made new connections (calls in flight at a cut get
  // ERR_CONNECTION, but when the event loop is the bottleneck there may be none in flight)
  expect(proxy.accepted).toBeGreaterThanOrEqual(4)
}, 60_000)

test('server restarted (SIGTERM, start again on the same port): 100 callers', async () => {
  const { report, codes } = await scenario(
    'restart',
    async () => {
      await srv.restart()
    },
    /^(ERR_CONNECTION|ERR_TIMEOUT) |^ERR_REPLY .*LOADING/,
  )
  expect(report).toEqual(CLEAN)
  expect(proxy.accepted).toBeGreaterThanOrEqual(2)
  expect(codes.ok).toBeGreaterThan(0)
}, 60_000)
