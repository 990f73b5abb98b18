#!/usr/bin/env node
'use strict'
// A TCP proxy that delivers every chunk `delayMs` later, in each direction: a
// Redis about 2 × delayMs of round trip away (a managed Redis in another zone),
// on this machine. Order is kept (timers of one duration fire in the order they
// were set). Run as a child process by benchmark/e2e.js, so that its work never
// lands on the event loop of the app being measured:
//
//   node benchmark/delay-proxy.js --target=127.0.0.1:6380 [--delay-ms=1]
//
// prints {"port": N} on stdout once it listens on 127.0.0.1:N; exits when its
// parent's IPC channel closes (or on SIGTERM).
const net = require('net')

/** Starts the proxy; resolves the net.Server once it listens (port 0: a free one). */
function startDelayProxy({ host, port, delayMs = 1, listenPort = 0 }) {
  const sockets = new Set()
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host)
    for (const s of [client, upstream]) {
      s.setNoDelay(true)
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {}) // the close that follows ends the pair
    }
    const pipe = (from, to) => {
      from.on('data', (chunk) => {
        setTimeout(() => {
          if (!to.destroyed) to.write(chunk)
        }, delayMs)
      })
      // an end or close goes after the data already in flight
      from.on('close', () => setTimeout(() => to.destroy(), delayMs))
    }
    pipe(client, upstream)
    pipe(upstream, client)
  })
  const close = server.close.bind(server)
  server.close = (cb) => {
    for (const s of sockets) s.destroy()
    return close(cb)
  }
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(listenPort, '127.0.0.1', () => resolve(server))
  })
}

module.exports = { startDelayProxy }

if (require.main === module) {
  const arg = (name, fallback) => {
    const a = process.argv.find((x) => x.startsWith(`--${name}=`))
    return a === undefined ? fallback : a.slice(name.length + 3)
  }
  const target = arg('target')
  if (!target || !/^[^:]+:\d+$/.test(target)) {
    console.error('usage: node benchmark/delay-proxy.js --target=HOST:PORT [--delay-ms=1] [--port=0]')
    process.exit(2)
  }
  const [host, port] = target.split(':')
  startDelayProxy({ host, port: Number(port), delayMs: Number(arg('delay-ms', '1')), listenPort: Number(arg('port', '0')) }).then(
    (server) => {
      console.log(JSON.stringify({ port: server.address().port }))
      const stop = () => server.close(() => process.exit(0))
      process.on('SIGTERM', stop)
      if (process.send) process.on('disconnect', stop)
    },
    (e) => {
      console.error(e.message)
      process.exit(1)
    },
  )
}
