// The workload benchmark/profile-throttle.sh measures: the throttler's script run
// 400 times with 25 increments each, keys from a seeded sequence, as
// RedisThrottlerStorage sends it.
//   fresh:  1,000 trackers, ttl 60 s: no hit expires during the run
//   busy:   100 trackers, ttl 60 s: after each tracker's first call, the usual
//           increment (as in npm run bench's throttler-allowed)
//   steady: 100 trackers, ttl 300 ms, 2 ms between calls: a call mostly finds a
//           hit or two of its tracker to expire
//   sparse: 100 trackers, ttl 200 ms, a pause every 10 calls: a call mostly finds
//           every hit of its tracker expired, and starts a new window
// (Under callgrind the server runs ~50× slower; the modes are tuned to that.)
// Usage: node benchmark/profile-throttle.js <port> <mode> [script.lua]
// With a script file, that script is loaded and run instead of the package's own
// (src/scripts/throttle.lua): to compare versions without rebuilding.
const fs = require('fs')
const { RedisClient } = require('../dist')

const MODES = {
  fresh: { trackers: 1000, ttl: 60_000, pause: 0 },
  busy: { trackers: 100, ttl: 60_000, pause: 0 },
  steady: { trackers: 100, ttl: 300, pause: 2, every: 1 },
  sparse: { trackers: 100, ttl: 200, pause: 20, every: 10 },
}

async function main() {
  const [port, mode = 'fresh', file] = process.argv.slice(2)
  const m = MODES[mode]
  if (m === undefined) throw new Error(`mode must be one of ${Object.keys(MODES).join(', ')}`)
  const client = await RedisClient.connect({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 120_000 })
  const sha = file && (await client.command('SCRIPT', 'LOAD', fs.readFileSync(file, 'utf8')))
  let seed = 1
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
  for (let call = 0; call < 400; call++) {
    // the layout of src/scripts/throttle.lua: the records, then the hit lists; one rule
    const recs = []
    for (let i = 0; i < 25; i++) recs.push(`throttler:{ip:${Math.floor(next() * m.trackers)}}`)
    const keys = [...recs, ...recs.map((rec) => `${rec}:default`)]
    const args = [60_000, '', m.ttl, 1000, 60_000, 'default']
    if (sha) await client.command('EVALSHA', sha, keys.length, ...keys, ...args)
    else await client.runScript('throttle', keys, args)
    if (m.pause > 0 && call % m.every === 0) await new Promise((r) => setTimeout(r, m.pause))
  }
  await client.close()
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
