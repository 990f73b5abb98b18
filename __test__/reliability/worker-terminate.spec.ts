// Issue 18, point 8: the native layer's doorbell (a thread-safe function) may be called
// after JavaScript released it — a worker thread terminated with replies in flight.
// worker.terminate() with 10,000 GETs in flight, 50 times; workers terminated while
// connecting and in the middle of open/close loops; open/close with calls in flight on
// the main thread. In a child process: a crash is a signal there, not the end of jest;
// and the child must end by itself (nothing left holding its event loop).
//
// Under a sanitizer or valgrind this would catch a use-after-free that happens not to
// crash; here it catches the ones that do.
import path from 'path'
import { startRedis, stopAll, RedisServer } from '../harness'
import { death, runChild } from './child'

const CHILD = path.join(__dirname, 'children', 'workers.js')
const ROUNDS = 50
const GETS = 10_000

let srv: RedisServer
beforeAll(async () => {
  srv = await startRedis()
})
afterAll(stopAll)

test(`worker.terminate() with ${GETS} GETs in flight, ${ROUNDS} times; terminated while connecting and in open/close loops: the process never crashes and ends by itself`, async () => {
  const run = await runChild(CHILD, {
    env: { ATLAS_PORT: String(srv.port), ATLAS_ROUNDS: String(ROUNDS), ATLAS_GETS: String(GETS), ATLAS_LOOP_WORKERS: '20' },
    idleTimeoutMs: 30_000,
    timeoutMs: 240_000,
  })
  const rounds = run.messages.filter((m) => m.type === 'round').length
  const phases = run.messages.filter((m) => m.type === 'phase').map((m) => m.name)
  const problems = run.messages.filter((m) => m.type === 'problem' || m.type === 'worker-error').map((m) => m.message)
  const finished = run.messages.find((m) => m.type === 'finished')
  expect({
    ended: run.code === 0 && run.signal === null && !run.hung ? 'exit 0' : death(run),
    rounds,
    phases,
    problems,
    value: finished?.value,
  }).toEqual({
    ended: 'exit 0',
    rounds: ROUNDS,
    phases: ['terminated while connecting', 'loops terminated', 'main open/close'],
    problems: [],
    value: 'v',
  })
  expect(await srv.cli('PING')).toBe('PONG')
}, 300_000)
