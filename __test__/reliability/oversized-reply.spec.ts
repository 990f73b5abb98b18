// Issue 18, point 10: one reply that cannot become a JS value — a bulk string longer than
// V8's string limit (536,870,888 characters) read with get() — dropped the whole burst:
// the other promises never settled. It must reject alone: the calls before and after
// it in the same tick get their own replies, and the client keeps serving.
//
// The server needs proto-max-bulk-len above 512 MB to hold such a string (SETRANGE
// makes it without sending it); the test holds ~0.5 GB in the server and ~1-2 GB in
// this process while it runs.
import { constants } from 'buffer'
import { RedisClient } from '../../lib'
import { startRedis, stopAll, RedisServer } from '../harness'
import { closeAll, connect, withTimeout } from '../helpers'

/** V8's longest string (2^29 - 24 on 64-bit), the limit the issue names. */
const V8_MAX_STRING = 536_870_888
const SIZE = V8_MAX_STRING + 12
/** Long enough to move 0.5 GB twice over loopback on a busy machine. */
const COMMAND_TIMEOUT_MS = 20_000

let srv: RedisServer
let c: RedisClient
beforeAll(async () => {
  srv = await startRedis({ args: ['--proto-max-bulk-len', '1gb'] })
  c = await connect({ port: srv.port, commandTimeoutMs: COMMAND_TIMEOUT_MS })
  expect(await srv.cli('SETRANGE', 'huge', SIZE - 1, 'z')).toBe(String(SIZE))
  await srv.cli('SET', 'small:a', 'A')
  await srv.cli('SET', 'small:b', 'B')
}, 60_000)
afterAll(async () => {
  await closeAll()
  await stopAll()
})

test('the premise: a string of this length cannot exist in V8, a Buffer can', () => {
  expect(constants.MAX_STRING_LENGTH).toBeLessThan(SIZE)
  expect(constants.MAX_LENGTH).toBeGreaterThan(SIZE)
})

test(`get() of a ${SIZE.toLocaleString('en')}-byte value rejects alone: the calls around it in the same tick settle with their own replies`, async () => {
  const burst = [c.get('small:a'), c.get('huge'), c.get('small:b'), c.incr('small:n')]
  // past commandTimeoutMs, a call that got no answer must have been rejected anyway
  const settled = await withTimeout(Promise.allSettled(burst), COMMAND_TIMEOUT_MS + 10_000, 'the burst did not settle, not even by commandTimeoutMs')
  const shown = settled.map((s) => (s.status === 'fulfilled' ? s.value : { code: (s.reason as any)?.code }))
  expect(shown).toEqual(['A', { code: expect.stringMatching(/^ERR_[A-Z_]+$/) }, 'B', 1])
  // the same client still serves, on whatever connection it now has
  expect(await c.get('small:a')).toBe('A')
  expect(await c.incr('small:n')).toBe(2)
}, 120_000)

test('getBuffer() of the same value resolves a Buffer of its full length', async () => {
  const b = await c.getBuffer('huge')
  expect(b?.length).toBe(SIZE)
  expect(b?.[SIZE - 1]).toBe('z'.charCodeAt(0))
  expect(b?.[0]).toBe(0)
}, 120_000)
