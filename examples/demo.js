// A short tour: connect, set with a TTL, read it back, watch it expire.
// Uses REDIS_URL (or REDIS_HOST/REDIS_PORT/REDIS_PASSWORD) when set; otherwise it
// starts a private redis-server on a free port so that no existing server is touched.
const { RedisClient } = require('../dist')

async function target() {
  if (process.env.REDIS_URL || process.env.REDIS_HOST) {
    return { how: 'the server named by REDIS_URL / REDIS_HOST', options: undefined, stop: async () => {} }
  }
  const { startRedis, stopAll } = require('../__test__/harness')
  const srv = await startRedis()
  return { how: `a private redis-server started for this demo at ${srv.host}:${srv.port}`, options: srv.url, stop: stopAll }
}

async function main() {
  const { how, options, stop } = await target()
  console.log(`Connecting to ${how}`)
  const redis = await RedisClient.connect(options)
  const key = `atlas-demo:${process.pid}:greeting`
  try {
    console.log(`ping: ${(await redis.ping()).toFixed(3)} ms`)
    await redis.set(key, 'hello from Rust', 2)
    console.log(`SET ${key} "hello from Rust" with a 2 s TTL`)
    console.log(`GET ${key} -> ${JSON.stringify(await redis.get(key))} (PTTL ${await redis.pttl(key)} ms)`)
    const wrote = await redis.set(key, 'ignored', { nx: true })
    console.log(`SET NX on the existing key wrote: ${wrote}`)
    await redis.set(42, 'x').catch((e) => console.log(`a bad key is refused before sending: ${e.code} (${e.message})`))
    console.log('waiting 2.1 s for the TTL...')
    await new Promise((r) => setTimeout(r, 2100))
    console.log(`GET ${key} -> ${JSON.stringify(await redis.get(key))} (expired)`)
    const s = redis.stats()
    console.log(`stats: ${s.commands} commands in ${s.batches} batches, ${s.errors} errors, p50 ${s.latency.p50Ms} ms`)
  } finally {
    await redis.del(key)
    await redis.close()
    await stop()
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
