'use strict'
// Child process of worker-terminate.spec.ts (issue 18, point 8): worker threads that use
// the client are terminated with replies in flight — the native layer's doorbell (its
// thread-safe function) must not be called after the worker's environment is gone.
//
// Main thread: ATLAS_ROUNDS times, a worker connects, issues ATLAS_GETS GETs and is
// terminated (right after it issued them, or a few ms later); then ATLAS_LOOP_WORKERS
// workers that open and close clients in a loop are terminated at random moments; then
// the main thread opens and closes clients with calls in flight. It reports each phase
// and ends by itself: a crash shows as a signal, a leaked handle as a hang.
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads')
const { RedisClient } = require(process.env.ATLAS_DIST)

const port = Number(process.env.ATLAS_PORT)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function workerMain() {
  const { mode, gets } = workerData
  if (mode === 'gets') {
    const c = await RedisClient.connect({ port, commandTimeoutMs: 10_000 })
    await c.set('wk:k', 'v')
    for (let i = 0; i < gets; i++) c.get('wk:k').catch(() => undefined)
    parentPort.postMessage('fired')
    await sleep(60_000) // until terminated
  } else {
    // open/close loops, until terminated
    for (let i = 0; ; i++) {
      const c = await RedisClient.connect({ port, commandTimeoutMs: 10_000 })
      for (let j = 0; j < 200; j++) c.get('wk:k').catch(() => undefined)
      if (i === 0) parentPort.postMessage('looping')
      await c.close()
    }
  }
}

const send = (m) => new Promise((resolve) => process.send(m, resolve))

function startWorker(data) {
  const w = new Worker(__filename, { workerData: data, env: process.env })
  w.on('error', (e) => send({ type: 'worker-error', message: String(e && e.stack) }))
  return w
}

async function main() {
  const rounds = Number(process.env.ATLAS_ROUNDS)
  const gets = Number(process.env.ATLAS_GETS)
  // 1. terminate with GETs in flight
  for (let r = 0; r < rounds; r++) {
    const w = startWorker({ mode: 'gets', gets })
    await new Promise((resolve) => w.once('message', resolve))
    if (r % 3 === 1) await sleep(r % 7) // sometimes with replies already arriving
    await w.terminate()
    await send({ type: 'round', r })
  }
  // 2. terminate while connecting (before connect() resolved)
  for (let r = 0; r < 10; r++) {
    const w = startWorker({ mode: 'gets', gets })
    await sleep(r * 3)
    await w.terminate()
  }
  await send({ type: 'phase', name: 'terminated while connecting' })
  // 3. open/close loops, terminated at random moments
  for (let r = 0; r < Number(process.env.ATLAS_LOOP_WORKERS); r++) {
    const w = startWorker({ mode: 'loop' })
    await new Promise((resolve) => w.once('message', resolve))
    await sleep((r * 7) % 23)
    await w.terminate()
  }
  await send({ type: 'phase', name: 'loops terminated' })
  // 4. open/close on the main thread, calls in flight at close()
  for (let i = 0; i < 50; i++) {
    const c = await RedisClient.connect({ port })
    const inFlight = Array.from({ length: 500 }, () => c.get('wk:k'))
    await c.close()
    const got = await Promise.allSettled(inFlight)
    const bad = got.filter((g) => !(g.status === 'fulfilled' && g.value === 'v')).length
    if (bad > 0) await send({ type: 'problem', message: `close() with 500 GETs in flight: ${bad} did not get their value` })
  }
  await send({ type: 'phase', name: 'main open/close' })
  // the process still works
  const c = await RedisClient.connect({ port })
  const v = await c.get('wk:k')
  await c.close()
  await send({ type: 'finished', value: v })
  process.disconnect()
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e)
    process.exitCode = 1
    process.disconnect()
  })
} else {
  workerMain().catch((e) => parentPort.postMessage(`error: ${e && e.stack}`))
}
