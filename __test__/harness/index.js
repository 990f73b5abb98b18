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
    const a = ['--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', this.dir,
      '--daemonize', 'no', '--logfile', this.logFile]
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

  async _start() {
    fs.mkdirSync(this.dir, { recursive: true })
    registry.dirs.add(this.dir)
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
        || tail(this.logFile, since[this.logFile], Infinity).includes('Ready to accept connections'))) return
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

/** Stop every server started through this module (in jest: by this test file). */
async function stopAll() {
  await Promise.all([...servers].map((s) => s.stop()))
}

module.exports = { startRedis, stopAll, makeCerts, RedisServer, MemoryServer, BACKEND }
