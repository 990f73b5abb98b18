#!/usr/bin/env node
'use strict'
// Side-by-side benchmark of @atlas-erp/redis against ioredis (default and
// auto-pipelining), node-redis and valkey-glide, all against one throwaway
// redis-server started by the test harness.
//
//   node benchmark/run.js                    full run; writes benchmark/results.md and ops-vs-concurrency.svg
//   node benchmark/run.js --quick            CI smoke: GET/SET at 1 and 100 callers, 1 s each, 3 clients (+ the baseline engine)
//   node benchmark/run.js --duration=5       seconds per case (default 3)
//   node benchmark/run.js --only=atlas,ioredis-auto
//   node benchmark/run.js --baseline-engine  also the package built by `npm run bench:baseline`
//                                            (the own engine, before redis-rs), in every suite
//   node benchmark/run.js --soak             5,000,000 mixed ops through @atlas-erp/redis; RSS growth check
//
// See --help for the rest.
const fs = require('fs')
const net = require('net')
const os = require('os')
const path = require('path')

const harness = require('../__test__/harness')
const { clientsFor, CLIENT_IDS, PEER_IDS, BASELINE_ID, packageVersion } = require('./clients')
const engines = require('./engines')
const { KEYSPACES, MIX_CALLERS, SLICES, fullCases, quickCases, runCase, runInTurns, runSoak, verify } = require('./workloads')
const report = require('./report')

/** Benchmark files exporting `suite({ url, server, durationMs, warmupMs, log })` → markdown (cluster.js starts its own cluster). */
const EXTRA_SUITES = ['client-cache', 'cache', 'sessions', 'ratelimit', 'messaging', 'otel', 'cluster', 'e2e', 'bullmq']

const HELP = `usage: node benchmark/run.js [options]

  --quick             small subset for CI smoke: GET/SET at 1 and 100 callers, 1 s per case,
                      clients atlas,ioredis,ioredis-auto and, when built, atlas-own-engine
                      (unless --only); report files are rendered but only written with --out
  --duration=SECONDS  measured duration per case (default 3; --quick: 1)
  --warmup=SECONDS    warm-up per case, not measured (default 0.5; --quick: 0.25)
  --only=IDS          comma-separated clients: ${CLIENT_IDS.join(', ')}
  --out=DIR           where results.md and ops-vs-concurrency.svg go (default: benchmark/)
  --retries=N         measure a row again (at most N times; default 2, --quick: 0) when other processes
                      used more than --max-foreign cores during its measured phase
  --max-foreign=CORES CPU use by other processes tolerated during a measurement (default 0.15)
  --soak              instead: ${(5_000_000).toLocaleString('en-US')} operations of the 80/20 GET/SET mix (4 KB values,
                      ${MIX_CALLERS} callers) through @atlas-erp/redis; prints RSS every 500,000 ops
                      and exits 1 if RSS grew by more than 10 MB after the first 500,000
  --soak-ops=N        total operations for --soak (default 5000000)
${engines.ENGINE_HELP}
  --help

Both engines side by side: \`npm run bench:baseline\` once (builds commit ${engines.DEFAULT_COMMIT} into
benchmark/.engines/), then \`npm run bench -- --baseline-engine\`: "${engines.OWN_ENGINE_ID}" gets a row in every
GET/SET/MGET/mix table (ratios still ÷ ioredis auto-pipelining) and its own rows in the client-cache, cache,
sessions, rate-limit and cluster suites.`

// ---- CLI --------------------------------------------------------------------------

function parseArgs(argv) {
  const { choice, rest } = engines.engineArgs(argv)
  const opts = {
    engineChoice: choice,
    quick: false,
    soak: false,
    duration: undefined,
    warmup: undefined,
    only: undefined,
    out: undefined,
    soakOps: 5_000_000,
    retries: undefined,
    foreignLimit: 0.15,
  }
  for (const arg of rest) {
    const [name, value] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined]
    const num = () => {
      const v = Number(value)
      if (value === undefined || !Number.isFinite(v) || v <= 0) usage(`${name} needs a positive number`)
      return v
    }
    switch (name) {
      case '--quick': opts.quick = true; break
      case '--soak': opts.soak = true; break
      case '--duration': opts.duration = num(); break
      case '--warmup': opts.warmup = value === '0' ? 0 : num(); break
      case '--only': {
        if (!value) usage('--only needs a list of client ids')
        const ids = value.split(',').map((s) => s.trim()).filter(Boolean)
        const unknown = ids.filter((id) => !CLIENT_IDS.includes(id))
        if (unknown.length) usage(`unknown client id(s): ${unknown.join(', ')}`)
        opts.only = ids
        break
      }
      case '--out': if (!value) usage('--out needs a directory'); opts.out = path.resolve(value); break
      case '--soak-ops': opts.soakOps = Math.floor(num()); break
      case '--retries': opts.retries = value === '0' ? 0 : Math.floor(num()); break
      case '--max-foreign': opts.foreignLimit = num(); break
      case '--help': case '-h': console.log(HELP); process.exit(0); break
      default: usage(`unknown argument ${arg}`)
    }
  }
  const wantsOwn = opts.only?.includes(engines.OWN_ENGINE_ID)
  if (wantsOwn && opts.engineChoice === false) usage(`--only=${engines.OWN_ENGINE_ID} and --no-baseline-engine contradict each other`)
  try {
    opts.engines = engines.resolveEngines(wantsOwn ? opts.engineChoice ?? true : opts.engineChoice)
  } catch (e) {
    usage(e.message)
  }
  return opts
}

/** The issue's targets, checked against this run's rows. */
function targetsMarkdown(cases, results) {
  const row = (kind, concurrency, client) => {
    const c = cases.find((x) => x.kind === kind && (concurrency === undefined || x.concurrency === concurrency))
    const r = c && results.get(c.id) && results.get(c.id).get(client)
    return r && r.result
  }
  const lines = []
  const check = (target, value, met) => lines.push(`| ${target} | ${value} | ${met ? 'met' : '**not met**'} |`)
  for (const kind of ['get', 'set']) {
    const a = row(kind, 100, 'atlas')
    const b = row(kind, 100, 'ioredis-auto')
    if (a && b) check(`${kind.toUpperCase()} at 100 callers: ≥ 2× the ops/s of ioredis (auto-pipelining)`, `${(a.opsPerSec / b.opsPerSec).toFixed(2)}×`, a.opsPerSec >= 2 * b.opsPerSec)
  }
  for (const kind of ['get', 'set']) {
    const a = row(kind, 10, 'atlas')
    const b = row(kind, 10, 'ioredis')
    if (a && b) check(`${kind.toUpperCase()} at 10 callers: ahead of ioredis (default)`, `${(a.opsPerSec / b.opsPerSec).toFixed(2)}×`, a.opsPerSec > b.opsPerSec)
  }
  for (const kind of ['get', 'set']) {
    const a = row(kind, 1000, 'atlas')
    const peers = PEER_IDS.map((id) => [id, row(kind, 1000, id)]).filter(([, r]) => r)
    if (a && peers.length) {
      const [bestId, best] = peers.reduce((x, y) => (y[1].opsPerSec > x[1].opsPerSec ? y : x))
      check(`${kind.toUpperCase()} at 1,000 callers: ahead of every other client`, `${(a.opsPerSec / best.opsPerSec).toFixed(2)}× the best (${bestId})`, a.opsPerSec > best.opsPerSec)
    }
  }
  const a1 = row('get', 1, 'atlas')
  const d1 = row('get', 1, 'ioredis')
  if (a1 && d1) check('One caller (GET): p50 latency ≤ 1.1× ioredis (default)', `${(a1.p50Ns / d1.p50Ns).toFixed(2)}× (${report.fmtLatency(a1.p50Ns)} vs ${report.fmtLatency(d1.p50Ns)})`, a1.p50Ns <= 1.1 * d1.p50Ns)
  const m = row('mget', undefined, 'atlas')
  const mi = row('mget', undefined, 'ioredis')
  if (m && mi) check('MGET 100 × 1 KB: ≥ 1.5× the ops/s of ioredis (default)', `${(m.opsPerSec / mi.opsPerSec).toFixed(2)}×`, m.opsPerSec >= 1.5 * mi.opsPerSec)
  if (!lines.length) return ''
  return ['', '## Targets', '', '| target | this run | |', '| --- | --- | --- |', ...lines, ''].join('\n')
}

/** This build against the baseline engine, case by case, from this run's rows (empty without a baseline). */
function engineComparisonMarkdown(cases, results, list) {
  const old = list.find((e) => !e.current)
  if (!old || !list.includes(engines.CURRENT)) return ''
  const lines = [
    '',
    `## ${engines.CURRENT.label} against ${old.label}`,
    '',
    'ops/s and p50 of this build ÷ those of the baseline engine, in the same run.',
    '',
    '| case | ops/s × | p50 × |',
    '| --- | ---: | ---: |',
  ]
  for (const c of cases) {
    const row = results.get(c.id)
    const a = row && row.get(engines.CURRENT.id) && row.get(engines.CURRENT.id).result
    const b = row && row.get(old.id) && row.get(old.id).result
    lines.push(a && b ? `| ${c.table} | ${report.fmtRatio(a.opsPerSec / b.opsPerSec)} | ${report.fmtRatio(a.p50Ns / b.p50Ns)} |` : `| ${c.table} | — | — |`)
  }
  return lines.join('\n') + '\n'
}

/** The README's benchmark table: ops/s per client for the headline cases, from this run. */
function readmeSummary(meta, cases, results, entries) {
  const pick = [['get', 1], ['get', 100], ['get', 1000], ['set', 100], ['mget'], ['mix']]
  const clients = entries.map((e) => e.spec)
  const lines = [
    `Measured by \`npm run bench\` on ${meta.date.slice(0, 10)}: ${meta.cpuModel}, ${meta.cores} cores, ${meta.ramGb} GB, Node.js ${meta.node}, redis-server ${meta.redisVersion} on loopback. ops/s (× ioredis with auto-pipelining); all rows and p50/p99 latencies in [benchmark/results.md](benchmark/results.md).`,
    '',
    `| case | ${clients.map((c) => c.label).join(' | ')} |`,
    `| --- | ${clients.map(() => '---:').join(' | ')} |`,
  ]
  for (const [kind, concurrency] of pick) {
    const c = cases.find((x) => x.kind === kind && (concurrency === undefined || x.concurrency === concurrency))
    if (!c) continue
    const row = results.get(c.id)
    const base = row && row.get(BASELINE_ID) && row.get(BASELINE_ID).result
    const cells = clients.map((spec) => {
      const r = row && row.get(spec.id) && row.get(spec.id).result
      if (!r) return 'failed'
      const ratio = base ? ` (${(r.opsPerSec / base.opsPerSec).toFixed(2)}×)` : ''
      const ops = report.fmtOps(r.opsPerSec)
      return spec.id === 'atlas' ? `**${ops}${ratio}**` : `${ops}${ratio}`
    })
    lines.push(`| ${c.table.replace(/, 100-byte values/, '')} | ${cells.join(' | ')} |`)
  }
  lines.push('', '![GET ops/s against concurrent callers](benchmark/ops-vs-concurrency.svg)')
  return lines.join('\n')
}

/** Replaces the README's text between the bench-table markers. */
function updateReadme(summary) {
  const file = path.join(__dirname, '..', 'README.md')
  const text = fs.readFileSync(file, 'utf8')
  const start = '<!-- bench-table:start -->'
  const end = '<!-- bench-table:end -->'
  const a = text.indexOf(start)
  const b = text.indexOf(end)
  if (a < 0 || b < a) return
  fs.writeFileSync(file, text.slice(0, a + start.length) + '\n' + summary + '\n' + text.slice(b))
}

function usage(message) {
  console.error(`${message}\n\n${HELP}`)
  process.exit(2)
}

const log = (...a) => console.error(...a) // progress goes to stderr; tables go to stdout

function withTimeout(promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms) }),
  ]).finally(() => clearTimeout(timer))
}

const errorMessage = (e) => {
  const msg = (e && e.message) || String(e)
  return msg.split('\n')[0].slice(0, 200)
}

// ---- server setup ------------------------------------------------------------------

const encodeCommand = (args) => {
  let s = `*${args.length}\r\n`
  for (const a of args) s += `$${Buffer.byteLength(a)}\r\n${a}\r\n`
  return s
}

/**
 * Sends commands whose replies are one line each (+OK, :n, -ERR) over a raw
 * socket, independent of every client under test. Resolves the reply lines.
 */
function rawCommands({ host, port }, commands) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host)
    const replies = []
    let buf = ''
    socket.setEncoding('utf8')
    socket.on('connect', () => socket.end(commands.map(encodeCommand).join('')))
    socket.on('data', (chunk) => {
      buf += chunk
      let i
      while ((i = buf.indexOf('\r\n')) >= 0) {
        replies.push(buf.slice(0, i))
        buf = buf.slice(i + 2)
      }
      if (replies.length >= commands.length) socket.destroy()
    })
    socket.on('error', reject)
    socket.on('close', () => {
      const bad = replies.find((r) => r.startsWith('-'))
      if (bad) reject(new Error(`setup command failed: ${bad}`))
      else if (replies.length < commands.length) reject(new Error(`setup: ${replies.length}/${commands.length} replies`))
      else resolve(replies)
    })
  })
}

function startServer() {
  return harness.startRedis({ args: ['--save', '', '--appendonly', 'no'] })
}

async function populate(server) {
  const commands = [['FLUSHALL']]
  for (const ks of Object.values(KEYSPACES)) {
    for (let i = 0; i < ks.count; i += 200) {
      const args = ['MSET']
      for (let j = i; j < Math.min(i + 200, ks.count); j++) args.push(ks.keys[j], ks.value)
      commands.push(args)
    }
  }
  commands.push(['DBSIZE'])
  const replies = await rawCommands(server, commands)
  const expected = Object.values(KEYSPACES).reduce((n, ks) => n + ks.count, 0)
  if (replies[replies.length - 1] !== `:${expected}`) throw new Error(`populate: DBSIZE ${replies[replies.length - 1]}, expected ${expected}`)
  return expected
}

// ---- environment -------------------------------------------------------------------

function cpuModel() {
  try {
    const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)
    if (m) return m[1].trim()
  } catch { /* not Linux */ }
  return (os.cpus()[0] && os.cpus()[0].model) || 'unknown'
}

async function redisVersion(server) {
  const info = await server.cli('INFO', 'server')
  const m = info.match(/redis_version:(\S+)/)
  return m ? m[1] : 'unknown'
}

/** Which source the package's numbers belong to: commit, uncommitted changes, binary build time. */
function buildInfo() {
  const root = path.resolve(__dirname, '..')
  const parts = []
  try {
    const git = (...a) => require('child_process').execFileSync('git', ['-C', root, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    parts.push(`git ${git('rev-parse', '--short', 'HEAD')}`)
    if (git('status', '--porcelain', '--', 'src', 'lib', 'Cargo.toml', 'Cargo.lock')) parts.push('with uncommitted changes in src/ or lib/')
  } catch { /* not a git checkout */ }
  try {
    const bin = fs.readdirSync(root).filter((f) => f.endsWith('.node')).map((f) => fs.statSync(path.join(root, f)).mtime)
    if (bin.length) parts.push(`native binary built ${bin.sort((a, b) => b - a)[0].toISOString()}`)
    parts.push(`dist built ${fs.statSync(path.join(root, 'dist', 'core', 'client.js')).mtime.toISOString()}`)
  } catch { /* not built */ }
  return parts.join(', ')
}

function packageList(clients) {
  const seen = new Set()
  const list = []
  for (const c of clients) {
    if (seen.has(c.pkgName)) continue
    seen.add(c.pkgName)
    if (c.version) {
      list.push({ name: c.pkgName, version: c.version })
      continue
    }
    const version = packageVersion(c.pkg)
    list.push({ name: c.pkgName, version: c.pkg === '.' ? `${version} (${buildInfo()})` : version })
  }
  return list
}

// ---- interference check ------------------------------------------------------------

/**
 * Reads, from /proc, how much CPU the rest of the machine used: total busy time
 * (user + nice + system; interrupt time is left out, as loopback traffic lands
 * there) minus this process (all its threads, native ones included) minus our
 * redis-server. `foreignCores(a, b)` is that difference in cores between two samples.
 */
function cpuProbe(serverPid) {
  let hz = 100
  try { hz = Number(require('child_process').execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100 } catch { /* default */ }
  const sample = () => {
    try {
      const f = fs.readFileSync('/proc/stat', 'utf8').slice(0, 200).split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number)
      const st = fs.readFileSync(`/proc/${serverPid}/stat`, 'utf8')
      const rest = st.slice(st.lastIndexOf(')') + 2).split(' ')
      const u = process.cpuUsage()
      return {
        busy: (f[0] + f[1] + f[2]) / hz,
        server: (Number(rest[11]) + Number(rest[12])) / hz,
        self: (u.user + u.system) / 1e6,
        wall: Number(process.hrtime.bigint()) / 1e9,
      }
    } catch {
      return null
    }
  }
  const foreignCores = (a, b) => {
    if (!a || !b || b.wall <= a.wall) return NaN
    return Math.max(0, (b.busy - a.busy - (b.server - a.server) - (b.self - a.self)) / (b.wall - a.wall))
  }
  /** Waits (at most maxMs) for a 0.5 s window in which others stay under `limit` cores. */
  const waitQuiet = async (limit, maxMs) => {
    const until = Date.now() + maxMs
    while (Date.now() < until) {
      const a = sample()
      await new Promise((r) => setTimeout(r, 500))
      const v = foreignCores(a, sample())
      if (!(v > limit)) return
    }
  }
  return { available: sample() !== null, sample, foreignCores, waitQuiet }
}

// ---- client lifecycle ----------------------------------------------------------------

const CONNECT_TIMEOUT_MS = 15_000
const CLOSE_TIMEOUT_MS = 10_000

async function connectAll(selected, server) {
  const target = { url: server.url, host: server.host, port: server.port }
  const entries = []
  for (const spec of selected) {
    const entry = { spec, conn: null, dead: null }
    try {
      entry.conn = await withTimeout(spec.connect(target), CONNECT_TIMEOUT_MS, 'connect')
      await withTimeout(verify(entry.conn), CONNECT_TIMEOUT_MS, 'verify')
      log(`  connected: ${spec.label}`)
    } catch (e) {
      entry.dead = errorMessage(e)
      log(`  FAILED to connect ${spec.label}: ${entry.dead}`)
      if (entry.conn) await closeEntry(entry)
    }
    entries.push(entry)
  }
  return entries
}

async function closeEntry(entry) {
  if (!entry.conn) return
  const conn = entry.conn
  entry.conn = null
  try {
    await withTimeout(Promise.resolve().then(() => conn.close()), CLOSE_TIMEOUT_MS, 'close')
  } catch (e) {
    log(`  warning: closing ${entry.spec.label}: ${errorMessage(e)}`)
  }
}

/** Reports what still holds the event loop if the process fails to exit on its own. */
function exitWatchdog() {
  setTimeout(() => {
    const resources = process.getActiveResourcesInfo ? process.getActiveResourcesInfo() : []
    console.error(`benchmark: the process did not exit by itself 5 s after closing every client; still active: ${resources.join(', ') || 'unknown'}`)
    process.exit(3)
  }, 5000).unref()
}

// ---- benchmark mode ---------------------------------------------------------------------

async function bench(opts) {
  const t0 = Date.now()
  const quick = opts.quick
  const durationMs = 1000 * (opts.duration ?? (quick ? 1 : 3))
  const warmupMs = 1000 * (opts.warmup ?? (quick ? 0.25 : 0.5))
  // Slices per case and client (see the case loop); each has its own warm-up.
  const slices = quick ? 1 : SLICES
  const sliceMs = durationMs / slices
  const sliceWarmupMs = warmupMs / slices
  const clients = clientsFor(opts.engines)
  const ids = opts.only ?? (quick ? [...opts.engines.map((e) => e.id), 'ioredis', 'ioredis-auto'] : clients.map((c) => c.id))
  const selected = clients.filter((c) => ids.includes(c.id))
  const measured = opts.engines.filter((e) => ids.includes(e.id))
  const cases = quick ? quickCases() : fullCases()
  const outDir = opts.out ?? (quick ? null : __dirname)
  opts.retries = opts.retries ?? (quick ? 0 : 2)

  log(`benchmark: ${cases.length} cases × ${selected.length} clients, warm-up ${warmupMs / 1000} s + ${durationMs / 1000} s each`)
  const server = await startServer()
  log(`  redis-server pid ${server.pid} on ${server.url}`)
  const nkeys = await populate(server)
  log(`  populated ${nkeys.toLocaleString('en-US')} keys`)

  const meta = {
    command: `node benchmark/run.js${process.argv.length > 2 ? ' ' + process.argv.slice(2).join(' ') : ''}`,
    date: new Date().toISOString(),
    cpuModel: cpuModel(),
    cores: os.cpus().length,
    ramGb: (os.totalmem() / 1024 ** 3).toFixed(1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    redisVersion: await redisVersion(server),
    packages: packageList(selected),
    method: [
      `One redis-server on 127.0.0.1 started by \`__test__/harness\`; keys pre-populated once (${KEYSPACES.small.count.toLocaleString('en-US')} × 100 B, ${KEYSPACES.big.count.toLocaleString('en-US')} × 4 KB, ${KEYSPACES.mget.count} × 1 KB); SETs overwrite them with same-size values, so the DB is never flushed between clients.`,
      'A caller is an async loop awaiting one command at a time; all callers of a case share one client object (one connection for the JS clients).',
      `Each case: ${durationMs / 1000} s measured per client${slices > 1 ? ` in ${slices} slices, the clients taking turns slice by slice (a drift of the machine's speed falls on all of them), each slice` : ','} after ${Math.round(sliceWarmupMs) / 1000} s of warm-up (not measured). ops/s counts the commands completed before the deadline.`,
      'Latency: `process.hrtime.bigint()` around each await, recorded into a preallocated log-linear histogram (< 0.8% bucket error); p50/p99 over the measured phase. It includes the time a reply waits for the event loop.',
      'Clients take turns within each case (workload-major order), slice by slice, each case starting with the next client in turn, so no client is always the first after a case switch; all clients stay connected (idle) while another runs.',
      '× ioredis-autopipelining = ops/s ÷ ops/s of "ioredis (auto-pipelining)" in the same case.',
      `Interference check: CPU time of processes other than this one and its redis-server is read from /proc around each measured phase; above ${opts.foreignLimit} cores the row is measured again (at most ${opts.retries} time(s)), and rows still above it are marked ⚠.`,
      ...measured.filter((e) => !e.current).map(engines.describe),
      'Non-default options, none on the hot path: ioredis `retryStrategy: () => null` + `lazyConnect` (fail fast instead of retrying); node-redis `reconnectStrategy: false`; valkey-glide `requestTimeout: 5000` (its 250 ms default can trip on a GC pause at 1000 callers) and its logger set to "off".',
    ],
    notes: [],
  }
  if (os.cpus().length <= 2) {
    meta.notes.push(
      `Only ${os.cpus().length} CPU(s): the Node process (with the native clients' I/O threads) shares them with redis-server. At 1–10 callers the latency is mostly thread wake-ups across CPUs, which depends on whether the CPUs are idle (slower) or kept busy, so those rows can differ by up to 2× between runs; at 100+ callers a single row can drop well below its usual rate. Compare rows of one table, and repeat a run before drawing conclusions from a small difference.`,
    )
  }
  log(`  ${meta.cpuModel}, ${meta.cores} cores, Node ${meta.node}, redis ${meta.redisVersion}`)

  const entries = await connectAll(selected, server)
  const labelWidth = Math.max(28, ...selected.map((c) => c.label.length))
  const cpu = cpuProbe(server.pid)
  let rerun = 0
  const disturbed = []
  const results = new Map() // caseId -> Map(clientId -> { result } | { error })
  const sections = []

  for (const [k, spec] of cases.entries()) {
    log(`\n▶ ${spec.table}`)
    const row = new Map()
    // The clients take turns, slice by slice, so that a drift of this VM's speed during a case
    // falls on all of them; each case also starts with the next client in turn, so no client is
    // always the first after a case switch (the one that meets the last case's garbage).
    const order = [...entries.slice(k % entries.length), ...entries.slice(0, k % entries.length)]
    const budget = sliceWarmupMs + sliceMs + 30_000
    const measured = await runInTurns(order.filter((e) => !e.dead), slices, async (entry, hist) => {
      for (let attempt = 0; ; attempt++) {
        const r = await withTimeout(runCase(entry.conn, spec, { warmupMs: sliceWarmupMs, durationMs: sliceMs, hist, sampleCpu: cpu.sample }), budget, 'case')
        r.foreign = cpu.foreignCores(r.cpuBefore, r.cpuAfter)
        if (!(r.foreign > opts.foreignLimit) || attempt >= opts.retries) return r
        log(`  ${entry.spec.label.padEnd(labelWidth)} ${report.fmtOps(r.opsPerSec).padStart(10)} ops/s  — other processes used ${r.foreign.toFixed(2)} cores: measuring this slice again`)
        rerun++
        await cpu.waitQuiet(opts.foreignLimit, 15_000)
      }
    })
    for (const entry of order) {
      const m = measured.get(entry)
      if (!m) {
        row.set(entry.spec.id, { error: entry.dead })
      } else if (m.error) {
        const msg = errorMessage(m.error)
        row.set(entry.spec.id, { error: msg })
        log(`  ${entry.spec.label.padEnd(labelWidth)} failed: ${msg}`)
        meta.notes.push(`${entry.spec.label} failed in "${spec.table}": ${msg}`)
        // Commands may still be hanging on this client: skip it from now on.
        if (/timed out after/.test(msg)) entry.dead = `skipped (hung in an earlier case)`
      } else {
        const r = m.result
        const foreign = r.foreign > opts.foreignLimit
        row.set(entry.spec.id, { result: r, disturbed: foreign })
        if (foreign) disturbed.push(`${entry.spec.label} in "${spec.table}" (${r.foreign.toFixed(2)} cores)`)
        log(`  ${entry.spec.label.padEnd(labelWidth)} ${report.fmtOps(r.opsPerSec).padStart(10)} ops/s  p50 ${report.fmtLatency(r.p50Ns)}  p99 ${report.fmtLatency(r.p99Ns)}${Number.isFinite(r.foreign) ? `  (others: at most ${r.foreign.toFixed(2)} cores)` : ''}`)
      }
    }
    results.set(spec.id, row)
    const base = row.get(BASELINE_ID)
    const baseline = base && base.result ? base.result.opsPerSec : undefined
    const table = report.caseTable(
      entries.map((e) => {
        const cell = row.get(e.spec.id)
        return { ...cell, label: cell.disturbed ? `${e.spec.label} ⚠` : e.spec.label }
      }),
      baseline,
    )
    sections.push({ title: spec.table, table })
    console.log(`\n### ${spec.table}\n\n${table}`)
  }

  for (const entry of entries) await closeEntry(entry)

  // The feature suites (full runs only), on the same server.
  const extraSections = []
  if (!quick && !opts.only) {
    for (const name of EXTRA_SUITES) {
      log(`\n== ${name}`)
      try {
        extraSections.push(await require(`./${name}`).suite({ url: server.url, server, durationMs, warmupMs, log, engines: measured }))
      } catch (e) {
        extraSections.push(`\n## ${name}\n\nfailed: ${errorMessage(e)}\n`)
      }
    }
  }
  await harness.stopAll()

  if (!cpu.available) {
    meta.notes.push('CPU use of other processes could not be read (no /proc): rows were not checked for interference.')
  } else {
    if (rerun) meta.notes.push(`${rerun} measurement(s) were repeated because other processes used more than ${opts.foreignLimit} cores meanwhile.`)
    if (disturbed.length) {
      meta.notes.push(`⚠ Still disturbed after ${opts.retries} repeat(s), so read these rows with care: ${disturbed.join('; ')}.`)
    } else {
      meta.notes.push(`No row was disturbed: other processes used at most ${opts.foreignLimit} cores during every measured phase.`)
    }
  }

  // The chart: GET ops/s against concurrency, one line per client.
  const getCases = cases.filter((c) => c.kind === 'get')
  const xs = getCases.map((c) => c.concurrency)
  const series = entries.map((e) => ({
    id: e.spec.id,
    label: e.spec.label,
    points: getCases
      .map((c) => ({ x: c.concurrency, r: results.get(c.id).get(e.spec.id) }))
      .filter((p) => p.r && p.r.result)
      .map((p) => ({ x: p.x, y: p.r.result.opsPerSec })),
  }))
  const svg = report.opsVsConcurrencySvg(series, { title: 'GET throughput vs concurrent callers (100-byte values, one client object)', xs })

  const elapsedS = (Date.now() - t0) / 1000
  meta.notes.push(`Wall time of this run: ${elapsedS.toFixed(0)} s.`)
  let md = report.resultsMarkdown(meta, sections) + '\n![GET ops/s vs concurrency](ops-vs-concurrency.svg)\n'
  md += targetsMarkdown(cases, results)
  md += engineComparisonMarkdown(cases, results, measured)
  md += extraSections.join('\n')
  const profile = path.join(__dirname, 'profile.md')
  if (!quick && fs.existsSync(profile)) md += '\n' + fs.readFileSync(profile, 'utf8')

  if (outDir) {
    fs.mkdirSync(outDir, { recursive: true })
    fs.writeFileSync(path.join(outDir, 'results.md'), md)
    fs.writeFileSync(path.join(outDir, 'ops-vs-concurrency.svg'), svg)
    if (!quick && !opts.only && outDir === __dirname) updateReadme(readmeSummary(meta, cases, results, entries))
    log(`\nwrote ${path.relative(process.cwd(), path.join(outDir, 'results.md')) || 'results.md'} and ops-vs-concurrency.svg (${elapsedS.toFixed(0)} s)`)
  } else {
    log(`\n--quick: report rendered (${md.length} chars of markdown, ${svg.length} of SVG) but not written; pass --out=DIR to keep it (${elapsedS.toFixed(0)} s)`)
  }

  // A client that failed is reported in its row; the smoke run fails only when ours did.
  const ours = [...results.values()].map((row) => row.get('atlas')).filter(Boolean)
  if (quick && ours.some((r) => r.error)) {
    log('--quick: @atlas-erp/redis failed at least one case')
    process.exitCode = 1
  }
}

// ---- soak mode -------------------------------------------------------------------------

function loadGc() {
  try {
    require('v8').setFlagsFromString('--expose-gc')
    return require('vm').runInNewContext('gc')
  } catch {
    return null
  }
}

async function soak(opts) {
  const total = opts.soakOps
  const every = Math.min(500_000, total)
  const limitBytes = 10 * 1024 * 1024
  const gc = loadGc()
  const atlas = clientsFor([engines.CURRENT])[0]

  log(`soak: ${total.toLocaleString('en-US')} ops of the 80/20 GET/SET mix (4 KB values), ${MIX_CALLERS} callers, through ${atlas.label} ${packageVersion('.')}`)
  const server = await startServer()
  await populate(server)
  let conn
  try {
    conn = await withTimeout(atlas.connect({ url: server.url, host: server.host, port: server.port }), CONNECT_TIMEOUT_MS, 'connect')
    await verify(conn)
  } catch (e) {
    console.log(`soak: failed: ${errorMessage(e)}`)
    process.exitCode = 1
    if (conn) await conn.close().catch(() => {})
    await harness.stopAll()
    return
  }

  const mb = (n) => report.fmtBytes(n)
  const started = process.hrtime.bigint()
  let last = started
  let lastDone = 0
  let firstRss
  let lastRss
  let minRss = Infinity
  let maxRss = 0
  const measure = (done) => {
    if (gc) gc()
    const m = process.memoryUsage()
    const now = process.hrtime.bigint()
    const rate = ((done - lastDone) / Number(now - last)) * 1e9
    last = now
    lastDone = done
    if (firstRss === undefined) firstRss = m.rss
    lastRss = m.rss
    if (m.rss < minRss) minRss = m.rss
    if (m.rss > maxRss) maxRss = m.rss
    console.log(
      `${done.toLocaleString('en-US').padStart(11)} ops   RSS ${mb(m.rss).padStart(9)}   heap ${mb(m.heapUsed).padStart(8)}   external ${mb(m.external).padStart(8)}   ${report.fmtOps(rate).padStart(8)} ops/s`,
    )
  }

  let failed = null
  let done = 0
  try {
    done = await runSoak(conn, { total, callers: MIX_CALLERS, every, onCheckpoint: measure })
    if (done !== lastDone) measure(done)
  } catch (e) {
    failed = errorMessage(e)
  }
  await conn.close()
  await harness.stopAll()

  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (failed) {
    console.log(`soak: failed after ${done.toLocaleString('en-US')} ops: ${failed}`)
    process.exitCode = 1
    return
  }
  const growth = lastRss - firstRss
  console.log(
    `soak: ${done.toLocaleString('en-US')} ops in ${seconds.toFixed(1)} s (${report.fmtOps(done / seconds)} ops/s); ` +
      `RSS ${mb(firstRss)} after the first ${every.toLocaleString('en-US')} → ${mb(lastRss)} at the end: growth ${growth >= 0 ? '+' : ''}${mb(growth)} ` +
      `(limit 10 MB; readings ranged ${mb(minRss)}–${mb(maxRss)}${gc ? '; gc() before each reading' : ''})`,
  )
  if (growth > limitBytes) {
    console.log('soak: FAILED — RSS grew by more than 10 MB')
    process.exitCode = 1
  } else {
    console.log('soak: OK')
  }
}

// ---- main ---------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  process.once('SIGINT', () => {
    // The harness's exit handler kills the redis-server.
    console.error('\ninterrupted')
    process.exit(130)
  })
  try {
    if (opts.soak) await soak(opts)
    else await bench(opts)
  } catch (e) {
    console.error(`benchmark: ${e && e.stack ? e.stack : e}`)
    process.exitCode = 1
    await harness.stopAll().catch(() => {})
  }
  exitWatchdog()
}

main()
