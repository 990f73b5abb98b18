// What observability costs: GET at 100 callers through one client with nobody on the
// diagnostics channels, with a subscriber that does nothing (the channels' own cost), and
// with instrumentRedis() on the OpenTelemetry SDK (a span and a histogram record per
// command; spans batched to an exporter that drops them, as a collector would take them).
// The three take turns in rounds so that drift of the machine falls on all alike. Besides
// ops/s, each row has the process's CPU time per GET (the JS thread and the native I/O
// threads): other processes on the machine move it far less than they move throughput.
// Alone: node benchmark/otel.js [--duration=SECONDS]; run.js includes it.
const dc = require('node:diagnostics_channel')

const harness = require('../__test__/harness')
const { Histogram, runCase } = require('./workloads')
const report = require('./report')
const { CURRENT, load } = require('./engines')

const CONCURRENCY = 100
const ROUNDS = 3

/** CPU time of this process so far, in µs (user and system, every thread). */
const sampleCpu = () => process.cpuUsage()

/** The variants, each set up and torn down around its slice of a round. */
function variants() {
  return [
    { id: 'none', label: 'no subscriber', on: () => () => {} },
    {
      id: 'noop',
      label: 'a subscriber that does nothing (every event of atlas-erp:redis:command)',
      on: () => {
        const channel = dc.tracingChannel('atlas-erp:redis:command')
        const noop = () => {}
        const handlers = { start: noop, end: noop, asyncStart: noop, asyncEnd: noop, error: noop }
        channel.subscribe(handlers)
        return () => channel.unsubscribe(handlers)
      },
    },
    {
      id: 'otel',
      label: 'instrumentRedis() on the OpenTelemetry SDK (spans and the duration histogram)',
      on: () => {
        const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base')
        const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics')
        const { instrumentRedis } = load(CURRENT, 'otel')
        const discard = { export: (_spans, done) => done({ code: 0 }), shutdown: () => Promise.resolve() }
        const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(discard)] })
        class Reader extends MetricReader {
          onShutdown() { return Promise.resolve() }
          onForceFlush() { return Promise.resolve() }
        }
        const meterProvider = new MeterProvider({ readers: [new Reader()] })
        const otel = instrumentRedis({ tracerProvider, meterProvider })
        return () => {
          otel.disable()
          void tracerProvider.shutdown()
          void meterProvider.shutdown()
        }
      },
    },
  ]
}

/** Runs the rounds against `url`; resolves the markdown section. */
async function suite({ url, durationMs = 3000, warmupMs = 500, log = console.error }) {
  const { RedisClient } = load(CURRENT)
  const client = await RedisClient.connect(url)
  const hist = new Histogram()
  const list = variants()
  const rounds = new Map(list.map((v) => [v.id, []]))
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of list) {
        const off = v.on()
        try {
          const r = await runCase(client, { kind: 'get', concurrency: CONCURRENCY }, { warmupMs, durationMs: durationMs / ROUNDS, hist, sampleCpu })
          const cpu = r.cpuAfter.user + r.cpuAfter.system - r.cpuBefore.user - r.cpuBefore.system
          rounds.get(v.id).push({ ...r, cpuUsPerOp: cpu / r.ops })
          log(`  otel round ${round + 1} ${v.label.slice(0, 48).padEnd(48)} ${report.fmtOps(r.opsPerSec)} ops/s, ${(cpu / r.ops).toFixed(2)} µs CPU per GET`)
        } finally {
          off()
        }
      }
    }
  } finally {
    await client.close()
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const summary = list.map((v) => {
    const rs = rounds.get(v.id)
    return {
      v,
      ops: median(rs.map((r) => r.opsPerSec)),
      p50: median(rs.map((r) => r.p50Ns)),
      p99: median(rs.map((r) => r.p99Ns)),
      cpu: median(rs.map((r) => r.cpuUsPerOp)),
    }
  })
  const [base] = summary
  const out = [
    '',
    '## Observability: diagnostics channels and OpenTelemetry',
    '',
    `GET of 100-byte values at ${CONCURRENCY} callers, one client; the variants take turns in ${ROUNDS} rounds (medians). ` +
      'CPU per GET: the process\'s CPU time (JS and native I/O threads) ÷ GETs. × = ratio to the row without a subscriber.',
    '',
    '| variant | ops/s | ops/s × | p50 | p99 | CPU per GET | CPU × |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ]
  for (const s of summary) {
    out.push(
      `| ${s.v.label} | ${report.fmtOps(s.ops)} | ${report.fmtRatio(s.ops / base.ops)} | ${report.fmtLatency(s.p50)} | ${report.fmtLatency(s.p99)} | ` +
        `${s.cpu.toFixed(2)} µs | ${report.fmtRatio(s.cpu / base.cpu)} |`,
    )
  }
  out.push('')
  return out.join('\n')
}

module.exports = { suite }

if (require.main === module) {
  const arg = process.argv.slice(2).find((a) => a.startsWith('--duration='))
  const durationMs = arg ? Number(arg.split('=')[1]) * 1000 : 3000
  ;(async () => {
    const srv = await harness.startRedis()
    try {
      console.log(await suite({ url: srv.url, durationMs }))
    } finally {
      await harness.stopAll()
    }
  })().catch((e) => {
    console.error(e)
    process.exitCode = 1
  })
}
