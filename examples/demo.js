// A short tour: connect, set with a TTL, read it back, watch it expire.
// Uses the server named by REDIS_URL (or REDIS_HOST/REDIS_PORT/REDIS_PASSWORD) when
// set; otherwise, or when that server cannot be reached, the package's embedded
// in-process store (memory://), so the demo runs on a machine without Redis.
const { RedisClient } = require('../dist')

async function connect() {
  if (process.env.REDIS_URL || process.env.REDIS_HOST) {
    try {
      const redis = await RedisClient.connect() // reads REDIS_URL, else REDIS_HOST, REDIS_PORT, …
      console.log('Connected to the server named by REDIS_URL / REDIS_HOST')
      return redis
    } catch (e) {
      console.log(`Cannot use the server named by REDIS_URL / REDIS_HOST (${e.message})`)
    }
  } else {
    console.log('Neither REDIS_URL nor REDIS_HOST is set.')
  }
  console.log('Running on memory:// (the embedded in-process store: same commands, nothing persisted)')
  return RedisClient.connect('memory://')
}

async function main() {
  const redis = await connect()
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
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
