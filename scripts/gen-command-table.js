#!/usr/bin/env node
'use strict'
// Writes src/commands/table/generated.rs, the package's one command table, from a real
// redis-server's own description of its commands (`COMMAND`, Redis 7 key specs).
//
//   node scripts/gen-command-table.js               # starts a throwaway redis-server (the
//                                                   # machine's binary, on a free port)
//   node scripts/gen-command-table.js --port 6390   # reads an already running server instead
//   node scripts/gen-command-table.js --check       # exit 1, with a summary, when the committed
//                                                   # file is not what the server says
//
// Options: --host (default 127.0.0.1), --port, --out (default the committed file), --check.
// Every command and subcommand ("xgroup|create") becomes one entry, sorted by name, with
// Redis' arity, its flags as a bitset and its key specs exactly as the server reports them.
// Two flags are not in COMMAND's reply and come from lists below: MAY_REPLICATE and
// CONNECTION_CHANGING. The bit values are the constants of src/commands/table/mod.rs.

const fs = require('fs')
const net = require('net')
const path = require('path')

const DEFAULT_OUT = path.join(__dirname, '..', 'src', 'commands', 'table', 'generated.rs')

/** COMMAND's flag names → the constant names in `table::flags`. */
const COMMAND_FLAGS = {
  write: 'WRITE',
  readonly: 'READONLY',
  denyoom: 'DENYOOM',
  module: 'MODULE',
  admin: 'ADMIN',
  pubsub: 'PUBSUB',
  noscript: 'NOSCRIPT',
  blocking: 'BLOCKING',
  loading: 'LOADING',
  stale: 'STALE',
  skip_monitor: 'SKIP_MONITOR',
  skip_slowlog: 'SKIP_SLOWLOG',
  asking: 'ASKING',
  fast: 'FAST',
  no_auth: 'NO_AUTH',
  may_replicate: 'MAY_REPLICATE',
  no_mandatory_keys: 'NO_MANDATORY_KEYS',
  no_async_loading: 'NO_ASYNC_LOADING',
  no_multi: 'NO_MULTI',
  movablekeys: 'MOVABLEKEYS',
  allow_busy: 'ALLOW_BUSY',
}

/** Key-spec flag names → the constant names in `table::key_flags`. */
const KEY_SPEC_FLAGS = {
  RO: 'RO',
  RW: 'RW',
  OW: 'OW',
  RM: 'RM',
  access: 'ACCESS',
  update: 'UPDATE',
  insert: 'INSERT',
  delete: 'DELETE',
  not_key: 'NOT_KEY',
  incomplete: 'INCOMPLETE',
  variable_flags: 'VARIABLE_FLAGS',
}

// Redis keeps CMD_MAY_REPLICATE out of COMMAND's reply on purpose (server.c, "Hidden on
// purpose"). These are the commands that declare it in Redis 7.0's command table
// (src/commands/*.json): they may write to the replication stream though not flagged
// WRITE, so a replica cannot take them.
const MAY_REPLICATE = ['eval', 'evalsha', 'fcall', 'publish', 'spublish', 'pfcount']

// CONNECTION_CHANGING: commands after which the connection is not like a fresh one, so a
// pooled or multiplexed connection must not carry them for a caller (they need a
// connection of their own, or the engine must replay their effect after a reconnect).
// Redis has no flag for this; the list is ours:
// - who the connection is and what it sees: AUTH, HELLO (protocol, auth, name), SELECT (db),
//   CLIENT SETNAME, READONLY/READWRITE (cluster replica reads), RESET (undoes all of it);
// - how replies flow: CLIENT REPLY (ON/OFF/SKIP), CLIENT TRACKING (invalidation pushes),
//   MONITOR and the SUBSCRIBE family (the connection turns into a push stream), QUIT;
// - transactions: MULTI/EXEC/DISCARD and WATCH/UNWATCH (state held between commands);
// - per-connection server behaviour: CLIENT NO-EVICT, CLIENT NO-TOUCH (7.2).
// A name the server does not know (CLIENT NO-TOUCH on 7.0) is listed in the file's header.
const CONNECTION_CHANGING = [
  'auth', 'hello', 'select', 'client|setname', 'readonly', 'readwrite', 'reset',
  'client|reply', 'client|tracking', 'monitor', 'quit',
  'subscribe', 'psubscribe', 'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe',
  'multi', 'exec', 'discard', 'watch', 'unwatch',
  'client|no-evict', 'client|no-touch',
]

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: undefined, out: DEFAULT_OUT, check: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const [flag, inline] = a.includes('=') ? a.split(/=(.*)/s, 2) : [a, undefined]
    const value = () => {
      if (inline !== undefined) return inline
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`)
      return argv[++i]
    }
    if (flag === '--check') opts.check = true
    else if (flag === '--host') opts.host = value()
    else if (flag === '--port') {
      opts.port = Number(value())
      if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) throw new Error(`bad --port: ${a}`)
    } else if (flag === '--out') opts.out = path.resolve(value())
    else throw new Error(`unknown option ${a}`)
  }
  return opts
}

// ---------------------------------------------------------------------------------------
// A minimal RESP3 client: enough for HELLO 3, INFO and COMMAND (no dependency on the
// package under test, whose engine this table feeds).

class RespReader {
  constructor() { this.buf = Buffer.alloc(0); this.pos = 0 }
  push(chunk) { this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk]); this.pos = 0 }

  /** One whole reply, or undefined when more bytes are needed. */
  next() {
    const start = this.pos
    try {
      return { value: this._value() }
    } catch (e) {
      if (e !== RespReader.MORE) throw e
      this.pos = start
      return undefined
    }
  }

  _line() {
    const end = this.buf.indexOf('\r\n', this.pos)
    if (end < 0) throw RespReader.MORE
    const line = this.buf.toString('utf8', this.pos, end)
    this.pos = end + 2
    return line
  }

  _value() {
    if (this.pos >= this.buf.length) throw RespReader.MORE
    const type = String.fromCharCode(this.buf[this.pos++])
    const line = this._line()
    switch (type) {
      case '+': return line
      case '-': { const e = new Error(line); e.serverError = true; return e }
      case ':': return Number(line)
      case ',': return Number(line)
      case '(': return BigInt(line)
      case '#': return line === 't'
      case '_': return null
      case '$': case '=': case '!': {
        const n = Number(line)
        if (n < 0) return null
        if (this.pos + n + 2 > this.buf.length) throw RespReader.MORE
        const s = this.buf.toString('utf8', this.pos, this.pos + n)
        this.pos += n + 2
        if (type === '!') { const e = new Error(s); e.serverError = true; return e }
        return type === '=' ? s.slice(4) : s
      }
      case '*': case '~': case '>': {
        const n = Number(line)
        if (n < 0) return null
        const out = []
        for (let i = 0; i < n; i++) out.push(this._value())
        return out
      }
      case '%': case '|': {
        const n = Number(line)
        const out = new Map()
        for (let i = 0; i < n; i++) { const k = this._value(); out.set(k, this._value()) }
        if (type === '|') return this._value() // attribute: the reply follows it
        return out
      }
      default: throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`)
    }
  }
}
RespReader.MORE = Symbol('more')

/** Sends each command in turn on one connection; resolves their replies. */
function query(host, port, commands) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port })
    const reader = new RespReader()
    const replies = []
    const fail = (err) => { sock.destroy(); reject(err) }
    sock.setTimeout(10_000, () => fail(new Error(`no reply from ${host}:${port} in 10 s`)))
    sock.once('error', fail)
    sock.on('data', (chunk) => {
      reader.push(chunk)
      for (let r = reader.next(); r; r = reader.next()) {
        if (r.value instanceof Error) return fail(new Error(`${commands[replies.length].join(' ')}: ${r.value.message}`))
        replies.push(r.value)
        if (replies.length === commands.length) { sock.end(); return resolve(replies) }
      }
    })
    const encode = (args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`
    sock.write(commands.map(encode).join(''))
  })
}

// ---------------------------------------------------------------------------------------
// COMMAND's reply → table entries.

const mapGet = (m, key, what) => {
  if (!(m instanceof Map) || !m.has(key)) throw new Error(`COMMAND: ${what} has no "${key}"`)
  return m.get(key)
}

function bits(names, known, what) {
  return names.map((n) => {
    const c = known[n]
    if (!c) throw new Error(`${what}: unknown flag "${n}" (give it a bit in src/commands/table/mod.rs and this script)`)
    return c
  })
}

/** Distinct names in bit order (the order of the constants in mod.rs), whatever order the server used. */
const canonical = (names, order) => order.filter((n) => names.includes(n))
const FLAG_ORDER = [...Object.values(COMMAND_FLAGS), 'CONNECTION_CHANGING']
const KEY_FLAG_ORDER = Object.values(KEY_SPEC_FLAGS)

function beginSearch(bs, what) {
  const type = mapGet(bs, 'type', what)
  const spec = mapGet(bs, 'spec', what)
  if (type === 'index') return { type, pos: mapGet(spec, 'index', what) }
  if (type === 'keyword') return { type, keyword: mapGet(spec, 'keyword', what), startfrom: mapGet(spec, 'startfrom', what) }
  if (type === 'unknown') return { type }
  throw new Error(`${what}: unknown begin_search type ${type}`)
}

function findKeys(fk, what) {
  const type = mapGet(fk, 'type', what)
  const spec = mapGet(fk, 'spec', what)
  if (type === 'range') {
    return { type, lastkey: mapGet(spec, 'lastkey', what), step: mapGet(spec, 'keystep', what), limit: mapGet(spec, 'limit', what) }
  }
  if (type === 'keynum') {
    return { type, keynumidx: mapGet(spec, 'keynumidx', what), firstkey: mapGet(spec, 'firstkey', what), step: mapGet(spec, 'keystep', what) }
  }
  if (type === 'unknown') return { type }
  throw new Error(`${what}: unknown find_keys type ${type}`)
}

/** One COMMAND entry (and its subcommands) → table entries, appended to `out`. */
function collect(reply, out) {
  const [name, arity, flags, , , , , tips, keySpecs, subcommands] = reply
  const what = `COMMAND ${name}`
  const lname = String(name).toLowerCase()
  const flagNames = bits(flags, COMMAND_FLAGS, what)
  if (MAY_REPLICATE.includes(lname)) flagNames.push('MAY_REPLICATE')
  if (CONNECTION_CHANGING.includes(lname)) flagNames.push('CONNECTION_CHANGING')
  const specs = (keySpecs || []).map((ks, i) => ({
    flags: canonical(bits(mapGet(ks, 'flags', `${what} key spec ${i}`), KEY_SPEC_FLAGS, `${what} key spec ${i}`), KEY_FLAG_ORDER),
    begin: beginSearch(mapGet(ks, 'begin_search', `${what} key spec ${i}`), `${what} key spec ${i}`),
    find: findKeys(mapGet(ks, 'find_keys', `${what} key spec ${i}`), `${what} key spec ${i}`),
  }))
  const subs = subcommands || []
  out.push({ name: lname, arity, flags: canonical(flagNames, FLAG_ORDER), container: subs.length > 0, specs, tips: tips || [] })
  for (const sub of subs) collect(sub, out)
}

// ---------------------------------------------------------------------------------------
// Entries → Rust.

const rustStr = (s) => JSON.stringify(s) // ASCII names and keywords: JSON's escapes are Rust's
const flagExpr = (names) => (names.length ? names.join(' | ') : '0')

function beginRust(b) {
  if (b.type === 'index') return `BeginSearch::Index { pos: ${b.pos} }`
  if (b.type === 'keyword') return `BeginSearch::Keyword { keyword: ${rustStr(b.keyword)}, startfrom: ${b.startfrom} }`
  return 'BeginSearch::Unknown'
}

function findRust(f) {
  if (f.type === 'range') return `FindKeys::Range { lastkey: ${f.lastkey}, step: ${f.step}, limit: ${f.limit} }`
  if (f.type === 'keynum') return `FindKeys::Keynum { keynumidx: ${f.keynumidx}, firstkey: ${f.firstkey}, step: ${f.step} }`
  return 'FindKeys::Unknown'
}

function entryRust(e) {
  const lines = ['  Command {', `    name: ${rustStr(e.name)},`, `    arity: ${e.arity},`,
    `    flags: ${flagExpr(e.flags)},`, `    container: ${e.container},`]
  if (e.specs.length === 0) lines.push('    key_specs: &[],')
  else {
    lines.push('    key_specs: &[')
    for (const s of e.specs) {
      lines.push('      KeySpec {', `        begin_search: ${beginRust(s.begin)},`, `        find_keys: ${findRust(s.find)},`,
        `        flags: ${flagExpr(s.flags)},`, '      },')
    }
    lines.push('    ],')
  }
  lines.push(`    tips: &[${e.tips.map(rustStr).join(', ')}],`, '  },')
  return lines.join('\n')
}

function render(version, entries) {
  const known = new Set(entries.map((e) => e.name))
  const missing = CONNECTION_CHANGING.filter((n) => !known.has(n))
  return [
    '// @generated by scripts/gen-command-table.js from the COMMAND reply of',
    `// redis-server ${version}. Do not edit: run \`node scripts/gen-command-table.js\`.`,
    '// Key-spec positions are Redis\' own (1 = the first argument after the command name).',
    missing.length ? `// CONNECTION_CHANGING names this server does not know: ${missing.join(', ')}.` : null,
    '',
    'use super::flags::*;',
    'use super::key_flags::*;',
    'use super::{BeginSearch, Command, FindKeys, KeySpec};',
    '',
    '/// Every command and subcommand ("xgroup|create"), sorted by name (bytes).',
    `pub(super) static COMMANDS: [Command; ${entries.length}] = [`,
    ...entries.map(entryRust),
    '];',
    '',
  ].filter((l) => l !== null).join('\n')
}

/** The generated source, from the server at host:port. */
async function generate(host, port) {
  const [, info, commands] = await query(host, port, [['HELLO', '3'], ['INFO', 'server'], ['COMMAND']])
  const version = (/redis_version:(\S+)/.exec(info) || [])[1]
  if (!version) throw new Error('INFO server names no redis_version')
  if (Number(version.split('.')[0]) < 7) throw new Error(`redis-server ${version}: key specs need Redis 7 or later`)
  const entries = []
  for (const reply of commands) collect(reply, entries)
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (let i = 1; i < entries.length; i++) {
    if (entries[i].name === entries[i - 1].name) throw new Error(`COMMAND lists ${entries[i].name} twice`)
  }
  return render(version, entries)
}

/** Entry blocks by name, for --check's summary. */
function blocks(text) {
  const out = new Map()
  const header = []
  let current
  for (const line of text.split('\n')) {
    const m = /^ {4}name: "([^"]+)",$/.exec(line)
    if (line === '  Command {') current = { lines: [line] }
    else if (current) {
      current.lines.push(line)
      if (m) current.name = m[1]
      if (line === '  },') { out.set(current.name, current.lines.join('\n')); current = undefined }
    } else header.push(line)
  }
  return { header: header.join('\n'), entries: out }
}

function summary(committed, fresh) {
  const a = blocks(committed)
  const b = blocks(fresh)
  const lines = []
  if (a.header !== b.header) lines.push('header (server version, count or imports) differs')
  const only = (x, y) => [...x.entries.keys()].filter((k) => !y.entries.has(k))
  const added = only(b, a)
  const removed = only(a, b)
  const changed = [...b.entries.keys()].filter((k) => a.entries.has(k) && a.entries.get(k) !== b.entries.get(k))
  if (added.length) lines.push(`in the server, not in the file (${added.length}): ${added.join(', ')}`)
  if (removed.length) lines.push(`in the file, not in the server (${removed.length}): ${removed.join(', ')}`)
  if (changed.length) lines.push(`different (${changed.length}): ${changed.join(', ')}`)
  return lines.length ? lines : ['the files differ (layout outside the entries)']
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  let server
  let port = opts.port
  if (port === undefined) {
    // The harness' real-process path, whatever backend the caller's tests use.
    delete process.env.ATLAS_TEST_BACKEND
    const { startRedis } = require('../__test__/harness')
    server = await startRedis()
    port = server.port
  }
  let source
  try {
    source = await generate(opts.host, port)
  } finally {
    if (server) await server.stop()
  }
  const rel = path.relative(process.cwd(), opts.out)
  if (opts.check) {
    const committed = fs.existsSync(opts.out) ? fs.readFileSync(opts.out, 'utf8') : ''
    if (committed === source) {
      console.log(`${rel} matches the server`)
      return 0
    }
    console.error(`${rel} is not what the server on port ${port} describes:`)
    for (const l of summary(committed, source)) console.error(`  ${l}`)
    console.error('run `node scripts/gen-command-table.js` to regenerate it')
    return 1
  }
  fs.mkdirSync(path.dirname(opts.out), { recursive: true })
  fs.writeFileSync(opts.out, source)
  console.log(`wrote ${rel}`)
  return 0
}

if (require.main === module) {
  main().then((code) => { process.exitCode = code }, (err) => {
    console.error(err.message)
    process.exitCode = 2
  })
}

module.exports = { generate }
