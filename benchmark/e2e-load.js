'use strict'
// The HTTP load generator of benchmark/e2e.js, in a child process of its own:
// C connections kept alive, each with one request in flight at a time (a closed
// loop: the next request leaves when the answer came), for a warm-up and then
// a measured phase. Requests rotate over the signed-in session cookies.
//
// Sent { url, connections, warmupMs, durationMs, cookies }, it answers
// { requests, warmRequests, seconds, reqPerSec, p50Us, p99Us, hist } (or { error }); `hist`:
// the latency histogram's non-empty buckets as [index, count] pairs, and its max,
// for the parent to merge the slices of one case.
const http = require('http')
const { Histogram, runPhase } = require('./workloads')

async function measure({ url, connections, warmupMs, durationMs, cookies }) {
  const u = new URL(url)
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  const get = (c, n) =>
    new Promise((resolve, reject) => {
      const req = http.get({ agent, host: u.hostname, port: u.port, path: u.pathname, headers: { cookie: cookies[(c + n) % cookies.length] } }, (res) => {
        res.resume()
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${u.pathname} answered ${res.statusCode}`))))
        res.on('error', reject)
      })
      req.on('error', reject)
    })
  try {
    const warm = await runPhase(get, connections, warmupMs)
    const hist = new Histogram()
    const { ops, elapsedNs } = durationMs > 0 ? await runPhase(get, connections, durationMs, hist) : { ops: 0, elapsedNs: 0 }
    const seconds = Number(elapsedNs) / 1e9
    const buckets = []
    for (let i = 0; i < hist.counts.length; i++) if (hist.counts[i] > 0) buckets.push([i, hist.counts[i]])
    return {
      requests: ops,
      // requests answered in the warm-up (and those cut off at its deadline are not counted anywhere)
      warmRequests: warm.ops,
      seconds,
      reqPerSec: ops / seconds,
      p50Us: hist.quantile(0.5) / 1000,
      p99Us: hist.quantile(0.99) / 1000,
      hist: { buckets, max: hist.max },
    }
  } finally {
    agent.destroy()
  }
}

module.exports = { measure }

if (require.main === module && process.send) {
  process.on('message', (m) => {
    measure(m).then(
      (r) => process.send(r, () => process.disconnect()),
      (e) => process.send({ error: String((e && e.message) || e) }, () => process.disconnect()),
    )
  })
}
