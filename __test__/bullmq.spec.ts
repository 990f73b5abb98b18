// BullMQ 6 on BullMQRedisClient (@atlas-erp/redis/bullmq), against real redis-server
// processes: the basics (add, process, complete, events, flows, job schedulers),
// workers that survive production (a Redis crash and restart under a running worker,
// a stalled worker's jobs taken over by another, close() while blocked, no open
// handle after close), and a Redis Cluster with a {hash-tag} prefix.
//
// Blocking: a worker's BZPOPMIN and QueueEvents' XREAD BLOCK go through
// RedisClient.command() on BullMQ's duplicate, which runs them on a dedicated
// connection; "close() while blocked", pause() and "no open handles" rest on the
// client's close() ending them at once.
import { spawn } from 'child_process'
import path from 'path'
import { FlowProducer, Job, Queue, QueueEvents, Worker } from 'bullmq'
import { BullMQRedisClient } from '../lib/bullmq'
import { startCluster, startRedis, stopAll, type RedisCluster, type RedisServer } from './harness'
import { sleep, withTimeout } from './helpers'

jest.setTimeout(60_000)

let server: RedisServer
/** Everything a test opened, closed in reverse order after it. */
let opened: Array<{ close(): Promise<unknown> } | BullMQRedisClient> = []

function track<T extends { close(): Promise<unknown> } | BullMQRedisClient>(x: T): T {
  opened.push(x)
  return x
}

async function closeOpened(): Promise<void> {
  const all = opened.reverse()
  opened = []
  for (const x of all) {
    if (x instanceof BullMQRedisClient) await withTimeout(x.quit(), 10_000, 'quit() hung')
    else await withTimeout(x.close(), 10_000, 'close() hung')
  }
}

let seq = 0
const qname = (name: string) => `${name}-${process.pid}-${++seq}`

/** Resolves when `check()` holds, polling every 20 ms; rejects after `ms`. */
async function until(check: () => Promise<boolean> | boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

beforeAll(async () => {
  // AOF fsync'ed on every write: a SIGKILL loses nothing, as a production Redis set up for queues.
  server = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] })
})
afterEach(closeOpened)
afterAll(stopAll)

const conn = () => track(new BullMQRedisClient({ port: server.port }))

describe('the client BullMQ is given', () => {
  test('BullMQ takes it as a ready-made IRedisClient (isIRedisClient) and uses it as it is', async () => {
    const connection = conn()
    const queue = track(new Queue(qname('as-is'), { connection }))
    expect(await queue.getBackend().client).toBe(connection)
    expect(connection.status).toBe('ready')
    expect(connection.isCluster).toBe(false)
  })

  test('a keyPrefix is refused (BullMQ has its own prefix option); the environment’s is left out', () => {
    expect(() => new BullMQRedisClient({ port: server.port, keyPrefix: 'app:' } as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('prefix') }),
    )
    const saved = { ...process.env }
    try {
      Object.assign(process.env, { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(server.port), REDIS_KEY_PREFIX: 'app:' })
      const fromEnv = track(new BullMQRedisClient())
      expect(fromEnv.options.keyPrefix).toBeUndefined()
      expect(fromEnv.options.port).toBe(server.port)
    } finally {
      for (const k of ['REDIS_HOST', 'REDIS_PORT', 'REDIS_KEY_PREFIX']) {
        if (saved[k] === undefined) delete process.env[k]
        else process.env[k] = saved[k]
      }
    }
  })

  test('options never show a password', async () => {
    const c = track(new BullMQRedisClient({ url: `redis://:s3cret-pw@127.0.0.1:${server.port}` }))
    expect(JSON.stringify(c.options)).not.toContain('s3cret-pw')
    const d = track(c.duplicate({ connectionName: 'dup' }))
    expect(JSON.stringify(d.options)).not.toContain('s3cret-pw')
    expect(d.options.connectionName).toBe('dup')
  })
})

describe('pipelines', () => {
  test('a pipeline of 2,500 script calls goes in parts of 1,000: replies in order, NOSCRIPT retried in every part', async () => {
    const connection = conn()
    connection.defineCommand('echoArg', { numberOfKeys: 1, lua: 'return ARGV[1]' })
    const batchesOf = () => (connection as unknown as { raw: { stats(): { batches: number } } }).raw.stats().batches
    const queue = (n: number) => {
      const p = connection.pipeline()
      for (let i = 0; i < n; i++) {
        p.runCommand('echoArg', [`k${i}`, `v${i}`])
        if (i % 500 === 0) p.llen(`list${i}`)
      }
      return p
    }
    const expected = (n: number) => {
      const out: Array<[null, unknown]> = []
      for (let i = 0; i < n; i++) {
        out.push([null, `v${i}`])
        if (i % 500 === 0) out.push([null, 0])
      }
      return out
    }
    expect(await queue(10).exec()).toEqual(expected(10)) // loads the script
    const before = batchesOf()
    expect(await queue(2500).exec()).toEqual(expected(2500))
    // 2,505 commands: three parts, each its own batch (sent before the next was encoded).
    expect(batchesOf() - before).toBe(3)
    // The server forgets the script behind the client's back: every call of every part meets
    // NOSCRIPT and runs again on its own, each answer in its own place.
    const admin = track(new BullMQRedisClient({ port: server.port }))
    await admin.call('SCRIPT', 'FLUSH')
    expect(await queue(2500).exec()).toEqual(expected(2500))
  })
})

describe('queues and workers', () => {
  test('add, process, complete: the return value, the job state and the events', async () => {
    const connection = conn()
    const name = qname('basic')
    const queue = track(new Queue(name, { connection }))
    const events = track(new QueueEvents(name, { connection }))
    await events.waitUntilReady()
    const completed = new Promise<{ jobId: string; returnvalue: unknown }>((resolve) => events.once('completed', resolve))
    const worker = track(new Worker(name, async (job: Job) => ({ doubled: job.data.n * 2 }), { connection }))
    const job = await queue.add('double', { n: 21 })
    const event = await completed
    expect(event.jobId).toBe(job.id)
    expect(event.returnvalue).toEqual({ doubled: 42 })
    expect(await job.getState()).toBe('completed')
    expect((await queue.getJob(job.id!))?.returnvalue).toEqual({ doubled: 42 })
    expect(await queue.getJobCounts('completed', 'waiting', 'active')).toEqual({ completed: 1, waiting: 0, active: 0 })
    // The worker's connections are BullMQ's duplicates of ours; the one it blocks on (a dedicated
    // connection of the duplicate) carries its name, once: one worker, one entry.
    await sleep(100)
    expect(await queue.getWorkers()).toHaveLength(1)
    expect(worker.isRunning()).toBe(true)
  })

  test('addBulk, retries with backoff, failures, progress and logs', async () => {
    const connection = conn()
    const name = qname('bulk')
    const queue = track(new Queue(name, { connection }))
    const seen = new Map<string, number>()
    const worker = track(
      new Worker(
        name,
        async (job: Job) => {
          seen.set(job.id!, (seen.get(job.id!) ?? 0) + 1)
          await job.updateProgress(50)
          await job.log(`attempt ${job.attemptsMade + 1}`)
          if (job.data.fail === 'always') throw new Error('boom')
          if (job.data.fail === 'once' && job.attemptsMade === 0) throw new Error('first try')
          return job.data.i
        },
        { connection, concurrency: 10 },
      ),
    )
    const jobs = await queue.addBulk([
      ...Array.from({ length: 50 }, (_, i) => ({ name: 'ok', data: { i } })),
      { name: 'flaky', data: { i: 50, fail: 'once' }, opts: { attempts: 3, backoff: { type: 'fixed', delay: 50 } } },
      { name: 'bad', data: { i: 51, fail: 'always' }, opts: { attempts: 2 } },
    ])
    expect(jobs).toHaveLength(52)
    await until(async () => {
      const c = await queue.getJobCounts('completed', 'failed')
      return c.completed === 51 && c.failed === 1
    })
    const flaky = (await queue.getJob(jobs[50].id!))!
    expect(flaky.attemptsMade).toBe(2)
    expect(await flaky.getState()).toBe('completed')
    expect((await queue.getJobLogs(flaky.id!)).logs).toEqual(['attempt 1', 'attempt 2'])
    const bad = (await queue.getJob(jobs[51].id!))!
    expect(bad.failedReason).toBe('boom')
    expect(seen.get(bad.id!)).toBe(2)
    expect((await queue.getJob(jobs[0].id!))!.progress).toBe(50)
    await worker.close()
  })

  test("xread from '$' with BLOCK sees what is added after the call, though the read waits on a connection of its own", async () => {
    const connection = conn()
    const key = `${qname('stream')}:events`
    for (let i = 0; i < 3; i++) {
      // QueueEvents starts so: a blocking read from '$', while the app goes on writing.
      const read = connection.xread([{ key, id: '$' }], { BLOCK: 3000 })
      const id = await connection.xadd(key, '*', { n: i })
      expect(await read).toEqual([[key, [[id, ['n', String(i)]]]]])
    }
  })

  test('delayed jobs, priorities, pause and resume', async () => {
    const connection = conn()
    const name = qname('delay')
    const queue = track(new Queue(name, { connection }))
    const order: string[] = []
    const worker = track(new Worker(name, async (job: Job) => void order.push(job.name), { connection, autorun: false }))
    await queue.add('late', {}, { delay: 300 })
    await queue.add('low', {}, { priority: 10 })
    await queue.add('high', {}, { priority: 1 })
    expect(await queue.getJobCounts('delayed', 'prioritized')).toEqual({ delayed: 1, prioritized: 2 })
    const t0 = Date.now()
    void worker.run()
    await until(() => order.length === 3)
    expect(order).toEqual(['high', 'low', 'late'])
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250)
    await queue.pause()
    await queue.add('paused', {})
    await sleep(200)
    expect(order).toHaveLength(3)
    await queue.resume()
    await until(() => order.length === 4)
  })

  test('flows: the parent waits for its children, then reads their values', async () => {
    const connection = conn()
    const name = qname('flow')
    const flows = track(new FlowProducer({ connection }))
    const queue = track(new Queue(name, { connection }))
    const worker = track(
      new Worker(
        name,
        async (job: Job) => {
          if (job.name === 'parent') return Object.values(await job.getChildrenValues()).reduce((a: number, b) => a + (b as number), 0)
          return job.data.n
        },
        { connection },
      ),
    )
    const tree = await flows.add({
      name: 'parent',
      queueName: name,
      children: [1, 2, 3].map((n) => ({ name: 'child', queueName: name, data: { n } })),
    })
    expect(await tree.job.getState()).toBe('waiting-children')
    await until(async () => (await tree.job.getState()) === 'completed')
    expect((await queue.getJob(tree.job.id!))?.returnvalue).toBe(6)
    await worker.close()
  })

  test('job schedulers (repeat every N ms) produce jobs until removed', async () => {
    const connection = conn()
    const name = qname('sched')
    const queue = track(new Queue(name, { connection }))
    let runs = 0
    track(new Worker(name, async () => void runs++, { connection }))
    await queue.upsertJobScheduler('tick', { every: 150 }, { name: 'tick' })
    expect(await queue.getJobSchedulersCount()).toBe(1)
    await until(() => runs >= 3, 10_000, 'three scheduled runs')
    await queue.removeJobScheduler('tick')
    expect(await queue.getJobSchedulersCount()).toBe(0)
  })
})

describe('workers in production', () => {
  test('Redis crashes and restarts under a running worker: processing resumes, no job is lost, each is completed once', async () => {
    const connection = conn()
    const name = qname('restart')
    const queue = track(new Queue(name, { connection }))
    queue.on('error', () => {}) // the outage is reported; the queue goes on
    const processed = new Map<string, number>()
    const completedEvents: string[] = []
    const worker = track(
      new Worker(
        name,
        async (job: Job) => {
          processed.set(job.id!, (processed.get(job.id!) ?? 0) + 1)
          await sleep(5)
          return job.id
        },
        // Short locks and stall checks: a job whose completion was cut by the crash is taken again soon.
        // A call in flight when the connection dropped fails (never replayed): BullMQ tries it again
        // after runRetryDelay (15 s by default).
        { connection, concurrency: 5, lockDuration: 2000, stalledInterval: 500, maxStalledCount: 5, runRetryDelay: 200 },
      ),
    )
    worker.on('completed', (job: Job) => completedEvents.push(job.id!))
    worker.on('error', () => {}) // the outage is reported; the worker goes on
    const before = await queue.addBulk(Array.from({ length: 200 }, (_, i) => ({ name: 'a', data: { i } })))
    await until(() => completedEvents.length >= 20, 10_000, 'processing to start')

    await server.kill() // a crash, in the middle of the work
    await sleep(300)
    await server.restart()

    const after = await queue.addBulk(Array.from({ length: 100 }, (_, i) => ({ name: 'b', data: { i } })))
    const ids = [...before, ...after].map((j) => j.id!)
    await until(async () => (await queue.getJobCounts('completed')).completed === ids.length, 30_000, 'every job completed')

    const counts = await queue.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed')
    expect(counts).toEqual({ completed: 300, failed: 0, waiting: 0, active: 0, delayed: 0 })
    const completedIds = new Set((await queue.getCompleted(0, -1)).map((j) => j.id))
    expect(ids.every((id) => completedIds.has(id))).toBe(true)
    // at least once: every job ran; a job runs again only when the crash cut its completion
    expect(ids.every((id) => (processed.get(id) ?? 0) >= 1)).toBe(true)
    const again = ids.filter((id) => processed.get(id)! > 1)
    expect(again.length).toBeLessThanOrEqual(5) // at most the jobs in flight (concurrency 5)
    // …and none is completed twice
    expect(new Set(completedEvents).size).toBe(completedEvents.length)
    expect(worker.isRunning()).toBe(true)
  })

  test('right after a Redis restart, two workers that share a queue close at once', async () => {
    const connection = conn()
    connection.on('error', () => {})
    const name = qname('restart-close')
    const queue = track(new Queue(name, { connection }))
    queue.on('error', () => {})
    const workers = [0, 1].map(() => new Worker(name, async () => {}, { connection }))
    for (const w of workers) w.on('error', () => {})
    await Promise.all(workers.map((w) => w.waitUntilReady()))
    await queue.add('a', {})
    await sleep(200) // both blocked in BZPOPMIN again
    await server.restart()
    const t0 = Date.now()
    await withTimeout(Promise.all(workers.map((w) => w.close())), 5000, 'the workers did not close')
    expect(Date.now() - t0).toBeLessThan(1000)
  })

  test("a stalled worker's job is taken over by another worker", async () => {
    const name = qname('stalled')
    const queue = track(new Queue(name, { connection: conn() }))
    let release!: () => void
    const hung = new Promise<void>((r) => (release = r))
    const first = new Worker(name, () => hung, { connection: conn(), lockDuration: 1000, stalledInterval: 300 })
    const picked = new Promise<void>((r) => first.once('active', () => r()))
    const job = await queue.add('work', { x: 1 })
    await picked
    // The first worker dies: its lock is no longer renewed (close(true) drops its jobs where they are).
    await first.close(true)
    const second = track(new Worker(name, async (j: Job) => `done by second: ${j.data.x}`, { connection: conn(), lockDuration: 1000, stalledInterval: 300 }))
    const stalled = new Promise<string>((r) => second.once('stalled', (id: string) => r(id)))
    expect(await withTimeout(stalled, 10_000, 'no stalled event')).toBe(job.id)
    await until(async () => (await job.getState()) === 'completed', 10_000, 'the job to complete')
    expect((await queue.getJob(job.id!))?.returnvalue).toBe('done by second: 1')
    release()
  })

  test('worker.close() while the worker is blocked waiting for jobs returns promptly', async () => {
    const connection = conn()
    const name = qname('close')
    const worker = new Worker(name, async () => {}, { connection, drainDelay: 5 })
    await worker.waitUntilReady()
    await sleep(300) // it is now blocked in BZPOPMIN for up to 5 s
    const t0 = Date.now()
    await worker.close()
    expect(Date.now() - t0).toBeLessThan(1000)
    const events = new QueueEvents(name, { connection })
    await events.waitUntilReady()
    await sleep(200) // blocked in XREAD BLOCK
    const t1 = Date.now()
    await events.close()
    expect(Date.now() - t1).toBeLessThan(1000)
  })

  test('pause(), resume(), pause() and close() in quick succession: each interrupts the blocked wait, none hangs', async () => {
    const connection = conn()
    const worker = new Worker(qname('pause'), async () => sleep(100), { connection })
    await worker.waitUntilReady()
    for (const step of ['pause', 'resume', 'pause', 'close'] as const) {
      await sleep(10)
      const t0 = Date.now()
      await withTimeout(Promise.resolve(worker[step]()), 3000, `${step}() hung`)
      expect(Date.now() - t0).toBeLessThan(1000)
    }
    expect(worker.isRunning()).toBe(false)
  })

  test('no open handle after close: a process that used a queue, a worker and events exits on its own', async () => {
    const entry = path.resolve(__dirname, '..', 'dist', 'bullmq', 'index.js')
    const script = `
      const { Queue, Worker, QueueEvents } = require('bullmq')
      const { BullMQRedisClient } = require(${JSON.stringify(entry)})
      ;(async () => {
        const connection = new BullMQRedisClient({ port: ${server.port} })
        const queue = new Queue('handles', { connection })
        const events = new QueueEvents('handles', { connection })
        await events.waitUntilReady()
        const worker = new Worker('handles', async (job) => job.data.n + 1, { connection })
        const done = new Promise((r) => events.on('completed', r))
        await queue.add('j', { n: 1 })
        console.log('@completed', JSON.stringify(await done))
        await new Promise((r) => setTimeout(r, 300)) // the worker blocks again
        await worker.close(); await events.close(); await queue.close(); await connection.quit()
        console.log('@closed')
      })().catch((e) => { console.error(e); process.exitCode = 1 })
    `
    const r = await new Promise<{ code: number | null; out: string; sinceClosed: number }>((resolve) => {
      const child = spawn(process.execPath, ['-e', script], { cwd: path.resolve(__dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] })
      let out = ''
      let closedAt = 0
      child.stdout.setEncoding('utf8')
      child.stdout.on('data', (d: string) => {
        out += d
        if (closedAt === 0 && out.includes('@closed')) closedAt = Date.now()
      })
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      child.on('close', (code) => {
        clearTimeout(killer)
        resolve({ code, out, sinceClosed: closedAt === 0 ? -1 : Date.now() - closedAt })
      })
    })
    expect(r.out).toContain('"returnvalue":2')
    expect(r.code).toBe(0)
    expect(r.sinceClosed).toBeGreaterThanOrEqual(0)
    expect(r.sinceClosed).toBeLessThan(1000)
  })
})

describe('Redis Cluster with a {hash-tag} prefix', () => {
  let cluster: RedisCluster
  beforeAll(async () => {
    cluster = await startCluster({ masters: 3 })
  })
  afterAll(async () => {
    await closeOpened()
    await cluster?.stop()
  })

  test('queues, workers, events and flows on a 3-master cluster', async () => {
    const connection = track(new BullMQRedisClient({ cluster: { nodes: cluster.nodes } }))
    expect(connection.isCluster).toBe(true)
    const prefix = '{atlas-bull}'
    const name = qname('cluster')
    const queue = track(new Queue(name, { connection, prefix }))
    const events = track(new QueueEvents(name, { connection, prefix }))
    await events.waitUntilReady()
    const completed: string[] = []
    events.on('completed', ({ jobId }) => completed.push(jobId))
    track(new Worker(name, async (job: Job) => (job.name === 'parent' ? Object.keys(await job.getChildrenValues()).length : job.data.i), { connection, prefix, concurrency: 10 }))
    const jobs = await queue.addBulk(Array.from({ length: 100 }, (_, i) => ({ name: 'j', data: { i } })))
    const flows = track(new FlowProducer({ connection, prefix }))
    const tree = await flows.add({ name: 'parent', queueName: name, children: [1, 2].map((i) => ({ name: 'c', queueName: name, data: { i } })) })
    await until(async () => (await tree.job.getState()) === 'completed', 20_000, 'the flow')
    await until(() => completed.length >= 103, 20_000, 'completed events')
    expect(await queue.getJobCounts('completed', 'failed')).toEqual({ completed: 103, failed: 0 })
    expect((await queue.getJob(jobs[7].id!))?.returnvalue).toBe(7)
    expect((await queue.getJob(tree.job.id!))?.returnvalue).toBe(2)
    // CLIENT LIST on every master: the node with the most of the worker's connections shows it once.
    expect(await queue.getWorkers()).toHaveLength(1)
  })
})
