// The workload benchmark/profile.sh samples: GET of a 100-byte value, 100 concurrent callers.
const { startRedis, stopAll } = require('../__test__/harness')
const { RedisClient } = require('../dist')

async function main() {
  const srv = await startRedis()
  const client = await RedisClient.connect(srv.url)
  await client.set('k', 'x'.repeat(100))
  const total = Number(process.env.N) || 1_000_000
  let issued = 0
  const start = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      while (issued < total) {
        issued++
        await client.get('k')
      }
    }),
  )
  const secs = Number(process.hrtime.bigint() - start) / 1e9
  console.log(`GET, 100 callers: ${Math.round(total / secs).toLocaleString('en-US')} ops/s`)
  await client.close()
  await stopAll()
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
