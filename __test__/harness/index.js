'use strict'
// Real-Redis test harness: throwaway redis-server processes on free ports.
// Plain CommonJS with no dependency on the package under test, so jest specs and
// benchmark scripts can both require it. Readiness uses raw sockets for the same reason.
const { spawn, execFile, execFileSync } = require('child_process')
const fs = require('fs')
const net = require('net')
const os = require('os')
const path = require('path')
const tls = require('tls')
const vm = require('vm')
const { makeCerts } = require('./certs')
const { startProxy, stopProxies, TcpProxy } = require('./proxy')

const HOST = '127.0.0.1'
const SERVER_BIN = process.env.REDIS_SERVER_BIN || 'redis-server'
const CLI_BIN = process.env.REDIS_CLI_BIN || 'redis-cli'
const READY_TIMEOUT_MS = 10_000
const STOP_GRACE_MS = 3_000
const PORT_ATTEMPTS = 5

// Inside jest, `process` is a per-test-file copy whose 'exit' event never fires;
// the real one is reachable from the outer context. One registry per real process
// (shared by every test file of a jest worker) holds what must die with it.
const realProcess = vm.runInThisContext('process')
const REGISTRY = Symbol.for('atlas-erp.redis-harness')
const registry = realProcess[REGISTRY] || (realProcess[REGISTRY] = createRegistry())

function createRegistry() {
  const reg = { pids: new Set(), dirs: new Set() }
  // Last resort for servers nobody stopped: 'exit' handlers must be synchronous.
  realProcess.on('exit', () => {
    for (const pid of reg.pids) {
      try { realProcess.kill(pid, 'SIGKILL') } catch { /* already gone */ }
    }
    for (const dir of reg.dirs) fs.rmSync(dir, { recursive: true, force: true })
  })
  return reg
}

// On Linux, also ask the kernel to SIGKILL the server if the test process dies
// without running 'exit' handlers (SIGKILL, OOM, a CI timeout). setpriv execs
// redis-server, so the pid we track is the server's.
const PDEATHSIG = process.platform === 'linux' && (() => {
  try { execFileSync('setpriv', ['--help'], { stdio: 'ignore' }); return true } catch { return false }
})()

/** Servers started through this module instance (one per jest test file). */
const servers = new Set()

const fileSize = (file) => (fs.existsSync(file) ? fs.statSync(file).size : 0)

/** The last `lines` lines of `file` after byte `offset`. */
function tail(file, offset = 0, lines = 20) {
  let text
  try { text = fs.readFileSync(file).subarray(offset).toString('utf8').trimEnd() } catch { return '' }
  return lines === Infinity ? text : text.split('\n').slice(-lines).join('\n')
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** A port that was free a moment ago (the OS picks it; we close and hand it on). */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.unref()
    probe.once('error', reject)
    probe.listen(0, HOST, () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

class RedisServer {
  constructor(opts, dir, certs) {
    this.host = HOST
    this.port = 0
    /** Cluster bus port (only when cluster: true). */
    this.busPort = undefined
    this.dir = dir
    this.logFile = path.join(dir, 'redis.log')
    this.stdioFile = path.join(dir, 'stdio.log')
    this.password = opts.password
    this.users = (opts.users || []).map((u) => ({ ...u }))
    this.certs = certs
    this._opts = opts
    this._child = null
    this._exited = Promise.resolve()
    this._running = false
    this._paused = false
  }

  get url() { return `${this.certs ? 'rediss' : 'redis'}://${this.host}:${this.port}` }
  get pid() { return this._running ? this._child.pid : undefined }

  _args() {
    const o = this._opts
    // Sentinel mode: the (writable) config file comes first; redis-server rewrites it.
    const a = o.sentinelConf !== undefined ? [this.confFile, '--sentinel'] : []
    a.push('--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', this.dir,
      '--daemonize', 'no', '--logfile', this.logFile)
    if (this.certs) {
      const t = typeof o.tls === 'object' ? o.tls : {}
      const c = this.certs
      a.push('--port', '0', '--tls-port', String(this.port),
        '--tls-cert-file', t.wrongHost ? c.wrongHostCertFile : c.certFile,
        '--tls-key-file', t.wrongHost ? c.wrongHostKeyFile : c.keyFile,
        '--tls-ca-cert-file', c.caFile,
        '--tls-auth-clients', t.authClients || 'optional')
    } else {
      a.push('--port', String(this.port))
    }
    if (this.password !== undefined) a.push('--requirepass', this.password)
    // redis 7.0 accepts the redis.conf `user` directive on the command line.
    for (const u of this.users) {
      a.push('--user', u.name, 'on', `>${u.password}`, ...(u.rules || '~* &* +@all').split(/\s+/).filter(Boolean))
    }
    if (o.cluster) {
      // Explicit bus port: the default (port + 10000) may be taken or exceed 65535.
      a.push('--cluster-enabled', 'yes', '--cluster-config-file', path.join(this.dir, 'nodes.conf'),
        '--cluster-port', String(this.busPort))
      if (this.certs) a.push('--tls-cluster', 'yes', '--tls-replication', 'yes')
    }
    return a.concat(o.args || [])
  }

  get confFile() { return path.join(this.dir, 'sentinel.conf') }

  async _start() {
    fs.mkdirSync(this.dir, { recursive: true })
    registry.dirs.add(this.dir)
    // Written once: on restart the sentinel keeps what it learned (its rewritten file).
    if (this._opts.sentinelConf !== undefined && !fs.existsSync(this.confFile)) {
      fs.writeFileSync(this.confFile, this._opts.sentinelConf)
    }
    // Restarts append to the same files: error reports show only this run's part.
    const since = { [this.logFile]: fileSize(this.logFile), [this.stdioFile]: fileSize(this.stdioFile) }
    // Config errors go to stderr before the logfile is opened: keep them in a file
    // (a pipe would be one more handle to drain and close).
    const out = fs.openSync(this.stdioFile, 'a')
    const [bin, args] = PDEATHSIG
      ? ['setpriv', ['--pdeathsig', 'KILL', SERVER_BIN, ...this._args()]]
      : [SERVER_BIN, this._args()]
    const child = spawn(bin, args, { stdio: ['ignore', out, out] })
    fs.closeSync(out)
    this._child = child
    this._running = true
    this._paused = false
    let spawnError
    this._exited = new Promise((resolve) => {
      const done = () => {
        this._running = false
        registry.pids.delete(child.pid)
        resolve()
      }
      child.once('exit', done)
      // A failed spawn (ENOENT) emits 'error' and never 'exit'.
      child.once('error', (err) => { spawnError = err; done() })
    })
    if (child.pid) registry.pids.add(child.pid)
    // Don't hold the event loop open for a server nobody stopped: the exit hook
    // (and PDEATHSIG) still kill it. stop()/kill() re-ref while they wait.
    child.unref()

    const output = () => [this.stdioFile, this.logFile]
      .map((f) => tail(f, since[f])).filter(Boolean).join('\n') || '(no output)'
    const deadline = Date.now() + READY_TIMEOUT_MS
    for (;;) {
      if (!this._running) {
        const text = output()
        const err = new Error(spawnError
          ? `cannot run ${bin}: ${spawnError.message}`
          : `redis-server exited during startup (port ${this.port}):\n${text}`)
        err.bindFailed = /Address already in use/.test(text)
        throw err
      }
      // The log check makes sure the PONG came from our server, not from another
      // process that took the port while ours failed to bind. (Redis logs that line
      // at notice level, so it is skipped when the args ask for a quieter log.)
      if (await this._ping() && (this._quietLog()
        || /Ready to accept connections|Sentinel ID is/.test(tail(this.logFile, since[this.logFile], Infinity)))) return
      if (Date.now() > deadline) {
        await this._terminate('SIGKILL')
        throw new Error(`redis-server on port ${this.port} not ready after ${READY_TIMEOUT_MS} ms:\n${output()}`)
      }
      await sleep(50)
    }
  }

  _quietLog() {
    const args = this._opts.args || []
    const i = args.lastIndexOf('--loglevel')
    return i >= 0 && /^(warning|nothing)$/.test(args[i + 1])
  }

  /** Resolves true when something answers a PING with any reply but -LOADING. */
  _ping() {
    return new Promise((resolve) => {
      const c = this.certs
      const sock = c
        ? tls.connect({
          host: this.host, port: this.port, ca: c.ca, cert: c.clientCert, key: c.clientKey,
          checkServerIdentity: () => undefined, // the wrong-host cert must still count as up
        })
        : net.connect({ host: this.host, port: this.port })
      let reply = ''
      const done = (ok) => { sock.destroy(); resolve(ok) }
      sock.setTimeout(1000, () => done(false))
      sock.once(c ? 'secureConnect' : 'connect', () => sock.write('PING\r\n'))
      sock.on('data', (d) => {
        reply += d
        // +PONG, or -NOAUTH when a password is required: either way it serves.
        if (reply.includes('\r\n')) done(/^[+-]/.test(reply) && !reply.startsWith('-LOADING'))
      })
      sock.once('error', () => done(false))
      sock.once('close', () => done(false))
    })
  }

  /** Send `signal`, then wait for the exit (SIGKILL after STOP_GRACE_MS for SIGTERM). */
  async _terminate(signal) {
    if (!this._running) return this._exited
    const child = this._child
    child.ref() // keep a plain node script alive until the 'exit' event arrives
    if (this._paused) child.kill('SIGCONT') // a stopped process would not act on SIGTERM
    child.kill(signal)
    const timer = signal === 'SIGKILL' ? null : setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
    await this._exited
    if (timer) clearTimeout(timer)
    this._paused = false
  }

  /** SIGTERM, wait for exit (SIGKILL after 3 s), remove the tmp dir. */
  async stop() {
    await this._terminate('SIGTERM')
    fs.rmSync(this.dir, { recursive: true, force: true })
    registry.dirs.delete(this.dir)
    servers.delete(this)
  }

  /** SIGKILL (a crash), wait for exit. The tmp dir stays for restart(); stop() removes it. */
  kill() { return this._terminate('SIGKILL') }

  /** Stop if running, then start on the same port with the same config. */
  async restart() {
    await this._terminate('SIGTERM')
    servers.add(this)
    await this._start()
  }

  /** SIGSTOP: the server keeps its sockets but answers nothing. */
  pause() {
    if (!this._running) throw new Error('server is not running')
    this._child.kill('SIGSTOP')
    this._paused = true
  }

  resume() {
    if (!this._running) throw new Error('server is not running')
    this._child.kill('SIGCONT')
    this._paused = false
  }

  /**
   * Run redis-cli against this server; resolves trimmed stdout. Rejects on a non-zero
   * exit only: redis-cli exits 0 on error replies and prints them ("ERR ...") to stdout.
   */
  cli(...args) {
    const a = ['-h', this.host, '-p', String(this.port), '--no-auth-warning']
    if (this.certs) {
      a.push('--tls', '--cacert', this.certs.caFile,
        '--cert', this.certs.clientCertFile, '--key', this.certs.clientKeyFile)
    }
    if (this.password !== undefined) a.push('-a', this.password)
    return new Promise((resolve, reject) => {
      execFile(CLI_BIN, a.concat(args.map(String)), { timeout: 10_000 }, (err, stdout, stderr) => {
        // Our own message: err.message would repeat the command line, password included.
        if (err) reject(new Error(`redis-cli ${args.join(' ')} failed (${err.code ?? err.signal}): ${String(stderr).trim()}`))
        else resolve(String(stdout).trim())
      })
    })
  }
}

/**
 * Which server startRedis() gives: 'redis' (a redis-server process, the default) or
 * 'memory' (ATLAS_TEST_BACKEND=memory: a fresh store of the package's embedded
 * memory:// backend, so the same specs check that it answers as Redis does).
 */
const BACKEND = process.env.ATLAS_TEST_BACKEND || 'redis'

let memorySeq = 0

/**
 * A memory:// store posing as a server: `url` is memory://<unique name>, and
 * cli() runs the command through a RedisClient on that store and prints the
 * reply as redis-cli's raw output does. There is no process: kill(), pause(),
 * restart() and options that configure one (password, users, tls, cluster)
 * throw; specs that need them do not run on this backend.
 */
class MemoryServer {
  constructor(name) {
    this.name = name
    this.host = HOST
    this.port = undefined
    this.busPort = undefined
    this.certs = undefined
    this.password = undefined
    this.users = []
    this.dir = undefined
    this.logFile = undefined
    this.stdioFile = undefined
    this._clients = new Map()
  }

  get url() { return `memory://${this.name}` }
  get pid() { return undefined }

  _client(db) {
    if (!this._clients.has(db)) {
      // Inside jest, the specs' own copy of the package (ts-jest compiles lib/); else the build.
      let RedisClient
      try { ({ RedisClient } = require('../../lib')) } catch { ({ RedisClient } = require('../../dist')) }
      this._clients.set(db, RedisClient.connect(`${this.url}/${db}`))
    }
    return this._clients.get(db)
  }

  async cli(...args) {
    let a = args.map(String)
    let db = 0
    if (a[0] === '-n') { db = Number(a[1]); a = a.slice(2) }
    const c = await this._client(db)
    if (a[0] === '--scan') {
      const i = a.indexOf('--pattern')
      const keys = []
      for await (const k of c.scan(i >= 0 ? { match: a[i + 1], count: 100 } : { count: 100 })) keys.push(k)
      return keys.join('\n')
    }
    try {
      return rawOutput(await c.command(a[0], ...a.slice(1))).join('\n').trim()
    } catch (e) {
      // redis-cli prints an error reply's text and exits 0
      if (e && e.code === 'ERR_REPLY') return String(e.message).replace(/^ERR_REPLY: /, '').trim()
      throw e
    }
  }

  async stop() {
    const clients = [...this._clients.values()]
    this._clients.clear()
    if (clients.length === 0) clients.push(this._client(0))
    const all = await Promise.all(clients)
    // The store outlives its clients (as a server would): empty it for the next user.
    await all[0].command('FLUSHALL').catch(() => undefined)
    await all[0].command('SCRIPT', 'FLUSH').catch(() => undefined)
    await Promise.all(all.map((c) => c.close()))
    servers.delete(this)
  }

  kill() { return Promise.reject(noProcess('kill()')) }
  restart() { return Promise.reject(noProcess('restart()')) }
  pause() { throw noProcess('pause()') }
  resume() { throw noProcess('resume()') }
}

function noProcess(what) {
  return new Error(`ATLAS_TEST_BACKEND=memory: ${what} needs a redis-server process`)
}

/** A reply as lines of redis-cli's raw output. */
function rawOutput(v) {
  if (v === null || v === undefined) return ['']
  if (Array.isArray(v)) return v.flatMap(rawOutput)
  if (Buffer.isBuffer(v)) return [v.toString('utf8')]
  if (typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => [k, ...rawOutput(x)])
  return [String(v)]
}

async function startMemory(opts) {
  for (const unsupported of ['password', 'users', 'tls', 'cluster', 'args']) {
    if (opts[unsupported] !== undefined) {
      throw new Error(`ATLAS_TEST_BACKEND=memory: option ${unsupported} needs a redis-server process`)
    }
  }
  memorySeq += 1
  const srv = new MemoryServer(`test-${process.pid}-${memorySeq}-${Math.random().toString(36).slice(2, 8)}`)
  servers.add(srv)
  return srv
}

/** Start a redis-server on a free port and wait until it answers PING. */
async function startRedis(opts = {}) {
  if (BACKEND === 'memory') return startMemory(opts)
  const certs = opts.tls ? makeCerts() : undefined // may throw: before the tmp dir exists
  const srv = new RedisServer(opts, fs.mkdtempSync(path.join(os.tmpdir(), 'atlas-redis-')), certs)
  servers.add(srv)
  try {
    for (let attempt = 1; ; attempt++) {
      srv.port = await freePort()
      if (opts.cluster) {
        do srv.busPort = await freePort(); while (srv.busPort === srv.port)
      }
      try {
        await srv._start()
        return srv
      } catch (err) {
        // Someone took the port between our probe and redis' bind: pick another.
        if (!err.bindFailed || attempt >= PORT_ATTEMPTS) throw err
      }
    }
  } catch (err) {
    await srv.stop()
    throw err
  }
}

/** `redis-cli` output of a flat field/value array as an object. */
function fields(text) {
  const lines = text.split('\n')
  const o = {}
  for (let i = 0; i + 1 < lines.length; i += 2) o[lines[i]] = lines[i + 1]
  return o
}

/**
 * A master, `replicas` replicas (--replicaof) and `sentinels` sentinels
 * (`redis-server <conf> --sentinel`, quorum 2, down-after 1 s) on free ports.
 * Resolves once every sentinel knows every replica and every other sentinel
 * and the replicas are in sync.
 */
async function startSentinel(opts = {}) {
  const {
    replicas = 1, sentinels = 3, masterName = 'atlas', password, sentinelPassword,
    downAfterMs = 1000, failoverTimeoutMs = 4000,
  } = opts
  const quorum = opts.quorum ?? Math.min(2, sentinels)
  // Every data node may become a replica after a failover: all need masterauth.
  const auth = password !== undefined ? ['--masterauth', password] : []
  // TLS: every listener TLS-only; replication and Sentinel's own links over TLS too.
  const tls = opts.tls ? true : undefined
  if (tls) auth.push('--tls-replication', 'yes')
  const started = []
  try {
    const master = await startRedis({ password, tls, args: [...auth, '--loglevel', 'warning'] })
    started.push(master)
    const reps = []
    for (let i = 0; i < replicas; i++) {
      const r = await startRedis({
        password, tls, args: [...auth, '--replicaof', HOST, String(master.port), '--loglevel', 'warning'],
      })
      started.push(r)
      reps.push(r)
    }
    const conf = [
      `sentinel monitor ${masterName} ${HOST} ${master.port} ${quorum}`,
      `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
      `sentinel failover-timeout ${masterName} ${failoverTimeoutMs}`,
      `sentinel parallel-syncs ${masterName} 1`,
      ...(password !== undefined ? [`sentinel auth-pass ${masterName} ${password}`] : []),
      ...(sentinelPassword !== undefined ? [`sentinel sentinel-pass ${sentinelPassword}`] : []),
      '',
    ].join('\n')
    const sens = []
    for (let i = 0; i < sentinels; i++) {
      const s = await startRedis({
        sentinelConf: conf, password: sentinelPassword, tls, args: tls ? ['--tls-replication', 'yes'] : [],
      })
      started.push(s)
      sens.push(s)
    }
    const topo = new SentinelTopology(masterName, [master, ...reps], sens)
    await topo.waitReady(replicas)
    return topo
  } catch (err) {
    await Promise.all(started.map((s) => s.stop()))
    throw err
  }
}

class SentinelTopology {
  constructor(masterName, nodes, sentinels) {
    this.masterName = masterName
    /** The data nodes; nodes[0] is the first master. */
    this.nodes = nodes
    this.sentinels = sentinels
  }

  /** `['127.0.0.1:PORT', ...]` of the sentinels, for ConnectOptions.sentinel.sentinels. */
  get sentinelAddrs() { return this.sentinels.map((s) => `${s.host}:${s.port}`) }

  /** Asks the first sentinel that answers; the data node at that address. */
  async master() {
    for (const s of this.sentinels) {
      if (!s.pid) continue
      try {
        const [host, port] = (await s.cli('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.masterName)).split('\n')
        const node = this.nodes.find((n) => n.port === Number(port))
        if (node) return node
        void host
      } catch { /* next */ }
    }
    throw new Error('no sentinel named a master')
  }

  /** Until every live sentinel names a master other than `old` that answers ROLE as master. */
  async waitForNewMaster(old, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        const names = await Promise.all(this.sentinels.filter((s) => s.pid)
          .map((s) => s.cli('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.masterName)))
        const ports = new Set(names.map((n) => Number(n.split('\n')[1])))
        if (ports.size === 1 && !ports.has(old.port)) {
          const node = this.nodes.find((n) => ports.has(n.port))
          if (node && (await node.cli('ROLE')).startsWith('master')) return node
        }
      } catch { /* retry */ }
      if (Date.now() > deadline) throw new Error(`no new master within ${timeoutMs} ms`)
      await sleep(100)
    }
  }

  /** Until every live sentinel sees `replicas` healthy replicas and all other sentinels, and replicas are in sync. */
  async waitReady(replicas = this.nodes.length - 1, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs
    let last = ''
    for (;;) {
      try {
        const live = this.sentinels.filter((s) => s.pid)
        const infos = await Promise.all(live.map(async (s) => fields(await s.cli('SENTINEL', 'MASTER', this.masterName))))
        const master = await this.master()
        const synced = await Promise.all(this.nodes.filter((n) => n !== master && n.pid)
          .map(async (n) => /master_link_status:up/.test(await n.cli('INFO', 'replication'))))
        last = JSON.stringify(infos.map((i) => [i.flags, i['num-slaves'], i['num-other-sentinels']]))
        if (infos.every((i) => i.flags === 'master' && Number(i['num-slaves']) >= replicas
            && Number(i['num-other-sentinels']) >= this.sentinels.length - 1)
          && synced.filter(Boolean).length >= replicas) {
          // num-slaves counts replicas the sentinel marks down too: ask for healthy ones.
          const reps = await Promise.all(live.map((s) => s.cli('SENTINEL', 'REPLICAS', this.masterName)))
          if (reps.every((r) => (r.match(/^slave$/gm) || []).length >= replicas)) return
        }
      } catch (e) { last = String(e) }
      if (Date.now() > deadline) throw new Error(`sentinel topology not ready after ${timeoutMs} ms: ${last}`)
      await sleep(100)
    }
  }

  /** `SENTINEL FAILOVER` on the first live sentinel (a graceful failover). */
  async failover() {
    const s = this.sentinels.find((x) => x.pid)
    const r = await s.cli('SENTINEL', 'FAILOVER', this.masterName)
    if (r !== 'OK') throw new Error(`SENTINEL FAILOVER: ${r}`)
  }

  async stop() {
    await Promise.all([...this.sentinels, ...this.nodes].map((s) => s.stop()))
  }
}

/** Stop every server and close every proxy started through this module (in jest: by this test file). */
async function stopAll() {
  await Promise.all([...servers].map((s) => s.stop()).concat(stopProxies()))
}


// ---- Redis Cluster -------------------------------------------------------------------

/** CLUSTER INFO of `srv` as an object ({} when it does not answer). */
async function clusterInfo(srv) {
  try {
    const text = await srv.cli('CLUSTER', 'INFO')
    return Object.fromEntries(text.split(/\r?\n/).map((l) => l.trim().split(':')).filter((kv) => kv.length === 2))
  } catch { return {} }
}

class RedisCluster {
  constructor(servers, opts) {
    /** Every node, masters and replicas, in creation order (the first `masters` were created as masters). */
    this.servers = servers
    this.password = opts.password
    this.certs = servers[0].certs
    this._opts = opts
  }

  /** `'127.0.0.1:port'` of every node (seeds for the client). */
  get nodes() { return this.servers.map((s) => `${s.host}:${s.port}`) }

  /** The running nodes that are masters now (by ROLE). */
  async masters() {
    const out = []
    for (const s of this.servers) {
      if (!s.pid) continue
      const role = await s.cli('ROLE').catch(() => '')
      if (role.split('\n')[0].trim() === 'master') out.push(s)
    }
    return out
  }

  /** The running nodes that are replicas now, with the port of their master. */
  async replicas() {
    const out = []
    for (const s of this.servers) {
      if (!s.pid) continue
      const role = (await s.cli('ROLE').catch(() => '')).split('\n').map((l) => l.trim())
      if (role[0] === 'slave') out.push({ server: s, masterPort: Number(role[2]) })
    }
    return out
  }

  /**
   * The node that owns `slot` now: the running master whose own view (the `myself`
   * line of its CLUSTER NODES) lists the slot — authoritative even while gossip
   * has not yet told the other nodes about a failover or a SETSLOT.
   */
  async ownerOf(slot) {
    const running = this.servers.filter((s) => s.pid)
    const views = await Promise.all(running.map((s) => s.cli('CLUSTER', 'NODES').catch(() => '')))
    for (let i = 0; i < running.length; i++) {
      const me = views[i].split('\n').find((l) => / myself,/.test(l) || / myself /.test(l))
      if (!me) continue
      const f = me.trim().split(' ')
      if (!f[2].split(',').includes('master')) continue
      for (const r of f.slice(8)) {
        if (r.startsWith('[')) continue // a migration in progress, not ownership
        const [a, b] = r.split('-').map(Number)
        if (slot >= a && slot <= (b ?? a)) return running[i]
      }
    }
    return undefined
  }

  /** The server on `port`. */
  byPort(port) { return this.servers.find((s) => s.port === port) }

  /** Resolves once every running node reports cluster_state:ok, all slots assigned and every node known. */
  async waitHealthy(timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const running = this.servers.filter((s) => s.pid)
      const infos = await Promise.all(running.map(clusterInfo))
      if (infos.every((i) => i.cluster_state === 'ok' && i.cluster_slots_assigned === '16384'
        && i.cluster_slots_ok === '16384')) return
      if (Date.now() > deadline) throw new Error(`cluster not healthy after ${timeoutMs} ms: ${JSON.stringify(infos)}`)
      await sleep(100)
    }
  }

  /** Stop every node. */
  async stop() { await Promise.all(this.servers.map((s) => s.stop())) }
}

/**
 * Start `masters * (1 + replicas)` cluster-enabled redis-servers on free ports and
 * join them with `redis-cli --cluster create`; resolves once every node reports
 * cluster_state:ok and every replica is in sync with its master.
 */
async function startCluster(opts = {}) {
  const masters = opts.masters ?? 3
  const replicas = opts.replicas ?? 0
  const nodeTimeout = opts.nodeTimeoutMs ?? 2000
  const args = ['--cluster-node-timeout', String(nodeTimeout), '--cluster-require-full-coverage', 'no', ...(opts.args || [])]
  if (opts.password !== undefined) args.push('--masterauth', opts.password)
  const started = await Promise.allSettled(Array.from({ length: masters * (1 + replicas) }, () =>
    startRedis({ cluster: true, password: opts.password, tls: opts.tls, users: opts.users, args })))
  const servers = started.filter((r) => r.status === 'fulfilled').map((r) => r.value)
  const failed = started.find((r) => r.status === 'rejected')
  const cluster = new RedisCluster(servers, opts)
  if (failed) { await cluster.stop(); throw failed.reason }
  try {
    await servers[0].cli('--cluster', 'create', ...cluster.nodes, '--cluster-replicas', String(replicas), '--cluster-yes')
      .then((out) => { if (!/All 16384 slots covered/.test(out)) throw new Error(`redis-cli --cluster create: ${out.slice(-2000)}`) })
    await cluster.waitHealthy()
    // Replicas in sync, so that a failover has something to promote.
    const deadline = Date.now() + 20_000
    for (;;) {
      const reps = await cluster.replicas()
      const synced = await Promise.all(reps.map(({ server }) => server.cli('INFO', 'replication')
        .then((t) => /master_link_status:up/.test(t)).catch(() => false)))
      if (reps.length === masters * replicas && synced.every(Boolean)) break
      if (Date.now() > deadline) throw new Error(`replicas not in sync: ${reps.length} of ${masters * replicas}`)
      await sleep(100)
    }
    return cluster
  } catch (err) {
    await cluster.stop()
    throw err
  }
}

module.exports = {
  startRedis, startSentinel, startCluster, startProxy, stopAll, makeCerts,
  RedisServer, SentinelTopology, RedisCluster, MemoryServer, TcpProxy, BACKEND,
}
