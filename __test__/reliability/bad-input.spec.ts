// Issue 18, point 1: bad input of any shape rejects with ERR_INVALID_ARGUMENT and the
// client keeps serving. The shapes (children/shapes.js) are those that crash native
// addons: arrays whose length is a lie (Object.assign([], { length: 2 ** 32 - 1 }) once
// aborted Node with "memory allocation of 137438953440 bytes failed"), deep nesting,
// throwing getters, Proxies (revoked ones too), typed arrays other than Uint8Array,
// detached ArrayBuffers, symbols and bigints — at every argument position of the
// methods that reach the native layer.
//
// They run in a child process (children/bad-input.js): a case that aborts the process
// is reported with its signal, and the next child goes on from the case after it, so
// that one run reports every failing pair.
import path from 'path'
import { startRedis, stopAll, RedisServer } from '../harness'
import { death, runChild } from './child'
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { allCases } = require('./children/shapes') as { allCases: () => Array<{ site: string; shape: string }> }

const CHILD = path.join(__dirname, 'children', 'bad-input.js')

let srv: RedisServer
beforeAll(async () => {
  srv = await startRedis()
})
afterAll(stopAll)

test('every (argument position × bad shape) pair rejects with ERR_INVALID_ARGUMENT, and the client serves after each', async () => {
  const cases = allCases()
  const results: string[] = new Array(cases.length)
  let from = 0
  let children = 0
  while (from < cases.length) {
    children++
    let current = -1
    const run = await runChild(CHILD, {
      env: { ATLAS_PORT: String(srv.port), ATLAS_MODE: 'matrix', ATLAS_FROM: String(from) },
      onMessage: (m) => {
        if (m.type === 'start') current = m.i
        if (m.type === 'done') {
          const problems = [m.outcome === 'ok' ? '' : m.outcome, m.after].filter(Boolean)
          results[m.i] = problems.length === 0 ? 'ok' : problems.join('; ')
          current = -1
        }
      },
    })
    if (current >= 0) {
      // the child died in the middle of this case: that case crashed (or wedged) the process
      results[current] = death(run)
      from = current + 1
    } else if (run.messages.some((m) => m.type === 'finished')) {
      from = cases.length
    } else {
      // died before its first case (connect): nothing to attribute, and no progress
      throw new Error(`the child did not start its cases: ${death(run)}`)
    }
  }
  const failures = cases.map((c, i) => `${c.site} × ${c.shape}: ${results[i]}`).filter((_, i) => results[i] !== 'ok')
  // eslint-disable-next-line no-console
  if (failures.length > 0) console.log(`bad input: ${failures.length} of ${cases.length} pairs failed, ${children} child processes\n  ${failures.join('\n  ')}`)
  expect(results.filter((r) => r === undefined)).toEqual([])
  expect(failures).toEqual([])
  // the server was never harmed either
  expect(await srv.cli('PING')).toBe('PONG')
}, 600_000)
