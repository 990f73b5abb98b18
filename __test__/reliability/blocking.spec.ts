// Issue 18, point 2: `command('BLPOP', k, '0')` made every later call of its client time
// out, forever, with no reconnect. Whatever a command is, it must not hold the shared
// connection past commandTimeoutMs plus the health check: a GET issued after that must
// succeed, and every GET after it too. (Whether blocking commands get connections of
// their own is another issue's; this one holds the bound for any command.)
//
// In a child process (children/blocking.js): a client that never serves again keeps
// its blocked call, and close() waits for it, so the child may have to be killed.
import path from 'path'
import { startRedis, stopAll, RedisServer } from '../harness'
import { death, runChild } from './child'
import { COMMAND_TIMEOUT_MS, HEALTH_CHECK_MS } from './limits'

const CHILD = path.join(__dirname, 'children', 'blocking.js')
/** A GET issued by then must have been answered by its own timeout. */
const SERVES_AGAIN_BY_MS = COMMAND_TIMEOUT_MS + HEALTH_CHECK_MS + COMMAND_TIMEOUT_MS
/** How long each case keeps GETting. */
const WATCH_MS = SERVES_AGAIN_BY_MS + 1500

let srv: RedisServer
beforeAll(async () => {
  srv = await startRedis()
})
afterAll(stopAll)

test(`a blocking command (BLPOP 0, BRPOP, BLMOVE, BLMPOP, BZPOPMIN, XREAD BLOCK 0, WAIT) holds the shared connection no longer than commandTimeoutMs + health check: GETs succeed again within ${SERVES_AGAIN_BY_MS} ms and stay answered`, async () => {
  const results: Record<string, unknown> = {}
  let current: string | undefined
  const run = await runChild(CHILD, {
    env: { ATLAS_PORT: String(srv.port), ATLAS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS), ATLAS_WATCH_MS: String(WATCH_MS) },
    idleTimeoutMs: WATCH_MS + 10_000,
    timeoutMs: 200_000,
    onMessage: (m) => {
      if (m.type === 'start') current = m.name
      if (m.type === 'done') {
        current = undefined
        const problems: string[] = []
        if (m.firstOkMs === undefined) problems.push(`no GET succeeded in ${WATCH_MS} ms (GETs got ${JSON.stringify(m.codes)}; the blocking call ${m.blocked})`)
        else if (m.firstOkMs > SERVES_AGAIN_BY_MS) problems.push(`the first GET succeeded ${m.firstOkMs} ms after it`)
        if (m.failuresAfterOk.length > 0) problems.push(`GETs failed after one succeeded: ${m.failuresAfterOk.slice(0, 3).join(', ')}`)
        if (m.closeMs > 2000) problems.push(`close() took ${m.closeMs} ms after the server released it`)
        results[m.name] = problems.length === 0 ? 'ok' : problems.join('; ')
      }
    },
  })
  if (current !== undefined) results[current] = `${death(run)} (close() never returned, or the child hung)`
  expect(results).toEqual({
    'BLPOP k 0': 'ok',
    'BRPOP k 0': 'ok',
    'BLMOVE a b LEFT RIGHT 0': 'ok',
    'BLMPOP 0 1 k LEFT': 'ok',
    'BZPOPMIN z 0': 'ok',
    'XREAD BLOCK 0 STREAMS s $': 'ok',
    'WAIT 1 0 (no replica: forever)': 'ok',
    'BLPOP k 30 (longer than commandTimeoutMs)': 'ok',
  })
  expect(run.code).toBe(0)
  expect(await srv.cli('PING')).toBe('PONG')
}, 240_000)
