// Every command of the command table that takes keys, sent through command() to a
// 3-master cluster with its keys on one master or another: none draws a MOVED or an
// ASK (Redis 7's INFO errorstats of every master, and the client's own counters), and
// each answers as it would on one server. The list of commands is the native table's
// (commandTable()): a command without a sample call below fails the test by name.
// Then: replies of command() have the same shape on a cluster as on a standalone server.
import crypto from 'crypto'
import { commandTable, routingKeys } from '../index'
import type { RedisClient } from '../lib'
import { startCluster, startRedis, stopAll, type RedisCluster, type RedisServer } from './harness'
import { keySlot } from './harness/slot'
import { closeAll, connect } from './helpers'

jest.setTimeout(120_000)

type Value = string | number | Buffer
/** An argument, or one made from the replies of the sample's earlier calls. */
type Arg = Value | ((replies: unknown[]) => Value)
/** A call through command(); with ON_OWNER first, a redis-cli call on the master of the sample's keys. */
type Call = Array<Arg | typeof ON_OWNER>
interface Keys {
  /** A key of this sample: every `k(...)` of a sample shares one hash tag, on the sample's master. */
  k(name: string): string
  /** A key on the master `i` places after the sample's (for the commands the client splits by slot). */
  far(i: number, name: string): string
}
/** The calls of one command's sample: set-up calls, the call of the command itself, clean-up calls. */
type Sample = (k: Keys) => Call[]

const ON_OWNER = Symbol('on the owner')

const SET_SCRIPT = "return redis.call('SET', KEYS[1], ARGV[1])"
const GET_SCRIPT = "return redis.call('GET', KEYS[1])"
const sha1 = (s: string) => crypto.createHash('sha1').update(s).digest('hex')
const LIBRARY = [
  '#!lua name=atlasroute',
  "redis.register_function('atlas_set', function(keys, args) return redis.call('SET', keys[1], args[1]) end)",
  "redis.register_function{function_name='atlas_get', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}",
].join('\n')

// Set-up calls shared by several samples.
const zset = (key: string): Call => ['ZADD', key, 1, 'a', 2, 'b', 3, 'c']
const list = (key: string): Call => ['RPUSH', key, 'a', 'b', 'c']
const set = (key: string): Call => ['SADD', key, 'a', 'b', 'c']
const hash = (key: string): Call => ['HSET', key, 'f', '1', 'g', '2']
const geo = (key: string): Call => ['GEOADD', key, 13.361389, 38.115556, 'Palermo', 15.087269, 37.502669, 'Catania']
const stream = (key: string): Call => ['XADD', key, '1-1', 'f', 'v']
const group = (key: string): Call[] => [stream(key), ['XGROUP', 'CREATE', key, 'g', '0']]
const pending = (key: string): Call[] => [...group(key), ['XREADGROUP', 'GROUP', 'g', 'c', 'STREAMS', key, '>']]
/** DUMP's payload (a string when its bytes happen to be UTF-8: the same bytes back). */
const payload = (at: number) => (r: unknown[]) => (Buffer.isBuffer(r[at]) ? r[at] : Buffer.from(r[at] as string, 'utf8'))
/** Keys on all three masters, for the commands the client splits by slot. */
const spread = (k: Keys, name: string) => [0, 1, 2].map((i) => k.far(i, name))

/**
 * One valid call of every key-taking command (Redis 7.0's syntax); blocking commands
 * find their data there and wait 0.01 s at most; keys of multi-key commands that are
 * not split by slot share the sample's hash tag.
 */
const SAMPLES: Record<string, Sample> = {
  append: ({ k }) => [['APPEND', k('s'), 'x']],
  bitcount: ({ k }) => [['SET', k('s'), 'foobar'], ['BITCOUNT', k('s'), 0, -1]],
  bitfield: ({ k }) => [['BITFIELD', k('s'), 'SET', 'u8', 0, 200, 'GET', 'u8', 0]],
  bitfield_ro: ({ k }) => [['SET', k('s'), 'a'], ['BITFIELD_RO', k('s'), 'GET', 'u8', 0]],
  bitop: ({ k }) => [['SET', k('a'), 'ab'], ['SET', k('b'), 'cd'], ['BITOP', 'AND', k('d'), k('a'), k('b')]],
  bitpos: ({ k }) => [['SET', k('s'), 'a'], ['BITPOS', k('s'), 1]],
  blmove: ({ k }) => [list(k('l')), ['BLMOVE', k('l'), k('m'), 'LEFT', 'RIGHT', 0.01]],
  blmpop: ({ k }) => [list(k('l')), ['BLMPOP', 0.01, 2, k('e'), k('l'), 'LEFT', 'COUNT', 2]],
  blpop: ({ k }) => [list(k('l')), ['BLPOP', k('e'), k('l'), 0.01]],
  brpop: ({ k }) => [list(k('l')), ['BRPOP', k('e'), k('l'), 0.01]],
  brpoplpush: ({ k }) => [list(k('l')), ['BRPOPLPUSH', k('l'), k('m'), 0.01]],
  bzmpop: ({ k }) => [zset(k('z')), ['BZMPOP', 0.01, 2, k('e'), k('z'), 'MIN', 'COUNT', 2]],
  bzpopmax: ({ k }) => [zset(k('z')), ['BZPOPMAX', k('e'), k('z'), 0.01]],
  bzpopmin: ({ k }) => [zset(k('z')), ['BZPOPMIN', k('e'), k('z'), 0.01]],
  copy: ({ k }) => [['SET', k('a'), 'v'], ['COPY', k('a'), k('b'), 'REPLACE']],
  decr: ({ k }) => [['DECR', k('n')]],
  decrby: ({ k }) => [['DECRBY', k('n'), 5]],
  del: (k) => [['MSET', ...spread(k, 'a').flatMap((key) => [key, 'v'])], ['DEL', ...spread(k, 'a'), k.k('none')]],
  dump: ({ k }) => [['SET', k('s'), 'v'], ['DUMP', k('s')]],
  eval: ({ k }) => [['EVAL', SET_SCRIPT, 2, k('a'), k('b'), 'v']],
  eval_ro: ({ k }) => [['SET', k('a'), 'v'], ['EVAL_RO', GET_SCRIPT, 1, k('a')]],
  evalsha: ({ k }) => [['EVALSHA', sha1(SET_SCRIPT), 1, k('a'), 'v']],
  evalsha_ro: ({ k }) => [['SET', k('a'), 'v'], ['EVALSHA_RO', sha1(GET_SCRIPT), 1, k('a')]],
  exists: (k) => [['MSET', ...spread(k, 'a').flatMap((key) => [key, 'v'])], ['EXISTS', ...spread(k, 'a'), k.k('none')]],
  expire: ({ k }) => [['SET', k('s'), 'v'], ['EXPIRE', k('s'), 100, 'NX']],
  expireat: ({ k }) => [['SET', k('s'), 'v'], ['EXPIREAT', k('s'), 4_000_000_000]],
  expiretime: ({ k }) => [['SET', k('s'), 'v', 'EX', 100], ['EXPIRETIME', k('s')]],
  fcall: ({ k }) => [['FCALL', 'atlas_set', 1, k('a'), 'v']],
  fcall_ro: ({ k }) => [['SET', k('a'), 'v'], ['FCALL_RO', 'atlas_get', 1, k('a')]],
  geoadd: ({ k }) => [geo(k('g'))],
  geodist: ({ k }) => [geo(k('g')), ['GEODIST', k('g'), 'Palermo', 'Catania', 'km']],
  geohash: ({ k }) => [geo(k('g')), ['GEOHASH', k('g'), 'Palermo']],
  geopos: ({ k }) => [geo(k('g')), ['GEOPOS', k('g'), 'Palermo']],
  georadius: ({ k }) => [geo(k('g')), ['GEORADIUS', k('g'), 15, 37, 200, 'km', 'STORE', k('d')]],
  georadius_ro: ({ k }) => [geo(k('g')), ['GEORADIUS_RO', k('g'), 15, 37, 200, 'km']],
  georadiusbymember: ({ k }) => [geo(k('g')), ['GEORADIUSBYMEMBER', k('g'), 'Palermo', 200, 'km', 'STOREDIST', k('d')]],
  georadiusbymember_ro: ({ k }) => [geo(k('g')), ['GEORADIUSBYMEMBER_RO', k('g'), 'Palermo', 200, 'km']],
  geosearch: ({ k }) => [geo(k('g')), ['GEOSEARCH', k('g'), 'FROMLONLAT', 15, 37, 'BYRADIUS', 200, 'km', 'ASC']],
  geosearchstore: ({ k }) => [geo(k('g')), ['GEOSEARCHSTORE', k('d'), k('g'), 'FROMMEMBER', 'Palermo', 'BYBOX', 400, 400, 'km']],
  get: ({ k }) => [['GET', k('s')]],
  getbit: ({ k }) => [['GETBIT', k('s'), 7]],
  getdel: ({ k }) => [['SET', k('s'), 'v'], ['GETDEL', k('s')]],
  getex: ({ k }) => [['SET', k('s'), 'v'], ['GETEX', k('s'), 'EX', 100]],
  getrange: ({ k }) => [['SET', k('s'), 'value'], ['GETRANGE', k('s'), 0, 2]],
  getset: ({ k }) => [['GETSET', k('s'), 'v']],
  hdel: ({ k }) => [hash(k('h')), ['HDEL', k('h'), 'f']],
  hexists: ({ k }) => [hash(k('h')), ['HEXISTS', k('h'), 'f']],
  hget: ({ k }) => [hash(k('h')), ['HGET', k('h'), 'f']],
  hgetall: ({ k }) => [hash(k('h')), ['HGETALL', k('h')]],
  hincrby: ({ k }) => [['HINCRBY', k('h'), 'n', 2]],
  hincrbyfloat: ({ k }) => [['HINCRBYFLOAT', k('h'), 'n', 0.5]],
  hkeys: ({ k }) => [hash(k('h')), ['HKEYS', k('h')]],
  hlen: ({ k }) => [hash(k('h')), ['HLEN', k('h')]],
  hmget: ({ k }) => [hash(k('h')), ['HMGET', k('h'), 'f', 'x']],
  hmset: ({ k }) => [['HMSET', k('h'), 'f', '1', 'g', '2']],
  hrandfield: ({ k }) => [hash(k('h')), ['HRANDFIELD', k('h'), 2, 'WITHVALUES']],
  hscan: ({ k }) => [hash(k('h')), ['HSCAN', k('h'), 0]],
  hset: ({ k }) => [hash(k('h'))],
  hsetnx: ({ k }) => [['HSETNX', k('h'), 'f', 'v']],
  hstrlen: ({ k }) => [hash(k('h')), ['HSTRLEN', k('h'), 'f']],
  hvals: ({ k }) => [hash(k('h')), ['HVALS', k('h')]],
  incr: ({ k }) => [['INCR', k('n')]],
  incrby: ({ k }) => [['INCRBY', k('n'), 5]],
  incrbyfloat: ({ k }) => [['INCRBYFLOAT', k('n'), 0.5]],
  lcs: ({ k }) => [['SET', k('a'), 'ohmytext'], ['SET', k('b'), 'mynewtext'], ['LCS', k('a'), k('b')]],
  lindex: ({ k }) => [list(k('l')), ['LINDEX', k('l'), 1]],
  linsert: ({ k }) => [list(k('l')), ['LINSERT', k('l'), 'BEFORE', 'b', 'x']],
  llen: ({ k }) => [list(k('l')), ['LLEN', k('l')]],
  lmove: ({ k }) => [list(k('l')), ['LMOVE', k('l'), k('m'), 'LEFT', 'RIGHT']],
  lmpop: ({ k }) => [list(k('l')), ['LMPOP', 2, k('e'), k('l'), 'LEFT', 'COUNT', 2]],
  lpop: ({ k }) => [list(k('l')), ['LPOP', k('l'), 2]],
  lpos: ({ k }) => [list(k('l')), ['LPOS', k('l'), 'b']],
  lpush: ({ k }) => [['LPUSH', k('l'), 'a', 'b']],
  lpushx: ({ k }) => [list(k('l')), ['LPUSHX', k('l'), 'x']],
  lrange: ({ k }) => [list(k('l')), ['LRANGE', k('l'), 0, -1]],
  lrem: ({ k }) => [list(k('l')), ['LREM', k('l'), 0, 'a']],
  lset: ({ k }) => [list(k('l')), ['LSET', k('l'), 0, 'x']],
  ltrim: ({ k }) => [list(k('l')), ['LTRIM', k('l'), 0, 1]],
  'memory|usage': ({ k }) => [['SET', k('s'), 'v'], ['MEMORY', 'USAGE', k('s')]],
  mget: (k) => [['MSET', ...spread(k, 'a').flatMap((key) => [key, 'v'])], ['MGET', ...spread(k, 'a'), k.k('none')]],
  // MIGRATE's target is a standalone server (`target`, filled in beforeAll); the KEYS
  // form puts the keys after the options, where the table's key function finds them.
  migrate: ({ k }) => [
    ['MSET', k('a'), '1', k('b'), '2'],
    ['MIGRATE', '127.0.0.1', () => target.port, '', 0, 5000, 'REPLACE', 'KEYS', k('a'), k('b')],
  ],
  move: ({ k }) => [['SET', k('s'), 'v'], ['MOVE', k('s'), 1]],
  mset: (k) => [['MSET', ...spread(k, 'a').flatMap((key) => [key, 'v'])]],
  msetnx: ({ k }) => [['MSETNX', k('a'), '1', k('b'), '2']],
  'object|encoding': ({ k }) => [['SET', k('s'), 'v'], ['OBJECT', 'ENCODING', k('s')]],
  // OBJECT FREQ needs an LFU eviction policy (OBJECT IDLETIME refuses one): set on the
  // owner for the call, then set back.
  'object|freq': ({ k }) => [
    [ON_OWNER, 'CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lfu'],
    ['SET', k('s'), 'v'],
    ['OBJECT', 'FREQ', k('s')],
    [ON_OWNER, 'CONFIG', 'SET', 'maxmemory-policy', 'noeviction'],
  ],
  'object|idletime': ({ k }) => [['SET', k('s'), 'v'], ['OBJECT', 'IDLETIME', k('s')]],
  'object|refcount': ({ k }) => [['SET', k('s'), 'v'], ['OBJECT', 'REFCOUNT', k('s')]],
  persist: ({ k }) => [['SET', k('s'), 'v', 'EX', 100], ['PERSIST', k('s')]],
  pexpire: ({ k }) => [['SET', k('s'), 'v'], ['PEXPIRE', k('s'), 100_000]],
  pexpireat: ({ k }) => [['SET', k('s'), 'v'], ['PEXPIREAT', k('s'), 4_000_000_000_000]],
  pexpiretime: ({ k }) => [['SET', k('s'), 'v', 'EX', 100], ['PEXPIRETIME', k('s')]],
  pfadd: ({ k }) => [['PFADD', k('p'), 'a', 'b']],
  pfcount: ({ k }) => [['PFADD', k('p'), 'a'], ['PFADD', k('q'), 'b'], ['PFCOUNT', k('p'), k('q')]],
  pfdebug: ({ k }) => [['PFADD', k('p'), 'a'], ['PFDEBUG', 'ENCODING', k('p')]],
  pfmerge: ({ k }) => [['PFADD', k('p'), 'a'], ['PFADD', k('q'), 'b'], ['PFMERGE', k('d'), k('p'), k('q')]],
  psetex: ({ k }) => [['PSETEX', k('s'), 100_000, 'v']],
  pttl: ({ k }) => [['SET', k('s'), 'v', 'EX', 100], ['PTTL', k('s')]],
  rename: ({ k }) => [['SET', k('a'), 'v'], ['RENAME', k('a'), k('b')]],
  renamenx: ({ k }) => [['SET', k('a'), 'v'], ['RENAMENX', k('a'), k('b')]],
  restore: ({ k }) => [['SET', k('a'), 'v'], ['DUMP', k('a')], ['RESTORE', k('b'), 0, payload(1), 'REPLACE']],
  'restore-asking': ({ k }) => [['SET', k('a'), 'v'], ['DUMP', k('a')], ['RESTORE-ASKING', k('b'), 0, payload(1), 'REPLACE']],
  rpop: ({ k }) => [list(k('l')), ['RPOP', k('l')]],
  rpoplpush: ({ k }) => [list(k('l')), ['RPOPLPUSH', k('l'), k('m')]],
  rpush: ({ k }) => [list(k('l'))],
  rpushx: ({ k }) => [list(k('l')), ['RPUSHX', k('l'), 'x']],
  sadd: ({ k }) => [set(k('t'))],
  scard: ({ k }) => [set(k('t')), ['SCARD', k('t')]],
  sdiff: ({ k }) => [set(k('t')), ['SADD', k('u'), 'a'], ['SDIFF', k('t'), k('u')]],
  sdiffstore: ({ k }) => [set(k('t')), ['SADD', k('u'), 'a'], ['SDIFFSTORE', k('d'), k('t'), k('u')]],
  // With GET, SET's key is read too: the table's key function decides.
  set: ({ k }) => [['SET', k('s'), 'v', 'GET']],
  setbit: ({ k }) => [['SETBIT', k('s'), 7, 1]],
  setex: ({ k }) => [['SETEX', k('s'), 100, 'v']],
  setnx: ({ k }) => [['SETNX', k('s'), 'v']],
  setrange: ({ k }) => [['SETRANGE', k('s'), 2, 'xy']],
  sinter: ({ k }) => [set(k('t')), ['SADD', k('u'), 'a'], ['SINTER', k('t'), k('u')]],
  sintercard: ({ k }) => [set(k('t')), ['SADD', k('u'), 'a'], ['SINTERCARD', 2, k('t'), k('u'), 'LIMIT', 5]],
  sinterstore: ({ k }) => [set(k('t')), ['SADD', k('u'), 'a'], ['SINTERSTORE', k('d'), k('t'), k('u')]],
  sismember: ({ k }) => [set(k('t')), ['SISMEMBER', k('t'), 'a']],
  smembers: ({ k }) => [set(k('t')), ['SMEMBERS', k('t')]],
  smismember: ({ k }) => [set(k('t')), ['SMISMEMBER', k('t'), 'a', 'x']],
  smove: ({ k }) => [set(k('t')), ['SMOVE', k('t'), k('u'), 'a']],
  // STORE after LIMIT and ALPHA: the table's key function finds the destination.
  sort: ({ k }) => [list(k('l')), ['SORT', k('l'), 'LIMIT', 0, 10, 'ALPHA', 'STORE', k('d')]],
  sort_ro: ({ k }) => [list(k('l')), ['SORT_RO', k('l'), 'ALPHA']],
  spop: ({ k }) => [set(k('t')), ['SPOP', k('t')]],
  // The shard channel routes as a key does.
  spublish: ({ k }) => [['SPUBLISH', k('channel'), 'hello']],
  srandmember: ({ k }) => [set(k('t')), ['SRANDMEMBER', k('t'), 2]],
  srem: ({ k }) => [set(k('t')), ['SREM', k('t'), 'a']],
  sscan: ({ k }) => [set(k('t')), ['SSCAN', k('t'), 0]],
  strlen: ({ k }) => [['SET', k('s'), 'value'], ['STRLEN', k('s')]],
  substr: ({ k }) => [['SET', k('s'), 'value'], ['SUBSTR', k('s'), 0, 2]],
  sunion: ({ k }) => [set(k('t')), ['SADD', k('u'), 'x'], ['SUNION', k('t'), k('u')]],
  sunionstore: ({ k }) => [set(k('t')), ['SADD', k('u'), 'x'], ['SUNIONSTORE', k('d'), k('t'), k('u')]],
  touch: (k) => [['MSET', ...spread(k, 'a').flatMap((key) => [key, 'v'])], ['TOUCH', ...spread(k, 'a')]],
  ttl: ({ k }) => [['SET', k('s'), 'v', 'EX', 100], ['TTL', k('s')]],
  type: ({ k }) => [list(k('l')), ['TYPE', k('l')]],
  unlink: (k) => [['MSET', ...spread(k, 'a').flatMap((key) => [key, 'v'])], ['UNLINK', ...spread(k, 'a')]],
  xack: ({ k }) => [...pending(k('x')), ['XACK', k('x'), 'g', '1-1']],
  xadd: ({ k }) => [['XADD', k('x'), 'MAXLEN', '~', 100, '*', 'f', 'v']],
  xautoclaim: ({ k }) => [...pending(k('x')), ['XAUTOCLAIM', k('x'), 'g', 'c2', 0, '0-0']],
  xclaim: ({ k }) => [...pending(k('x')), ['XCLAIM', k('x'), 'g', 'c2', 0, '1-1']],
  xdel: ({ k }) => [stream(k('x')), ['XDEL', k('x'), '1-1']],
  'xgroup|create': ({ k }) => [['XGROUP', 'CREATE', k('x'), 'g', '$', 'MKSTREAM']],
  'xgroup|createconsumer': ({ k }) => [...group(k('x')), ['XGROUP', 'CREATECONSUMER', k('x'), 'g', 'c']],
  'xgroup|delconsumer': ({ k }) => [...pending(k('x')), ['XGROUP', 'DELCONSUMER', k('x'), 'g', 'c']],
  'xgroup|destroy': ({ k }) => [...group(k('x')), ['XGROUP', 'DESTROY', k('x'), 'g']],
  'xgroup|setid': ({ k }) => [...group(k('x')), ['XGROUP', 'SETID', k('x'), 'g', '0']],
  'xinfo|consumers': ({ k }) => [...pending(k('x')), ['XINFO', 'CONSUMERS', k('x'), 'g']],
  'xinfo|groups': ({ k }) => [...group(k('x')), ['XINFO', 'GROUPS', k('x')]],
  'xinfo|stream': ({ k }) => [stream(k('x')), ['XINFO', 'STREAM', k('x')]],
  xlen: ({ k }) => [stream(k('x')), ['XLEN', k('x')]],
  xpending: ({ k }) => [...pending(k('x')), ['XPENDING', k('x'), 'g']],
  xrange: ({ k }) => [stream(k('x')), ['XRANGE', k('x'), '-', '+']],
  // Keys after STREAMS (COUNT and BLOCK before it): the table's key function finds them.
  xread: ({ k }) => [stream(k('x')), stream(k('y')), ['XREAD', 'COUNT', 1, 'BLOCK', 10, 'STREAMS', k('x'), k('y'), '0', '0']],
  xreadgroup: ({ k }) => [...group(k('x')), ['XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', 1, 'BLOCK', 10, 'STREAMS', k('x'), '>']],
  xrevrange: ({ k }) => [stream(k('x')), ['XREVRANGE', k('x'), '+', '-']],
  xsetid: ({ k }) => [stream(k('x')), ['XSETID', k('x'), '5-0']],
  xtrim: ({ k }) => [stream(k('x')), ['XTRIM', k('x'), 'MAXLEN', 0]],
  zadd: ({ k }) => [zset(k('z'))],
  zcard: ({ k }) => [zset(k('z')), ['ZCARD', k('z')]],
  zcount: ({ k }) => [zset(k('z')), ['ZCOUNT', k('z'), 1, 2]],
  zdiff: ({ k }) => [zset(k('z')), ['ZADD', k('y'), 1, 'a'], ['ZDIFF', 2, k('z'), k('y'), 'WITHSCORES']],
  zdiffstore: ({ k }) => [zset(k('z')), ['ZADD', k('y'), 1, 'a'], ['ZDIFFSTORE', k('d'), 2, k('z'), k('y')]],
  zincrby: ({ k }) => [['ZINCRBY', k('z'), 1.5, 'a']],
  zinter: ({ k }) => [zset(k('z')), ['ZADD', k('y'), 1, 'a'], ['ZINTER', 2, k('z'), k('y'), 'WITHSCORES']],
  zintercard: ({ k }) => [zset(k('z')), ['ZADD', k('y'), 1, 'a'], ['ZINTERCARD', 2, k('z'), k('y')]],
  zinterstore: ({ k }) => [zset(k('z')), ['ZADD', k('y'), 1, 'a'], ['ZINTERSTORE', k('d'), 2, k('z'), k('y'), 'WEIGHTS', 1, 2]],
  zlexcount: ({ k }) => [zset(k('z')), ['ZLEXCOUNT', k('z'), '-', '+']],
  zmpop: ({ k }) => [zset(k('z')), ['ZMPOP', 2, k('e'), k('z'), 'MAX', 'COUNT', 2]],
  zmscore: ({ k }) => [zset(k('z')), ['ZMSCORE', k('z'), 'a', 'x']],
  zpopmax: ({ k }) => [zset(k('z')), ['ZPOPMAX', k('z'), 2]],
  zpopmin: ({ k }) => [zset(k('z')), ['ZPOPMIN', k('z'), 2]],
  zrandmember: ({ k }) => [zset(k('z')), ['ZRANDMEMBER', k('z'), 2, 'WITHSCORES']],
  zrange: ({ k }) => [zset(k('z')), ['ZRANGE', k('z'), 0, -1, 'WITHSCORES']],
  zrangebylex: ({ k }) => [zset(k('z')), ['ZRANGEBYLEX', k('z'), '-', '+']],
  zrangebyscore: ({ k }) => [zset(k('z')), ['ZRANGEBYSCORE', k('z'), '-inf', '+inf', 'WITHSCORES']],
  zrangestore: ({ k }) => [zset(k('z')), ['ZRANGESTORE', k('d'), k('z'), 0, -1]],
  zrank: ({ k }) => [zset(k('z')), ['ZRANK', k('z'), 'b']],
  zrem: ({ k }) => [zset(k('z')), ['ZREM', k('z'), 'a']],
  zremrangebylex: ({ k }) => [zset(k('z')), ['ZREMRANGEBYLEX', k('z'), '[a', '[b']],
  zremrangebyrank: ({ k }) => [zset(k('z')), ['ZREMRANGEBYRANK', k('z'), 0, 0]],
  zremrangebyscore: ({ k }) => [zset(k('z')), ['ZREMRANGEBYSCORE', k('z'), 1, 2]],
  zrevrange: ({ k }) => [zset(k('z')), ['ZREVRANGE', k('z'), 0, -1, 'WITHSCORES']],
  zrevrangebylex: ({ k }) => [zset(k('z')), ['ZREVRANGEBYLEX', k('z'), '+', '-']],
  zrevrangebyscore: ({ k }) => [zset(k('z')), ['ZREVRANGEBYSCORE', k('z'), '+inf', '-inf']],
  zrevrank: ({ k }) => [zset(k('z')), ['ZREVRANK', k('z'), 'b']],
  zscan: ({ k }) => [zset(k('z')), ['ZSCAN', k('z'), 0]],
  zscore: ({ k }) => [zset(k('z')), ['ZSCORE', k('z'), 'b']],
  zunion: ({ k }) => [zset(k('z')), ['ZADD', k('y'), 1, 'x'], ['ZUNION', 2, k('z'), k('y'), 'WITHSCORES']],
  zunionstore: ({ k }) => [zset(k('z')), ['ZADD', k('y'), 1, 'x'], ['ZUNIONSTORE', k('d'), 2, k('z'), k('y')]],
}

/**
 * Key-taking commands not sent, each with its reason. command() refuses them before
 * anything is sent (the test checks that it does): they change the state of the
 * connection that every call of the client shares.
 */
const EXCLUDED: Record<string, string> = {
  watch: 'CONNECTION_CHANGING: command() refuses it (the watch would hold on a shared connection); watch() is the API',
  ssubscribe: 'CONNECTION_CHANGING: command() refuses it (a subscription turns the shared connection into a push stream)',
  sunsubscribe: 'CONNECTION_CHANGING: command() refuses it (as SSUBSCRIBE)',
}

/**
 * Error replies accepted from the command's own call, each with its reason; the
 * redirection check comes before the command runs, so these still show the routing.
 */
const ACCEPTED_ERRORS: Record<string, RegExp> = {
  // A cluster node has one database: Redis refuses MOVE in cluster mode, always.
  move: /MOVE is not allowed in cluster mode/,
}

const TABLE = commandTable()
const NAMES = new Set(TABLE.map((c) => c.name))
/** The commands of the table that take keys (or a shard channel, which routes like one). */
const KEY_COMMANDS = TABLE.filter((c) => c.keySpecs > 0).map((c) => c.name)

/** The table's name of a call: `"xgroup|create"` for `XGROUP CREATE …`. */
function tableName(call: Value[]): string {
  const name = String(call[0]).toLowerCase()
  const sub = call.length > 1 ? `${name}|${String(call[1]).toLowerCase()}` : ''
  return NAMES.has(sub) ? sub : name
}

let cluster: RedisCluster
let target: RedisServer
let redis: RedisClient
/** The masters, and the slots each owns. */
let masters: Array<{ server: RedisServer; slots: Array<[number, number]> }>

/** The index in `masters` of the master that owns `key`'s slot. */
function ownerIndex(key: string): number {
  const slot = keySlot(key)
  const i = masters.findIndex((m) => m.slots.some(([a, b]) => slot >= a && slot <= b))
  if (i < 0) throw new Error(`no master owns slot ${slot}`)
  return i
}

/** A hash tag starting with `base` whose slot master `index` owns. */
function tagOn(index: number, base: string): string {
  for (let n = 0; ; n++) {
    const tag = `${base}#${n}`
    if (ownerIndex(tag) === index) return tag
  }
}

/** INFO commandstats of a master: calls and rejected calls by command name ("xgroup|create"). */
async function commandstats(server: RedisServer): Promise<Map<string, { calls: number; rejected: number }>> {
  const out = new Map<string, { calls: number; rejected: number }>()
  for (const line of (await server.cli('INFO', 'commandstats')).split('\n')) {
    const hit = /^cmdstat_([^:]+):calls=(\d+),.*rejected_calls=(\d+)/.exec(line.trim())
    if (hit) out.set(hit[1], { calls: Number(hit[2]), rejected: Number(hit[3]) })
  }
  return out
}

/** Sums `errorstat_<code>:count=N` of INFO errorstats over the masters. */
async function errorstats(code: string): Promise<number> {
  let sum = 0
  for (const m of masters) {
    const info = await m.server.cli('INFO', 'errorstats')
    const hit = new RegExp(`^errorstat_${code}:count=(\\d+)`, 'm').exec(info)
    if (hit) sum += Number(hit[1])
  }
  return sum
}

beforeAll(async () => {
  cluster = await startCluster({ masters: 3, replicas: 0 })
  target = await startRedis()
  const servers = await cluster.masters()
  masters = await Promise.all(
    servers.map(async (server) => {
      const nodes = await server.cli('CLUSTER', 'NODES')
      const me = nodes.split('\n').find((l) => /\bmyself\b/.test(l)) ?? ''
      const slots = me
        .trim()
        .split(' ')
        .slice(8)
        .map((r) => r.split('-').map(Number))
        .map(([a, b]): [number, number] => [a, b ?? a])
      return { server, slots }
    }),
  )
  // EVALSHA and FCALL find their script and library on every master.
  for (const m of servers) {
    expect(await m.cli('SCRIPT', 'LOAD', SET_SCRIPT)).toBe(sha1(SET_SCRIPT))
    expect(await m.cli('SCRIPT', 'LOAD', GET_SCRIPT)).toBe(sha1(GET_SCRIPT))
    expect(await m.cli('FUNCTION', 'LOAD', 'REPLACE', LIBRARY)).toBe('atlasroute')
  }
  redis = await connect({ cluster: { nodes: [cluster.nodes[0]] } })
})

afterAll(async () => {
  await closeAll()
  await cluster?.stop()
  await stopAll()
})

test('every key-taking command of the table has a sample call or a stated exclusion, and no other', () => {
  expect(KEY_COMMANDS.length).toBeGreaterThan(150)
  const missing = KEY_COMMANDS.filter((n) => !(n in SAMPLES) && !(n in EXCLUDED))
  expect(missing).toEqual([])
  // Samples and exclusions of commands the table does not have (or has without keys) are stale.
  const stale = [...Object.keys(SAMPLES), ...Object.keys(EXCLUDED)].filter((n) => !KEY_COMMANDS.includes(n))
  expect(stale).toEqual([])
  expect(Object.keys(SAMPLES).filter((n) => n in EXCLUDED)).toEqual([])
})

test('INFO errorstats counts a MOVED (the measure below can fail)', async () => {
  const key = 'errorstats-control'
  const wrong = masters[(ownerIndex(key) + 1) % masters.length].server
  expect(await wrong.cli('CONFIG', 'RESETSTAT')).toBe('OK')
  expect(await wrong.cli('GET', key)).toMatch(/^MOVED /)
  expect(await errorstats('MOVED')).toBe(1)
})

test('every key-taking command is sent to the master of its keys: no MOVED, no ASK', async () => {
  for (const m of masters) expect(await m.server.cli('CONFIG', 'RESETSTAT')).toBe('OK')
  const before = redis.stats().cluster!
  const failures: string[] = []
  const tested = new Set<string>()
  /** How many commands' keys were on each master. */
  const perMaster = masters.map(() => 0)
  /** The masters each command's keys were on. */
  const homes = new Map<string, Set<number>>()
  const samples = KEY_COMMANDS.filter((n) => n in SAMPLES)
  for (const [i, name] of samples.entries()) {
    const home = i % masters.length
    const tag = tagOn(home, name)
    const keys: Keys = {
      k: (n) => `{${tag}}${n}`,
      far: (j, n) => `{${tagOn((home + j) % masters.length, `${name}:${j}`)}}${n}`,
    }
    const replies: unknown[] = []
    for (const call of SAMPLES[name](keys)) {
      if (call[0] === ON_OWNER) {
        replies.push(await masters[home].server.cli(...(call.slice(1) as Array<string | number>)))
        continue
      }
      const args = (call as Arg[]).map((a) => (typeof a === 'function' ? a(replies) : a))
      const own = tableName(args) === name
      if (own) {
        tested.add(name)
        const at = routingKeys(String(args[0]), args.slice(1).map(String))
        const owners = new Set((at ?? []).map((p) => ownerIndex(String(args[p + 1]))))
        if (owners.size === 0) failures.push(`${name}: the table finds no key in ${args.join(' ')}`)
        for (const o of owners) perMaster[o] += 1
        homes.set(name, new Set([...(homes.get(name) ?? []), ...owners]))
      }
      try {
        replies.push(await redis.command(String(args[0]), ...args.slice(1)))
      } catch (e) {
        const message = (e as Error).message
        replies.push(e)
        if (!(own && ACCEPTED_ERRORS[name]?.test(message))) failures.push(`${name}: ${args.join(' ')} → ${message}`)
      }
    }
  }
  // Each command ran on the master(s) of its keys, and no master turned a call away
  // (rejected_calls counts MOVED and ASK answers, by command).
  const stats = await Promise.all(masters.map((m) => commandstats(m.server)))
  const after = redis.stats().cluster!
  // One object, so that a failure shows everything at once.
  expect({
    failures,
    untested: samples.filter((n) => !tested.has(n)),
    notOnTheirMaster: samples.flatMap((n) =>
      [...(homes.get(n) ?? [])].filter((o) => !stats[o].get(n)?.calls).map((o) => `${n} on ${masters[o].server.port}`),
    ),
    rejected: stats.flatMap((st) => [...st].filter(([, v]) => v.rejected > 0).map(([n]) => n)),
    errorstats: { MOVED: await errorstats('MOVED'), ASK: await errorstats('ASK'), CROSSSLOT: await errorstats('CROSSSLOT') },
    client: { moved: after.moved - before.moved, ask: after.ask - before.ask },
  }).toEqual({
    failures: [],
    untested: [],
    notOnTheirMaster: [],
    rejected: [],
    errorstats: { MOVED: 0, ASK: 0, CROSSSLOT: 0 },
    client: { moved: 0, ask: 0 },
  })
  expect(after).toMatchObject({ masters: 3, moved: 0, ask: 0 })
  // The keys were on every master (each about a third of the commands).
  for (const n of perMaster) expect(n).toBeGreaterThan(samples.length / 4)
})

test('the excluded commands are refused before anything is sent', async () => {
  for (const name of Object.keys(EXCLUDED)) {
    const key = `{excluded}${name}`
    // They still route by their key (or shard channel), should a later version send them.
    expect(routingKeys(name, [key])).toEqual([0])
    await expect(redis.command(name.toUpperCase(), key)).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: expect.stringContaining('would change the connection'),
    })
  }
})

describe('reply shapes on a cluster are those of a standalone server', () => {
  let single: RedisClient
  let server: RedisServer
  beforeAll(async () => {
    server = await startRedis()
    single = await connect(server.url)
  })

  /** Sends each call to both clients; returns both replies of each. */
  async function both(calls: Value[][]): Promise<Array<[unknown, unknown]>> {
    const out: Array<[unknown, unknown]> = []
    for (const c of calls) {
      const [name, ...args] = c.map((a) => (typeof a === 'string' ? a.replace('$', '{shape}') : a))
      out.push([await single.command(String(name), ...args), await redis.command(String(name), ...args)])
    }
    return out
  }

  test('sorted sets, hashes and streams (WITHSCORES, WITHVALUES, doubles, entries)', async () => {
    const calls: Value[][] = [
      ['ZADD', '$z', 1, 'a', 2.5, 'b', 0.1, 'c', 1e20, 'd'],
      ['ZRANGE', '$z', 0, -1, 'WITHSCORES'],
      ['ZRANGE', '$z', 0, -1],
      ['ZREVRANGEBYSCORE', '$z', '+inf', '-inf', 'WITHSCORES'],
      ['ZSCORE', '$z', 'c'],
      ['ZMSCORE', '$z', 'a', 'd', 'x'],
      ['ZINCRBY', '$z', 0, 'b'],
      ['ZUNION', 1, '$z', 'WITHSCORES'],
      ['ZADD', '$one', 0.25, 'm'],
      ['ZRANDMEMBER', '$one', -2, 'WITHSCORES'],
      ['ZSCAN', '$z', 0],
      ['ZPOPMIN', '$z', 1],
      ['ZPOPMAX', '$z'],
      ['ZMPOP', 1, '$z', 'MIN', 'COUNT', 2],
      ['BZPOPMIN', '$one', 0.01],
      ['HSET', '$h', 'f', 'v'],
      ['HGETALL', '$h'],
      ['HRANDFIELD', '$h', 1, 'WITHVALUES'],
      ['HINCRBYFLOAT', '$h', 'n', 0.1],
      ['XADD', '$x', '1-1', 'f', 'v'],
      ['XRANGE', '$x', '-', '+'],
      ['XREAD', 'STREAMS', '$x', '0'],
      ['XGROUP', 'CREATE', '$x', 'g', '0'],
      ['XREADGROUP', 'GROUP', 'g', 'c', 'STREAMS', '$x', '>'],
      ['XPENDING', '$x', 'g'],
      ['XAUTOCLAIM', '$x', 'g', 'c', 0, '0-0', 'JUSTID'],
      ['SET', '$a', 'ohmytext'],
      ['SET', '$b', 'mynewtext'],
      ['LCS', '$a', '$b', 'IDX', 'WITHMATCHLEN'],
      ['EVAL', 'return {1, {2, "x"}, false}', 1, '$e'],
      ['SMEMBERS', '$none'],
    ]
    for (const [i, [standalone, onCluster]] of (await both(calls)).entries()) {
      expect({ call: calls[i].join(' '), reply: onCluster }).toEqual({ call: calls[i].join(' '), reply: standalone })
    }
    expect(redis.stats().cluster!.moved).toBe(0)
  })

  test('inside multi() and pipeline() too', async () => {
    const run = (c: RedisClient, kind: 'multi' | 'pipeline') =>
      c[kind]()
        .command('ZADD', `{shape}${kind}`, 1, 'a', 0.1, 'b')
        .command('ZRANGE', `{shape}${kind}`, 0, -1, 'WITHSCORES')
        .command('HSET', `{shape}${kind}h`, 'f', 'v')
        .command('HRANDFIELD', `{shape}${kind}h`, 1, 'WITHVALUES')
        .command('ZMPOP', 1, `{shape}${kind}`, 'MAX', 'COUNT', 2)
        .exec()
    for (const kind of ['multi', 'pipeline'] as const) {
      const standalone = await run(single, kind)
      expect(standalone).toEqual([2, ['b', '0.10000000000000001', 'a', '1'], 1, ['f', 'v'], [`{shape}${kind}`, [['a', '1'], ['b', '0.10000000000000001']]]])
      expect(await run(redis, kind)).toEqual(standalone)
    }
  })

  test('geo coordinates: the same shape; digits beyond a double are the standalone server\'s own', async () => {
    // RESP2 prints a coordinate from a long double (17 decimals); RESP3, which the cluster
    // connection speaks, sends a double: the same number to 15 digits, fewer digits.
    const calls: Value[][] = [
      ['GEOADD', '$g', 13.361389, 38.115556, 'Palermo'],
      ['GEOPOS', '$g', 'Palermo'],
      ['GEOSEARCH', '$g', 'FROMLONLAT', 15, 37, 'BYRADIUS', 200, 'km', 'WITHCOORD', 'WITHDIST'],
    ]
    const replies = await both(calls)
    const numbers = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(numbers) : typeof v === 'string' && /^[\d.]+$/.test(v) ? Number(Number(v).toPrecision(15)) : v
    for (const [standalone, onCluster] of replies) expect(numbers(onCluster)).toEqual(numbers(standalone))
  })
})
