'use strict'
// Workload definitions, the key/value data they use, the latency histogram and
// the closed-loop driver: C callers, each an async loop awaiting one command at a
// time, all sharing one client object.

// ---- data -------------------------------------------------------------------------

/** Deterministic printable payload of `size` bytes (ASCII, so bytes == chars). */
function payload(size, seed) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
  let s = ''
  for (let i = 0; i < size; i++) s += alphabet[(i * 7 + seed * 13) % alphabet.length]
  return s
}

function keyspace(prefix, count, valueSize) {
  const keys = new Array(count)
  for (let i = 0; i < count; i++) keys[i] = `${prefix}${i}`
  return { prefix, count, valueSize, keys, value: payload(valueSize, valueSize) }
}

/** Every key the workloads read is written before the first client runs. */
const KEYSPACES = {
  small: keyspace('bench:s:', 10_000, 100),
  big: keyspace('bench:b:', 1_000, 4096),
  mget: keyspace('bench:m:', 100, 1024),
}

// ---- cases --------------------------------------------------------------------------

/** Spread callers over the keyspace so they do not all hit the same key. */
const keyIndex = (caller, n, count) => (caller * 7919 + n) % count

/**
 * Builds the per-operation function for a case: `op(caller, n)` issues the n-th
 * command of that caller and returns its promise.
 */
/** The key of the 'hot' workload; its prefix is the one cached in client-cache.js. */
const HOT_KEY = 'coa:hot'

function makeOp(kind, conn) {
  switch (kind) {
    case 'get': {
      const { keys, count } = KEYSPACES.small
      return (c, n) => conn.get(keys[keyIndex(c, n, count)])
    }
    case 'set': {
      const { keys, count, value } = KEYSPACES.small
      return (c, n) => conn.set(keys[keyIndex(c, n, count)], value)
    }
    case 'mget': {
      const { keys } = KEYSPACES.mget
      return () => conn.mget(keys)
    }
    case 'mix': {
      // 80/20 GET/SET; the offset by caller keeps the SETs spread over time.
      const { keys, count, value } = KEYSPACES.big
      return (c, n) => {
        const key = keys[keyIndex(c, n, count)]
        return (n + c) % 5 === 0 ? conn.set(key, value) : conn.get(key)
      }
    }
    case 'hot': {
      // One key read over and over: what client-side caching is for.
      return () => conn.get(HOT_KEY)
    }
    default:
      throw new Error(`unknown workload kind ${kind}`)
  }
}

const MGET_CALLERS = 10
const MIX_CALLERS = 100

/** All cases of a full run, in run order. `table` is the heading of the case's table. */
function fullCases() {
  const cases = []
  for (const kind of ['get', 'set']) {
    for (const c of [1, 10, 100, 1000]) {
      cases.push({
        id: `${kind}-c${c}`,
        kind,
        op: kind.toUpperCase(),
        concurrency: c,
        table: `${kind.toUpperCase()}, 100-byte values, ${c} concurrent caller${c === 1 ? '' : 's'}`,
      })
    }
  }
  cases.push({
    id: `mget-100x1k-c${MGET_CALLERS}`,
    kind: 'mget',
    op: 'MGET',
    concurrency: MGET_CALLERS,
    table: `MGET of 100 keys × 1 KB values, ${MGET_CALLERS} concurrent callers (ops/s = MGET commands/s)`,
  })
  cases.push({
    id: `mix-80-20-4k-c${MIX_CALLERS}`,
    kind: 'mix',
    op: 'MIX',
    concurrency: MIX_CALLERS,
    table: `80/20 GET/SET mix, 4 KB values, ${MIX_CALLERS} concurrent callers`,
  })
  return cases
}

/** The --quick subset: GET and SET at 1 and 100 callers. */
function quickCases() {
  return fullCases().filter((c) => (c.kind === 'get' || c.kind === 'set') && (c.concurrency === 1 || c.concurrency === 100))
}

// ---- latency histogram -------------------------------------------------------------------

const SUB_BITS = 7 // 128 sub-buckets per power of two: under 0.8% error
const SUB = 1 << SUB_BITS
const MAX_NS = 2 ** 31 - 1 // values above ~2.1 s land in the last bucket
const BUCKETS = (31 - SUB_BITS + 1) * SUB + SUB

/**
 * Log-linear histogram of nanosecond values in a preallocated Uint32Array
 * (HdrHistogram-style; no allocation per sample).
 */
class Histogram {
  constructor() {
    this.counts = new Uint32Array(BUCKETS)
    this.total = 0
    this.max = 0
  }

  reset() {
    this.counts.fill(0)
    this.total = 0
    this.max = 0
  }

  /** Adds `other`'s samples to this one's. */
  add(other) {
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += other.counts[i]
    this.total += other.total
    if (other.max > this.max) this.max = other.max
  }

  record(ns) {
    if (ns > MAX_NS) ns = MAX_NS
    else if (ns < 0) ns = 0
    if (ns > this.max) this.max = ns
    let idx
    if (ns < 2 * SUB) {
      idx = ns
    } else {
      const e = 31 - Math.clz32(ns) - SUB_BITS // >= 1 here
      idx = (e + 1) * SUB + ((ns >>> e) - SUB)
    }
    this.counts[idx]++
    this.total++
  }

  /** Midpoint of the bucket holding the q-quantile (0 < q <= 1), in ns; NaN when empty. */
  quantile(q) {
    if (this.total === 0) return NaN
    const rank = Math.max(1, Math.ceil(q * this.total))
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]
      if (seen >= rank) return Math.min(bucketMid(i), this.max)
    }
    return this.max
  }
}

function bucketMid(idx) {
  if (idx < 2 * SUB) return idx
  const e = Math.floor(idx / SUB) - 1
  const m = (idx % SUB) + SUB
  return (m + 0.5) * 2 ** e
}

// ---- driver --------------------------------------------------------------------------

const hrnow = process.hrtime.bigint

/**
 * Runs `concurrency` callers for `ms` milliseconds. Only commands that complete
 * before the deadline are counted (and timed); the ones still in flight then are
 * awaited but dropped, so every phase ends with nothing outstanding.
 * Resolves { ops, elapsedNs }; rejects with the first error any caller saw.
 */
async function runPhase(op, concurrency, ms, hist) {
  const start = hrnow()
  const deadline = start + BigInt(Math.round(ms * 1e6))
  let ops = 0
  let stopped = false
  let firstError

  async function caller(c) {
    let n = 0
    while (!stopped) {
      const t0 = hrnow()
      try {
        await op(c, n++)
      } catch (e) {
        if (!firstError) firstError = e
        stopped = true
        return
      }
      const t1 = hrnow()
      if (t1 >= deadline) {
        stopped = true
        return
      }
      if (hist) hist.record(Number(t1 - t0))
      ops++
    }
  }

  const callers = new Array(concurrency)
  for (let c = 0; c < concurrency; c++) callers[c] = caller(c)
  await Promise.all(callers)
  if (firstError) throw firstError
  return { ops, elapsedNs: Number(deadline - start) }
}

/**
 * One case against one connected client: warm-up (not recorded), then the
 * measured phase. Resolves { opsPerSec, p50Ns, p99Ns, ops, elapsedNs } (plus
 * `sampleCpu()` snapshots taken around the measured phase, when given).
 */
async function runCase(conn, spec, { warmupMs, durationMs, hist, sampleCpu }) {
  const op = makeOp(spec.kind, conn)
  if (warmupMs > 0) await runPhase(op, spec.concurrency, warmupMs, null)
  hist.reset()
  const cpuBefore = sampleCpu ? sampleCpu() : null
  const { ops, elapsedNs } = await runPhase(op, spec.concurrency, durationMs, hist)
  const cpuAfter = sampleCpu ? sampleCpu() : null
  return {
    ops,
    elapsedNs,
    opsPerSec: ops / (elapsedNs / 1e9),
    p50Ns: hist.quantile(0.5),
    p99Ns: hist.quantile(0.99),
    cpuBefore,
    cpuAfter,
  }
}

/** Slices per client and case in a full run (see runInTurns). */
const SLICES = 3

/**
 * One case for several clients in `slices` slices, the clients taking turns
 * slice by slice, so that a drift of the machine's speed during the case falls
 * on all of them. `runSlice(client, hist)` measures one slice (runCase, which
 * starts `hist` afresh) and resolves its result; a client whose slice
 * throws is not measured again in this case. Resolves a Map from each client
 * to { result: { ops, opsPerSec, p50Ns, p99Ns, foreign } } or { error }, where
 * `foreign` is the largest of the slices' `foreign` readings (NaN without any).
 */
async function runInTurns(clients, slices, runSlice) {
  const sums = new Map(clients.map((c) => [c, { hist: new Histogram(), ops: 0, elapsedNs: 0, foreign: NaN }]))
  const failed = new Map()
  const hist = new Histogram()
  for (let slice = 0; slice < slices; slice++) {
    for (const c of clients) {
      if (failed.has(c)) continue
      try {
        const r = await runSlice(c, hist)
        const sum = sums.get(c)
        sum.hist.add(hist)
        sum.ops += r.ops
        sum.elapsedNs += r.elapsedNs
        if (Number.isFinite(r.foreign)) sum.foreign = Number.isNaN(sum.foreign) ? r.foreign : Math.max(sum.foreign, r.foreign)
      } catch (e) {
        failed.set(c, e)
      }
    }
  }
  return new Map(clients.map((c) => {
    if (failed.has(c)) return [c, { error: failed.get(c) }]
    const { hist: h, ops, elapsedNs, foreign } = sums.get(c)
    return [c, { result: { ops, opsPerSec: ops / (elapsedNs / 1e9), p50Ns: h.quantile(0.5), p99Ns: h.quantile(0.99), foreign } }]
  }))
}

/**
 * Issues exactly `total` operations of the 80/20 mix through `callers` callers.
 * Each time `every` more have completed, new commands are held back until the
 * ones in flight have drained, then `onCheckpoint(done)` runs on a quiet client
 * (so memory readings do not depend on how many replies happen to be in flight).
 */
async function runSoak(conn, { total, callers, every, onCheckpoint }) {
  const op = makeOp('mix', conn)
  let issued = 0
  let done = 0
  let inFlight = 0
  let nextCheckpoint = every
  let gate = null
  let openGate = null
  let firstError

  async function caller(c) {
    for (;;) {
      if (gate) await gate
      if (issued >= total || firstError) return
      const n = issued++
      inFlight++
      try {
        await op(c, n)
      } catch (e) {
        if (!firstError) firstError = e
      } finally {
        inFlight--
      }
      if (firstError) {
        if (gate && inFlight === 0) openGate()
        return
      }
      done++
      if (done >= nextCheckpoint && !gate) {
        nextCheckpoint += every
        gate = new Promise((resolve) => { openGate = resolve })
      }
      if (gate && inFlight === 0) {
        const open = openGate
        try {
          await onCheckpoint(done)
        } finally {
          gate = null
          open()
        }
      }
    }
  }

  const all = []
  for (let c = 0; c < callers; c++) all.push(caller(c))
  await Promise.all(all)
  if (firstError) throw firstError
  return done
}

/** Checks that a freshly connected client reads and writes what the workloads expect. */
async function verify(conn) {
  const small = KEYSPACES.small
  const got = await conn.get(small.keys[0])
  if (got !== small.value) throw new Error(`GET returned ${describe(got)} instead of the 100-byte value`)
  await conn.set('bench:verify', 'ok')
  const back = await conn.get('bench:verify')
  if (back !== 'ok') throw new Error(`GET after SET returned ${describe(back)}`)
  const values = await conn.mget(KEYSPACES.mget.keys)
  if (!Array.isArray(values) || values.length !== 100 || values.some((v) => v !== KEYSPACES.mget.value)) {
    throw new Error('MGET did not return the 100 expected values')
  }
}

function describe(v) {
  if (v === null || v === undefined) return String(v)
  if (typeof v === 'string') return `a ${v.length}-char string`
  return `a ${v.constructor ? v.constructor.name : typeof v}`
}

module.exports = {
  HOT_KEY,
  runPhase,
  KEYSPACES,
  MGET_CALLERS,
  MIX_CALLERS,
  fullCases,
  quickCases,
  Histogram,
  runCase,
  runInTurns,
  SLICES,
  runSoak,
  verify,
}
