// Issue 18, point 2: `command('BLPOP', k, '0')` made every later call of its client time
// out, forever, with no reconnect. Whatever a command is, it must not hold the shared
// connection past commandTimeoutMs plus the health check: a GET issued after that must
// succeed, and every GET after it too.
//
// Issue 16, point 3 made it better for the blocking commands the command table flags
// (BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN, XREAD BLOCK…): each waits on a dedicated
// connection, so no GET of the client ever fails or waits, and the blocking call itself
// is still waiting (no timeout: its block is 0, or longer than the watch). WAIT stays on
// the shared connection (it waits for that connection's writes) and keeps the first bound.
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
/** The cases that stay on the shared connection; the others wait on a dedicated one. */
const SHARED = new Set(['WAIT 1 0 (no replica: forever)'])
/** The first GET goes 100 ms after the blocking call: a dedicated one leaves it unhindered. */
const DEDICATED_FIRST_OK_MS = 400

let srv: RedisServer
beforeAll(async () => {
  srv = await startRedis()
})
afterAll(stopAll)

test(`blocking commands (BLPOP 0, BRPOP, BLMOVE, BLMPOP, BZPOPMIN, XREAD BLOCK 0) never hold up a GET of their client, and WAIT holds the shared connection no longer than commandTimeoutMs + health check: GETs succeed again within ${SERVES_AGAIN_BY_MS} ms and stay answered`, async () => {
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
        const bound = SHARED.has(m.name) ? SERVES_AGAIN_BY_MS : DEDICATED_FIRST_OK_MS
        if (m.firstOkMs === undefined) problems.push(`no GET succeeded in ${WATCH_MS} ms (GETs got ${JSON.stringify(m.codes)}; the blocking call ${m.blocked})`)
        else if (m.firstOkMs > bound) problems.push(`the first GET succeeded ${m.firstOkMs} ms after it`)
        if (!SHARED.has(m.name)) {
          if (Object.keys(m.codes).length > 0) problems.push(`GETs failed: ${JSON.stringify(m.codes)}`)
          if (m.blocked !== 'pending') problems.push(`the blocking call ${m.blocked} instead of waiting`)
        }
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
