'use strict'
// A TCP proxy between a client under test and a redis-server, for the faults a server
// process cannot make by itself: a network path that stops delivering without closing
// (a blackhole: a half-open connection, a dropped NAT entry), a connection cut from the
// middle, a DNS name that moves to another server, a slow link, and replies that arrive
// in small pieces. Plain CommonJS with no dependency on the package under test.
const net = require('net')

const HOST = '127.0.0.1'

/**
 * One client connection and its upstream. While `frozen`, neither side is read
 * (`socket.pause()`) nor written: bytes pile up in the kernel buffers and then in the
 * sender, as behind a path that lost every packet.
 */
class Link {
  constructor(proxy, client) {
    this.proxy = proxy
    this.client = client
    this.upstream = null
    this.frozen = false
    this.closed = false
    /** Client→server bytes received before the upstream connected. */
    this.early = []
    /** Server→client pieces waiting for their turn (chunking and delay). */
    this.outQueue = []
    this.outBusy = false
  }

  open(port) {
    const up = net.connect({ host: HOST, port })
    this.upstream = up
    up.setNoDelay(true)
    this.client.setNoDelay(true)
    up.on('connect', () => {
      if (this.frozen || this.closed) return
      for (const b of this.early.splice(0)) up.write(b)
    })
    this.client.on('data', (b) => this.toServer(b))
    up.on('data', (b) => this.toClient(b))
    const end = () => this.destroy()
    for (const s of [this.client, up]) {
      s.on('error', end)
      s.on('close', end)
    }
  }

  toServer(b) {
    if (this.frozen) return // not reached: a frozen link is not read
    const send = () => {
      if (this.closed || this.frozen) return
      if (this.upstream.connecting) this.early.push(b)
      else this.upstream.write(b)
    }
    if (this.proxy.delayMs > 0) setTimeout(send, this.proxy.delayMs)
    else send()
  }

  toClient(b) {
    const { chunkBytes, delayMs } = this.proxy
    const due = delayMs > 0 ? Date.now() + delayMs : 0
    if (chunkBytes > 0) {
      for (let i = 0; i < b.length; i += chunkBytes) this.outQueue.push({ piece: b.subarray(i, i + chunkBytes), due })
    } else {
      this.outQueue.push({ piece: b, due })
    }
    // Backpressure: while pieces wait, stop reading the server, so that a large reply
    // stays in the server's buffers instead of this process's memory.
    if (this.outQueue.length > 64) this.upstream.pause()
    this.pump()
  }

  /**
   * Writes the next waiting piece once it is due (delayMs after it arrived) and, when
   * chunking, chunkGapMs after the previous piece left, so that the client reads the
   * pieces one by one rather than as one coalesced read.
   */
  pump() {
    if (this.outBusy || this.frozen || this.closed || this.outQueue.length === 0) return
    this.outBusy = true
    const { chunkBytes, chunkGapMs } = this.proxy
    const wait = Math.max(this.outQueue[0].due - Date.now(), chunkBytes > 0 ? chunkGapMs : -1)
    const write = () => {
      if (this.frozen || this.closed) return
      const { piece } = this.outQueue.shift()
      this.client.write(piece, () => {
        this.outBusy = false
        if (this.outQueue.length <= 16 && !this.frozen && !this.closed) this.upstream.resume()
        this.pump()
      })
    }
    if (wait < 0) write()
    else if (wait === 0) setImmediate(write)
    else setTimeout(write, wait)
  }

  freeze() {
    this.frozen = true
    this.client.pause()
    if (this.upstream) this.upstream.pause()
  }

  destroy() {
    if (this.closed) return
    this.closed = true
    this.client.destroy()
    if (this.upstream) this.upstream.destroy()
    this.proxy.links.delete(this)
  }
}

class TcpProxy {
  constructor(targetPort, opts) {
    this.host = HOST
    this.port = 0
    this.targetPort = targetPort
    this.delayMs = opts.delayMs ?? 0
    this.chunkBytes = opts.chunkBytes ?? 0
    this.chunkGapMs = opts.chunkGapMs ?? 1
    this.paused = false
    this.links = new Set()
    /** Connections accepted since start (those made while paused included). */
    this.accepted = 0
    this.server = net.createServer((sock) => this.accept(sock))
  }

  get url() { return `redis://${HOST}:${this.port}` }

  /** Connections open now (frozen ones included). */
  get connections() { return this.links.size }

  accept(sock) {
    this.accepted++
    const link = new Link(this, sock)
    this.links.add(link)
    if (this.paused) {
      // A blackholed path: the kernel accepted the connection, nothing ever gets through.
      link.freeze()
      sock.on('error', () => link.destroy())
      sock.on('close', () => link.destroy())
      return
    }
    link.open(this.targetPort)
  }

  /**
   * Blackhole: from now on no byte crosses any connection, in either direction, and
   * nothing is closed. Connections made while paused are accepted and get nothing.
   * The connections that were open stay that way after resume(): their streams may
   * have lost bytes halfway, so, as on a real path that died, only a new connection
   * gets through.
   */
  pause() {
    this.paused = true
    for (const l of this.links) l.freeze()
  }

  /** New connections are forwarded again (frozen ones stay frozen: see pause()). */
  resume() {
    this.paused = false
  }

  /** Closes both sides of every open connection (the client sees its socket close). */
  cut() {
    for (const l of [...this.links]) l.destroy()
  }

  /** Later connections go to `port` (open ones stay where they are): a DNS name that moved. */
  retarget(port) {
    this.targetPort = port
  }

  /** Cuts every connection and stops listening. */
  close() {
    this.cut()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

/** Proxies started through this module instance (stopProxies() closes them). */
const proxies = new Set()

/**
 * Start a proxy on a free port of 127.0.0.1 that forwards each connection to
 * 127.0.0.1:`targetPort`.
 */
async function startProxy(targetPort, opts = {}) {
  const p = new TcpProxy(targetPort, opts)
  await new Promise((resolve, reject) => {
    p.server.once('error', reject)
    p.server.listen(0, HOST, () => resolve())
  })
  p.port = p.server.address().port
  proxies.add(p)
  const close = p.close.bind(p)
  p.close = () => {
    proxies.delete(p)
    return close()
  }
  return p
}

/** Close every proxy started through this module instance. */
async function stopProxies() {
  await Promise.all([...proxies].map((p) => p.close()))
}

module.exports = { startProxy, stopProxies, TcpProxy }
