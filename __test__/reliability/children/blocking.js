'use strict'
// Child process of blocking.spec.ts. For each blocking command: a fresh client sends
// it through command() and then GETs every 100 ms; reports when the first GET
// succeeded (ms after the blocking command) and whether any later one failed. Then
// the blocked server-side clients are released (CLIENT UNBLOCK from another client),
// the client closed, and how long close() took reported. A client that never serves
// again leaves this child running until the parent kills it.
const { RedisClient } = require(process.env.ATLAS_DIST)

const port = Number(process.env.ATLAS_PORT)
const timeoutMs = Number(process.env.ATLAS_COMMAND_TIMEOUT_MS)
const watchMs = Number(process.env.ATLAS_WATCH_MS)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const send = (m) => new Promise((resolve) => process.send(m, resolve))

const CASES = {
  'BLPOP k 0': ['BLPOP', 'blk:list', '0'],
  'BRPOP k 0': ['BRPOP', 'blk:list', '0'],
  'BLMOVE a b LEFT RIGHT 0': ['BLMOVE', 'blk:list', 'blk:other', 'LEFT', 'RIGHT', '0'],
  'BLMPOP 0 1 k LEFT': ['BLMPOP', '0', '1', 'blk:list', 'LEFT'],
  'BZPOPMIN z 0': ['BZPOPMIN', 'blk:zset', '0'],
  'XREAD BLOCK 0 STREAMS s $': ['XREAD', 'BLOCK', '0', 'STREAMS', 'blk:stream', '$'],
  'WAIT 1 0 (no replica: forever)': ['WAIT', '1', '0'],
  'BLPOP k 30 (longer than commandTimeoutMs)': ['BLPOP', 'blk:list', '30'],
}

async function unblockAll(admin) {
  const list = String(await admin.command('CLIENT', 'LIST'))
  for (const line of list.split('\n')) {
    if (/ flags=\S*b/.test(line)) {
      const id = /id=(\d+)/.exec(line)[1]
      await admin.command('CLIENT', 'UNBLOCK', id).catch(() => undefined)
    }
  }
}

;(async () => {
  const admin = await RedisClient.connect({ port })
  for (const [name, cmd] of Object.entries(CASES)) {
    await send({ type: 'start', name })
    const c = await RedisClient.connect({ port, commandTimeoutMs: timeoutMs, reconnect: { minDelayMs: 20, maxDelayMs: 200 } })
    await c.set('blk:probe', 'here')
    const t0 = Date.now()
    let blocked = 'pending'
    c.command(...cmd).then(
      (v) => (blocked = `resolved ${JSON.stringify(v)}`),
      (e) => (blocked = `rejected ${e.code}`),
    )
    let firstOkMs
    const failuresAfterOk = []
    const codes = {}
    while (Date.now() - t0 < watchMs) {
      await sleep(100)
      const at = Date.now() - t0
      try {
        const v = await c.get('blk:probe')
        if (v !== 'here') throw Object.assign(new Error(`wrong value ${v}`), { code: 'WRONG' })
        if (firstOkMs === undefined) firstOkMs = at
      } catch (e) {
        codes[e.code] = (codes[e.code] || 0) + 1
        if (firstOkMs !== undefined) failuresAfterOk.push(`${e.code} at ${at} ms`)
      }
    }
    const blockedAtEnd = blocked
    await unblockAll(admin)
    const c0 = Date.now()
    await c.close()
    await send({ type: 'done', name, firstOkMs, failuresAfterOk, codes, blocked: blockedAtEnd, closeMs: Date.now() - c0 })
  }
  await admin.close()
  await send({ type: 'finished' })
  process.disconnect()
})().catch((e) => {
  console.error(e)
  process.exitCode = 1
  process.disconnect()
})
