'use strict'
// Child process of bad-input.spec.ts and fuzz.spec.ts: makes the calls of shapes.js on
// a client of the package's build (ATLAS_DIST) connected to ATLAS_PORT. A shape that
// aborts the process (a failed allocation, a panic across the FFI) kills only this
// child; the parent learns which case did it from the last 'start' message.
//
// ATLAS_MODE=matrix: the cases of allCases() from ATLAS_FROM on, one at a time; after
//   each, a set/get round trip proves the client still serves.
// ATLAS_MODE=batch: ATLAS_RUNS batches drawn by fast-check (seed ATLAS_SEED) of
//   ATLAS_BATCH random cases each, issued in one tick between a SET and a GET of a
//   sentinel key, so that they share a native batch with good calls; from batch
//   ATLAS_FROM on (the draw is the same in every child).
const { RedisClient } = require(process.env.ATLAS_DIST)
const { SHAPES, SITES, allCases } = require('./shapes')

const CALL_LIMIT_MS = 5000

const send = (m) => new Promise((resolve) => process.send(m, resolve))

function withTimeout(p, ms) {
  let t
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error('HUNG')), ms) })]).finally(() => clearTimeout(t))
}

/** How one call settled: 'ok' when it rejected with ERR_INVALID_ARGUMENT, else what went wrong. */
async function outcome(c, { site, shape }) {
  let p
  try {
    p = SITES[site](c, SHAPES[shape]())
  } catch (e) {
    return `threw synchronously: ${e && e.code} ${e && e.message}`
  }
  if (!(p instanceof Promise)) return `returned ${typeof p}, not a promise`
  try {
    const v = await withTimeout(p, CALL_LIMIT_MS)
    let shown
    try { shown = JSON.stringify(v) } catch { shown = typeof v }
    return `resolved ${String(shown).slice(0, 80)}`
  } catch (e) {
    if (e && e.message === 'HUNG') return `still pending after ${CALL_LIMIT_MS} ms`
    if (e && e.code === 'ERR_INVALID_ARGUMENT') return 'ok'
    return `rejected with ${e && e.code}: ${String(e && e.message).slice(0, 200)}`
  }
}

/** A round trip that proves the client still serves: '' when it does. */
async function serves(c, n) {
  try {
    await withTimeout(c.set(`bad:alive:${n}`, `v${n}`), CALL_LIMIT_MS)
    const got = await withTimeout(c.get(`bad:alive:${n}`), CALL_LIMIT_MS)
    return got === `v${n}` ? '' : `the next GET answered ${JSON.stringify(got)}`
  } catch (e) {
    return `the next SET/GET failed: ${e && e.code} ${e && e.message}`
  }
}

async function matrix(c) {
  const cases = allCases()
  for (let i = Number(process.env.ATLAS_FROM || 0); i < cases.length; i++) {
    await send({ type: 'start', i })
    const got = await outcome(c, cases[i])
    const after = await serves(c, i)
    await send({ type: 'done', i, outcome: got, after })
  }
}

async function batches(c) {
  const fc = require('fast-check')
  const cases = allCases()
  const size = Number(process.env.ATLAS_BATCH || 20)
  const draw = fc.array(fc.noBias(fc.integer({ min: 0, max: cases.length - 1 })), { minLength: size, maxLength: size })
  const runs = fc.sample(draw, { seed: Number(process.env.ATLAS_SEED || 1), numRuns: Number(process.env.ATLAS_RUNS || 20) })
  for (let r = Number(process.env.ATLAS_FROM || 0); r < runs.length; r++) {
    const picked = runs[r]
    await send({ type: 'start', i: r, picked })
    const sk = `bad:sentinel:${r}`
    const before = c.set(sk, `s${r}`) // same tick as the bad calls: one native batch
    const calls = picked.map((i) => outcome(c, cases[i]))
    const afterGet = c.get(sk)
    const results = await Promise.all(calls)
    const sentinel = await Promise.allSettled([before, afterGet])
    const bad = results.map((o, k) => (o === 'ok' ? undefined : `${cases[picked[k]].site} × ${cases[picked[k]].shape}: ${o}`)).filter(Boolean)
    const sentinelOk = sentinel[0].status === 'fulfilled' && sentinel[1].status === 'fulfilled' && sentinel[1].value === `s${r}`
    await send({
      type: 'done',
      i: r,
      outcome: bad.length === 0 && sentinelOk ? 'ok' : [...bad, ...(sentinelOk ? [] : [`sentinel: ${sentinel.map((s) => (s.status === 'fulfilled' ? JSON.stringify(s.value) : s.reason && s.reason.code)).join(', ')}`])].join('; '),
      after: await serves(c, r),
    })
  }
}

;(async () => {
  const c = await RedisClient.connect({ port: Number(process.env.ATLAS_PORT), commandTimeoutMs: 3000 })
  await send({ type: 'connected' })
  if (process.env.ATLAS_MODE === 'batch') await batches(c)
  else await matrix(c)
  await c.close()
  await send({ type: 'finished' })
  process.disconnect()
})().catch((e) => {
  console.error(e)
  process.exitCode = 1
  process.disconnect()
})
