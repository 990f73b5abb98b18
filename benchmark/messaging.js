'use strict'
// Transactions and pub/sub (issue 16's rows), this package's engines against ioredis,
// node-redis and valkey-glide on one server:
//   - MULTI/EXEC of 5 commands (INCR, SET, GET, EXPIRE, TTL on one key pair) at 100
//     callers, each caller its own key pair;
//   - pub/sub: one publisher client with 100 callers PUBLISHing 100-byte messages, one
//     subscriber client counting them; messages/s is what the subscriber received, from
//     the first publish to the last message heard.
// The contenders take turns in rounds (rotating order), so a slow phase of the host
// falls on all of them. A contender that lacks the feature is reported as failed.
// Alone: node benchmark/messaging.js [--quick] [--duration=SECONDS] [--only=TEXT] [--json]
const { hrnow, runPhase, suiteOf, runStandalone } = require('./feature-common')
const { load } = require('./engines')

const CALLERS = 100
const ROUNDS = 3
const MESSAGE = 'm'.repeat(100)
/** How long the subscriber may take to hear the last message after the last publish. */
const DRAIN_MS = 10_000

function hostPort(url) {
  const u = new URL(url)
  return { host: u.hostname, port: Number(u.port) }
}

/** ioredis' and node-redis' MULTI builders share their chain: the 5 commands of caller c. */
const chain5 = (m, c) => m.incr(`tx:n:${c}`).set(`tx:v:${c}`, 'value').get(`tx:v:${c}`).expire(`tx:v:${c}`, 60).ttl(`tx:v:${c}`)

/**
 * The contenders: { id, label, connect(url) → { multi(c), publish(msg), subscribe(channel, onMessage), close() } }.
 * `subscribe` opens what the client needs to listen (its own connection where the
 * client requires one) and resolves when the subscription is active.
 */
function contenders(engines) {
  const ours = engines.map((engine) => ({
    id: engine.id,
    label: engine.label,
    async connect(url) {
      const { RedisClient } = load(engine)
      const client = await RedisClient.connect(url)
      let sub
      return {
        multi: (c) => chain5(client.multi(), c).exec(),
        publish: (msg) => client.publish('bench', msg),
        async subscribe(channel, onMessage) {
          sub = await RedisClient.connect(url)
          await sub.subscribe([channel], onMessage)
        },
        close: async () => Promise.all([client.close(), sub?.close()]),
      }
    },
  }))
  const ioredis = {
    id: 'ioredis',
    label: 'ioredis',
    async connect(url) {
      const { Redis } = require('ioredis')
      const client = new Redis(url)
      let sub
      return {
        multi: (c) => chain5(client.multi(), c).exec(),
        publish: (msg) => client.publish('bench', msg),
        async subscribe(channel, onMessage) {
          sub = new Redis(url)
          sub.on('message', (ch, message) => onMessage(message, ch))
          await sub.subscribe(channel)
        },
        close: async () => Promise.all([client.quit(), sub?.quit()]),
      }
    },
  }
  const nodeRedis = {
    id: 'node-redis',
    label: 'node-redis',
    async connect(url) {
      const { createClient } = require('redis')
      const client = createClient({ url })
      client.on('error', () => {})
      await client.connect()
      let sub
      return {
        multi: (c) => chain5(client.multi(), c).exec(),
        publish: (msg) => client.publish('bench', msg),
        async subscribe(channel, onMessage) {
          sub = client.duplicate()
          sub.on('error', () => {})
          await sub.connect()
          await sub.subscribe(channel, (message, ch) => onMessage(message, ch))
        },
        close: async () => Promise.all([client.close(), sub?.close()]),
      }
    },
  }
  const glide = {
    id: 'glide',
    label: 'valkey-glide',
    async connect(url) {
      const { GlideClient, GlideClientConfiguration, Batch, Logger } = require('@valkey/valkey-glide')
      Logger.setLoggerConfig('off')
      const addresses = [hostPort(url)]
      const client = await GlideClient.createClient({ addresses, requestTimeout: 5000 })
      let sub
      return {
        multi: (c) => {
          const b = new Batch(true)
          b.incr(`tx:n:${c}`).set(`tx:v:${c}`, 'value').get(`tx:v:${c}`).expire(`tx:v:${c}`, 60).ttl(`tx:v:${c}`)
          return client.exec(b, true)
        },
        publish: (msg) => client.publish(msg, 'bench'),
        async subscribe(channel, onMessage) {
          // GLIDE subscribes at creation: a client of its own with the channel set.
          sub = await GlideClient.createClient({
            addresses,
            requestTimeout: 5000,
            pubsubSubscriptions: {
              channelsAndPatterns: { [GlideClientConfiguration.PubSubChannelModes.Exact]: new Set([channel]) },
              callback: (msg) => onMessage(msg.message, msg.channel),
            },
          })
        },
        close: async () => {
          client.close()
          sub?.close()
        },
      }
    },
  }
  return [...ours, ioredis, nodeRedis, glide]
}

/** One slice of MULTI/EXEC at CALLERS callers; checks the replies' shape once. */
async function multiSlice(conn, ms) {
  const first = await conn.multi(0)
  if (!Array.isArray(first) || first.length !== 5) throw new Error(`MULTI/EXEC answered ${JSON.stringify(first)}`)
  return runPhase((c) => conn.multi(c), CALLERS, ms)
}

/** One slice of pub/sub: publishes for `ms`, then waits for the subscriber to hear them all. */
async function pubsubSlice(conn, counter, ms) {
  const heard = counter.n
  const start = hrnow()
  const published = (await runPhase(() => conn.publish(MESSAGE), CALLERS, ms)).ops
  // The closed loop counts only publishes finished in time; the last ones in flight are heard too.
  const target = heard + published
  const deadline = Date.now() + DRAIN_MS
  while (counter.n < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1))
  if (counter.n < target) throw new Error(`the subscriber heard ${counter.n - heard} of ${published} messages`)
  const seconds = Number(counter.lastAt - start) / 1e9
  return { ops: counter.n - heard, opsPerSec: (counter.n - heard) / seconds }
}

/** The two workloads; each contender's failure in one leaves the other measured. */
const WORKLOADS = {
  multi: { warm: (conn, ms) => multiSlice(conn, ms), slice: (conn, ms) => multiSlice(conn, ms) },
  pubsub: {
    async warm(conn, ms, state) {
      state.counter = { n: 0, lastAt: 0n }
      await conn.subscribe('bench', (message) => {
        if (message.length !== MESSAGE.length) throw new Error(`a message of ${message.length} bytes`)
        state.counter.n++
        state.counter.lastAt = hrnow()
      })
      return pubsubSlice(conn, state.counter, ms)
    },
    slice: (conn, ms, state) => pubsubSlice(conn, state.counter, ms),
  },
}

async function runAll({ url, engines, duration, warmup, only, flush, log }) {
  const all = contenders(engines).filter((c) => !only || c.id.includes(only))
  const runs = []
  const conns = []
  for (const c of all) {
    let conn
    try {
      conn = await c.connect(url)
      conns.push(conn)
    } catch (e) {
      log(`${c.label}: ${e.message}`)
    }
    for (const [name, w] of Object.entries(WORKLOADS)) {
      const run = { contender: c, conn, name, w, state: {}, slices: [], error: conn ? undefined : 'could not connect' }
      if (conn) {
        try {
          await w.warm(conn, warmup * 1000, run.state)
        } catch (e) {
          run.error = e.message
          log(`${c.label}, ${name}: ${e.message}`)
        }
      }
      runs.push(run)
    }
  }
  const sliceMs = (duration * 1000) / ROUNDS
  for (let round = 0; round < ROUNDS; round++) {
    const order = runs.filter((r) => !r.error)
    for (let i = 0; i < round * Object.keys(WORKLOADS).length; i++) order.push(order.shift())
    for (const run of order) {
      if (run.error) continue
      try {
        await flush()
        run.slices.push(await run.w.slice(run.conn, sliceMs, run.state))
      } catch (e) {
        run.error = e.message
        log(`${run.contender.label}, ${run.name}: ${e.message}`)
      }
    }
  }
  for (const conn of conns) await conn.close().catch(() => {})
  const rate = (slices) => {
    const ops = slices.reduce((s, x) => s + x.ops, 0)
    const seconds = slices.reduce((s, x) => s + x.ops / x.opsPerSec, 0)
    return seconds > 0 ? ops / seconds : NaN
  }
  return all.map((c) => {
    const of = (name) => runs.find((r) => r.contender === c && r.name === name)
    const cell = (name) => (of(name).error ? { error: of(name).error } : { perSec: rate(of(name).slices) })
    return { id: c.id, label: c.label, multi: cell('multi'), pubsub: cell('pubsub') }
  })
}

function table(rows) {
  const ref = rows.find((r) => r.id === 'ioredis')
  const fmt = (n) => Math.round(n).toLocaleString('en-US')
  const cells = (r, name) => {
    const x = r[name]
    if (x.error) return [`failed: ${x.error.replace(/\|/g, '/')}`, '']
    const d = ref?.[name].perSec
    return [fmt(x.perSec), Number.isFinite(d) ? `${(x.perSec / d).toFixed(2)}×` : '—']
  }
  const lines = [
    `${ROUNDS} rounds, contenders in rotating order. MULTI/EXEC: 5 commands per transaction, ${CALLERS} callers on one client. `
      + `Pub/sub: one publisher client at ${CALLERS} callers, one subscriber, ${MESSAGE.length}-byte messages; messages/s as the subscriber heard them. × = ÷ ioredis.`,
    '',
    '| client | MULTI/EXEC per s | × | pub/sub messages per s | × |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.label} | ${[...cells(r, 'multi'), ...cells(r, 'pubsub')].join(' | ')} |`),
  ]
  return lines.join('\n') + '\n'
}

module.exports = { suite: suiteOf('Transactions and pub/sub', runAll, table), runAll, table }
runStandalone(module, __filename, runAll, table)
