//! The data commands of `memory://`, with Redis 7.0's replies and error texts.
//! [`run`] executes one command on a [`Ctx`]; the connection-level commands
//! (HELLO, AUTH, CLIENT, EVAL, SCRIPT, …) are in [`super::server`].

use std::collections::{HashSet, VecDeque};

use indexmap::IndexMap;

use bytes::Bytes;

use super::fmt::{g17, human, parse_float, parse_int};
use super::store::{Data, Db, Entry, Key, Value, ZSet, DATABASES};
use crate::memory::resp::Reply;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INT: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
/// Largest string value (Redis' proto-max-bulk-len default).
pub const MAX_STRING: usize = 512 * 1024 * 1024;

/// What one command runs against.
pub struct Ctx<'a> {
  pub data: &'a mut Data,
  pub db: usize,
  /// Replies in RESP3 types (maps, doubles).
  pub resp3: bool,
  pub now: u64,
  /// Keys written, for client tracking.
  pub dirty: Vec<Key>,
}

impl<'a> Ctx<'a> {
  pub fn new(data: &'a mut Data, db: usize, resp3: bool) -> Ctx<'a> {
    Ctx {
      data,
      db,
      resp3,
      now: super::store::now_ms(),
      dirty: Vec::new(),
    }
  }

  fn db(&mut self) -> &mut Db {
    &mut self.data.dbs[self.db]
  }

  fn touch(&mut self, key: &[u8]) {
    self.dirty.push(key.to_vec());
  }

  /// Tells tracking connections about the keys written and dropped.
  pub fn finish(&mut self) {
    let dirty = std::mem::take(&mut self.dirty);
    self.data.invalidate(&dirty);
    self.data.flush_gone();
  }

  fn double(&self, v: f64) -> Reply {
    if self.resp3 {
      Reply::Double(v)
    } else {
      bulk(g17(v).into_bytes())
    }
  }

  fn map(&self, pairs: Vec<(Reply, Reply)>) -> Reply {
    if self.resp3 {
      Reply::Map(pairs)
    } else {
      Reply::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
    }
  }
}

pub fn err(s: impl Into<String>) -> Reply {
  Reply::Error(s.into())
}

pub fn ok() -> Reply {
  Reply::Status(Bytes::from_static(b"OK"))
}

pub fn bulk(v: impl Into<Bytes>) -> Reply {
  Reply::Bulk(v.into())
}

fn bulk_of(v: &[u8]) -> Reply {
  Reply::Bulk(Bytes::copy_from_slice(v))
}

fn int(n: impl TryInto<i64>) -> Reply {
  Reply::Int(n.try_into().unwrap_or(i64::MAX))
}

pub fn wrong_args(name: &str) -> Reply {
  err(format!(
    "ERR wrong number of arguments for '{name}' command"
  ))
}

/// Redis 7's text for a command it does not know.
pub fn unknown(args: &[Bytes]) -> Reply {
  let mut s = format!(
    "ERR unknown command '{}', with args beginning with: ",
    clip(&args[0])
  );
  for a in &args[1..] {
    s.push_str(&format!("'{}' ", clip(a)));
  }
  err(s)
}

fn clip(b: &[u8]) -> String {
  let b = &b[..b.len().min(128)];
  String::from_utf8_lossy(b).into_owned()
}

fn lower(b: &[u8]) -> String {
  String::from_utf8_lossy(b).to_ascii_lowercase()
}

fn int_arg(b: &[u8]) -> Result<i64, Reply> {
  parse_int(b).ok_or_else(|| err(NOT_INT))
}

type Handler = fn(&mut Ctx, &[Bytes]) -> Reply;

/// The arity (Redis' convention: n exact, -n at least n) and handler of a
/// data command, by its lower-case name.
pub fn lookup(name: &str) -> Option<(i32, Handler)> {
  Some(match name {
    "ping" => (-1, ping),
    "echo" => (2, echo),
    "time" => (1, time),
    "select" => (2, select),
    "dbsize" => (1, dbsize),
    "flushdb" => (-1, flushdb),
    "flushall" => (-1, flushall),
    "get" => (2, get),
    "set" => (-3, set),
    "setnx" => (3, setnx),
    "setex" => (4, setex),
    "psetex" => (4, psetex),
    "getset" => (3, getset),
    "getdel" => (2, getdel),
    "getex" => (-2, getex),
    "mget" => (-2, mget),
    "mset" => (-3, mset),
    "msetnx" => (-3, msetnx),
    "incr" => (2, incr),
    "decr" => (2, decr),
    "incrby" => (3, incrby),
    "decrby" => (3, decrby),
    "incrbyfloat" => (3, incrbyfloat),
    "append" => (3, append),
    "strlen" => (2, strlen),
    "getrange" => (4, getrange),
    "del" | "unlink" => (-2, del),
    "exists" => (-2, exists),
    "expire" => (-3, expire),
    "pexpire" => (-3, pexpire),
    "expireat" => (-3, expireat),
    "pexpireat" => (-3, pexpireat),
    "ttl" => (2, ttl),
    "pttl" => (2, pttl),
    "expiretime" => (2, expiretime),
    "pexpiretime" => (2, pexpiretime),
    "persist" => (2, persist),
    "type" => (2, type_),
    "scan" => (-2, scan),
    "keys" => (2, keys),
    "randomkey" => (1, randomkey),
    "rename" => (3, rename),
    "renamenx" => (3, renamenx),
    "hget" => (3, hget),
    "hset" => (-4, hset),
    "hmset" => (-4, hmset),
    "hsetnx" => (4, hsetnx),
    "hmget" => (-3, hmget),
    "hgetall" => (2, hgetall),
    "hdel" => (-3, hdel),
    "hlen" => (2, hlen),
    "hexists" => (3, hexists),
    "hkeys" => (2, hkeys),
    "hvals" => (2, hvals),
    "hstrlen" => (3, hstrlen),
    "hincrby" => (4, hincrby),
    "hincrbyfloat" => (4, hincrbyfloat),
    "sadd" => (-3, sadd),
    "srem" => (-3, srem),
    "smembers" => (2, smembers),
    "scard" => (2, scard),
    "sismember" => (3, sismember),
    "smismember" => (-3, smismember),
    "zadd" => (-4, zadd),
    "zincrby" => (4, zincrby),
    "zrem" => (-3, zrem),
    "zcard" => (2, zcard),
    "zscore" => (3, zscore),
    "zcount" => (4, zcount),
    "zrange" => (-4, zrange),
    "zrevrange" => (-4, zrevrange),
    "zrangebyscore" => (-4, zrangebyscore),
    "zrevrangebyscore" => (-4, zrevrangebyscore),
    "zremrangebyscore" => (4, zremrangebyscore),
    "zremrangebyrank" => (4, zremrangebyrank),
    "lpush" => (-3, lpush),
    "rpush" => (-3, rpush),
    "lpop" => (-2, lpop),
    "rpop" => (-2, rpop),
    "llen" => (2, llen),
    "lrange" => (4, lrange),
    "lindex" => (3, lindex),
    "ltrim" => (4, ltrim),
    "linsert" => (5, linsert),
    "lrem" => (4, lrem),
    "lset" => (4, lset),
    _ => return None,
  })
}

/// Whether a data command is flagged `write` on Redis (run by a script, it
/// makes the script unkillable: SCRIPT KILL answers UNKILLABLE).
pub fn is_write(name: &str) -> bool {
  matches!(
    name,
    "flushdb"
      | "flushall"
      | "set"
      | "setnx"
      | "setex"
      | "psetex"
      | "getset"
      | "getdel"
      | "getex"
      | "mset"
      | "msetnx"
      | "incr"
      | "decr"
      | "incrby"
      | "decrby"
      | "incrbyfloat"
      | "append"
      | "del"
      | "unlink"
      | "expire"
      | "pexpire"
      | "expireat"
      | "pexpireat"
      | "persist"
      | "rename"
      | "renamenx"
      | "hset"
      | "hmset"
      | "hsetnx"
      | "hdel"
      | "hincrby"
      | "hincrbyfloat"
      | "sadd"
      | "srem"
      | "zadd"
      | "zincrby"
      | "zrem"
      | "zremrangebyscore"
      | "zremrangebyrank"
      | "lpush"
      | "rpush"
      | "lpop"
      | "rpop"
      | "ltrim"
      | "linsert"
      | "lrem"
      | "lset"
  )
}

pub fn arity_ok(arity: i32, n: usize) -> bool {
  if arity >= 0 {
    n == arity as usize
  } else {
    n >= (-arity) as usize
  }
}

/// Runs one data command (`args[0]` is its name).
pub fn run(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
  let name = lower(&args[0]);
  match lookup(&name) {
    None => unknown(args),
    Some((arity, _)) if !arity_ok(arity, args.len()) => wrong_args(&name),
    Some((_, f)) => f(ctx, args),
  }
}

// ---- typed access -----------------------------------------------------------

macro_rules! typed {
  ($fn:ident, $fn_mut:ident, $variant:ident, $t:ty) => {
    /// The value at `key` if it is of this type; None if absent; Err if another type.
    fn $fn<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c $t>, Reply> {
      let now = ctx.now;
      match ctx.db().get(key, now) {
        None => Ok(None),
        Some(Entry {
          value: Value::$variant(v),
          ..
        }) => Ok(Some(v)),
        Some(_) => Err(err(WRONGTYPE)),
      }
    }

    /// The value at `key` for writing, created empty when absent.
    fn $fn_mut<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<&'c mut $t, Reply> {
      let now = ctx.now;
      ctx.touch(key);
      let db = ctx.db();
      if db.get(key, now).is_none() {
        db.insert(
          key.to_vec(),
          Entry {
            value: Value::$variant(Default::default()),
            expires: None,
          },
        );
      }
      match db.get_mut(key, now) {
        Some(Entry {
          value: Value::$variant(v),
          ..
        }) => Ok(v),
        _ => Err(err(WRONGTYPE)),
      }
    }
  };
}

typed!(get_str, str_mut, Str, Vec<u8>);
typed!(get_hash, hash_mut, Hash, IndexMap<Key, Vec<u8>>);
typed!(get_set, set_mut, Set, HashSet<Key>);
typed!(get_zset, zset_mut, ZSet, ZSet);
typed!(get_list, list_mut, List, VecDeque<Vec<u8>>);

macro_rules! tri {
  ($e:expr) => {
    match $e {
      Ok(v) => v,
      Err(r) => return r,
    }
  };
}

// ---- server -------------------------------------------------------------------

fn ping(_: &mut Ctx, a: &[Bytes]) -> Reply {
  match a.len() {
    1 => Reply::Status(Bytes::from_static(b"PONG")),
    2 => Reply::Bulk(a[1].clone()),
    _ => wrong_args("ping"),
  }
}

fn echo(_: &mut Ctx, a: &[Bytes]) -> Reply {
  Reply::Bulk(a[1].clone())
}

fn time(_: &mut Ctx, _: &[Bytes]) -> Reply {
  let us = super::store::now_us();
  Reply::Array(vec![
    bulk((us / 1_000_000).to_string()),
    bulk((us % 1_000_000).to_string()),
  ])
}

fn select(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let n = tri!(int_arg(&a[1]));
  if n < 0 || n as usize >= DATABASES {
    return err("ERR DB index is out of range");
  }
  ctx.db = n as usize;
  ok()
}

fn dbsize(ctx: &mut Ctx, _: &[Bytes]) -> Reply {
  let now = ctx.now;
  int(ctx.db().live_keys(now).count())
}

fn flush_args(a: &[Bytes]) -> Result<(), Reply> {
  match a.len() {
    1 => Ok(()),
    2 if matches!(lower(&a[1]).as_str(), "async" | "sync") => Ok(()),
    _ => Err(err(SYNTAX)),
  }
}

fn flushdb(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  tri!(flush_args(a));
  ctx.db().clear();
  ctx.data.invalidate_all();
  ok()
}

fn flushall(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  tri!(flush_args(a));
  for db in &mut ctx.data.dbs {
    db.clear();
  }
  ctx.data.invalidate_all();
  ok()
}

// ---- strings ------------------------------------------------------------------

fn get(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  match tri!(get_str(ctx, &a[1])) {
    Some(v) => bulk_of(v),
    None => Reply::Nil,
  }
}

/// An expiry option's time: relative (EX/PX) or absolute (EXAT/PXAT), in
/// seconds or ms, as the Unix ms it ends at.
fn expire_at(ctx: &Ctx, raw: &[u8], unit_ms: i64, absolute: bool, cmd: &str) -> Result<u64, Reply> {
  let n = int_arg(raw)?;
  let invalid = || err(format!("ERR invalid expire time in '{cmd}' command"));
  if n <= 0 {
    return Err(invalid());
  }
  let ms = n.checked_mul(unit_ms).ok_or_else(invalid)?;
  let at = if absolute {
    ms
  } else {
    ms.checked_add(ctx.now as i64).ok_or_else(invalid)?
  };
  Ok(at as u64)
}

fn write_str(ctx: &mut Ctx, key: &[u8], v: Vec<u8>, expires: Option<u64>) {
  ctx.touch(key);
  ctx.db().insert(
    key.to_vec(),
    Entry {
      value: Value::Str(v),
      expires,
    },
  );
}

fn set(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let (mut nx, mut xx, mut get_old, mut keep) = (false, false, false, false);
  let mut expires: Option<u64> = None;
  let mut has_exp = false;
  let mut i = 3;
  while i < a.len() {
    let o = lower(&a[i]);
    let next = a.get(i + 1);
    match o.as_str() {
      "nx" if !xx => nx = true,
      "xx" if !nx => xx = true,
      "get" => get_old = true,
      "keepttl" if !has_exp => keep = true,
      "ex" | "px" | "exat" | "pxat" if !has_exp && !keep && next.is_some() => {
        let unit = if o.starts_with('e') { 1000 } else { 1 };
        expires = Some(tri!(expire_at(
          ctx,
          next.unwrap(),
          unit,
          o.ends_with("at"),
          "set"
        )));
        has_exp = true;
        i += 1;
      }
      _ => return err(SYNTAX),
    }
    i += 1;
  }
  let key = &a[1];
  let now = ctx.now;
  let old = match ctx.db().get(key, now) {
    None => None,
    Some(Entry {
      value: Value::Str(v),
      expires,
    }) => Some((v.clone(), *expires)),
    Some(_) if get_old => return err(WRONGTYPE),
    Some(e) => Some((Vec::new(), e.expires)),
  };
  let exists = ctx.db().contains(key, now);
  let reply_old = || match &old {
    Some((v, _)) => bulk_of(v),
    None => Reply::Nil,
  };
  if (nx && exists) || (xx && !exists) {
    return if get_old { reply_old() } else { Reply::Nil };
  }
  let exp = if keep {
    old.as_ref().and_then(|(_, e)| *e)
  } else {
    expires
  };
  let r = if get_old { reply_old() } else { ok() };
  write_str(ctx, key, a[2].to_vec(), exp);
  r
}

fn setnx(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let now = ctx.now;
  if ctx.db().contains(&a[1], now) {
    return int(0);
  }
  write_str(ctx, &a[1], a[2].to_vec(), None);
  int(1)
}

fn setex_unit(ctx: &mut Ctx, a: &[Bytes], unit: i64, cmd: &str) -> Reply {
  let at = tri!(expire_at(ctx, &a[2], unit, false, cmd));
  write_str(ctx, &a[1], a[3].to_vec(), Some(at));
  ok()
}

fn setex(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  setex_unit(ctx, a, 1000, "setex")
}

fn psetex(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  setex_unit(ctx, a, 1, "psetex")
}

fn getset(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let old = tri!(get_str(ctx, &a[1])).cloned();
  write_str(ctx, &a[1], a[2].to_vec(), None);
  old.map(bulk).unwrap_or(Reply::Nil)
}

fn getdel(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let old = tri!(get_str(ctx, &a[1])).cloned();
  if old.is_some() {
    ctx.db().remove(&a[1]);
    ctx.touch(&a[1]);
  }
  old.map(bulk).unwrap_or(Reply::Nil)
}

fn getex(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let mut change: Option<Option<u64>> = None;
  let mut i = 2;
  while i < a.len() {
    let o = lower(&a[i]);
    match o.as_str() {
      "persist" if change.is_none() => change = Some(None),
      "ex" | "px" | "exat" | "pxat" if change.is_none() && i + 1 < a.len() => {
        let unit = if o.starts_with('e') { 1000 } else { 1 };
        change = Some(Some(tri!(expire_at(
          ctx,
          &a[i + 1],
          unit,
          o.ends_with("at"),
          "getex"
        ))));
        i += 1;
      }
      _ => return err(SYNTAX),
    }
    i += 1;
  }
  let Some(v) = tri!(get_str(ctx, &a[1])).cloned() else {
    return Reply::Nil;
  };
  if let Some(at) = change {
    ctx.db().set_expires(&a[1], at);
    ctx.touch(&a[1]);
  }
  bulk(v)
}

fn mget(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let now = ctx.now;
  Reply::Array(
    a[1..]
      .iter()
      .map(|k| match ctx.db().get(k, now) {
        Some(Entry {
          value: Value::Str(v),
          ..
        }) => bulk_of(v),
        _ => Reply::Nil,
      })
      .collect(),
  )
}

fn mset(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  if a.len().is_multiple_of(2) {
    return wrong_args(&lower(&a[0]));
  }
  for kv in a[1..].chunks(2) {
    write_str(ctx, &kv[0], kv[1].to_vec(), None);
  }
  ok()
}

fn msetnx(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  if a.len().is_multiple_of(2) {
    return wrong_args("msetnx");
  }
  let now = ctx.now;
  if a[1..].chunks(2).any(|kv| ctx.db().contains(&kv[0], now)) {
    return int(0);
  }
  mset(ctx, a);
  int(1)
}

fn incr_by(ctx: &mut Ctx, key: &[u8], by: i64) -> Reply {
  let cur = match tri!(get_str(ctx, key)) {
    None => 0,
    Some(v) => match parse_int(v) {
      Some(n) => n,
      None => return err(NOT_INT),
    },
  };
  let Some(n) = cur.checked_add(by) else {
    return err("ERR increment or decrement would overflow");
  };
  let now = ctx.now;
  let exp = ctx.db().get(key, now).and_then(|e| e.expires);
  write_str(ctx, key, n.to_string().into_bytes(), exp);
  int(n)
}

fn incr(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  incr_by(ctx, &a[1], 1)
}

fn decr(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  incr_by(ctx, &a[1], -1)
}

fn incrby(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let by = tri!(int_arg(&a[2]));
  incr_by(ctx, &a[1], by)
}

fn decrby(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let by = tri!(int_arg(&a[2]));
  if by == i64::MIN {
    return err("ERR decrement would overflow");
  }
  incr_by(ctx, &a[1], -by)
}

fn incrbyfloat(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let Some(by) = parse_float(&a[2]) else {
    return err(NOT_FLOAT);
  };
  let cur = match tri!(get_str(ctx, &a[1])) {
    None => 0.0,
    Some(v) => match parse_float(v) {
      Some(n) => n,
      None => return err(NOT_FLOAT),
    },
  };
  let n = cur + by;
  if !n.is_finite() {
    return err("ERR increment would produce NaN or Infinity");
  }
  let text = human(n).into_bytes();
  let now = ctx.now;
  let exp = ctx.db().get(&a[1], now).and_then(|e| e.expires);
  write_str(ctx, &a[1], text.clone(), exp);
  bulk(text)
}

fn append(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let cur_len = tri!(get_str(ctx, &a[1])).map_or(0, |v| v.len());
  if cur_len + a[2].len() > MAX_STRING {
    return err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
  }
  let v = tri!(str_mut(ctx, &a[1]));
  v.extend_from_slice(&a[2]);
  int(v.len())
}

fn strlen(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  int(tri!(get_str(ctx, &a[1])).map_or(0, |v| v.len()))
}

/// Redis' start/end index rules for ranges over `len` items (inclusive end).
fn range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
  let len = len as i64;
  let mut s = if start < 0 { len + start } else { start };
  let mut e = if end < 0 { len + end } else { end };
  if s < 0 {
    s = 0;
  }
  if e >= len {
    e = len - 1;
  }
  if s > e || s >= len || len == 0 {
    return None;
  }
  Some((s as usize, e as usize))
}

fn getrange(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let (s, e) = (tri!(int_arg(&a[2])), tri!(int_arg(&a[3])));
  let v = tri!(get_str(ctx, &a[1])).cloned().unwrap_or_default();
  if s < 0 && e < 0 && s > e {
    return bulk(Vec::new());
  }
  match range(s, e, v.len()) {
    Some((s, e)) => bulk_of(&v[s..=e]),
    None => bulk(Vec::new()),
  }
}

// ---- keys -----------------------------------------------------------------------

fn del(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let now = ctx.now;
  let mut n = 0;
  for k in &a[1..] {
    if ctx.db().get(k, now).is_some() {
      ctx.db().remove(k);
      ctx.touch(k);
      n += 1;
    }
  }
  int(n)
}

fn exists(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let now = ctx.now;
  int(a[1..].iter().filter(|k| ctx.db().contains(k, now)).count())
}

fn expire_generic(ctx: &mut Ctx, a: &[Bytes], unit: i64, absolute: bool) -> Reply {
  let cmd = lower(&a[0]);
  let n = tri!(int_arg(&a[2]));
  let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
  for o in &a[3..] {
    match lower(o).as_str() {
      "nx" => nx = true,
      "xx" => xx = true,
      "gt" => gt = true,
      "lt" => lt = true,
      _ => {
        return err(format!(
          "ERR Unsupported option {}",
          String::from_utf8_lossy(o)
        ))
      }
    }
  }
  if nx && (xx || gt || lt) {
    return err("ERR NX and XX, GT or LT options at the same time are not compatible");
  }
  if gt && lt {
    return err("ERR GT and LT options at the same time are not compatible");
  }
  let invalid = || err(format!("ERR invalid expire time in '{cmd}' command"));
  let Some(ms) = n.checked_mul(unit) else {
    return invalid();
  };
  let at = if absolute {
    ms
  } else {
    match ms.checked_add(ctx.now as i64) {
      Some(t) => t,
      None => return invalid(),
    }
  };
  let now = ctx.now;
  let Some(cur) = ctx.db().get(&a[1], now).map(|e| e.expires) else {
    return int(0);
  };
  // no expiry counts as an infinite one
  let refuse = (nx && cur.is_some())
    || (xx && cur.is_none())
    || (gt && cur.is_none_or(|c| at <= c as i64))
    || (lt && cur.is_some_and(|c| at >= c as i64));
  if refuse {
    return int(0);
  }
  ctx.touch(&a[1]);
  if at <= now as i64 {
    ctx.db().remove(&a[1]);
  } else {
    ctx.db().set_expires(&a[1], Some(at as u64));
  }
  int(1)
}

fn expire(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  expire_generic(ctx, a, 1000, false)
}

fn pexpire(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  expire_generic(ctx, a, 1, false)
}

fn expireat(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  expire_generic(ctx, a, 1000, true)
}

fn pexpireat(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  expire_generic(ctx, a, 1, true)
}

/// -2 no key, -1 no expiry, else the ms left.
fn ttl_ms(ctx: &mut Ctx, key: &[u8]) -> Result<i64, i64> {
  let now = ctx.now;
  match ctx.db().get(key, now) {
    None => Err(-2),
    Some(Entry { expires: None, .. }) => Err(-1),
    Some(Entry {
      expires: Some(t), ..
    }) => Ok(t.saturating_sub(now) as i64),
  }
}

fn ttl(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  match ttl_ms(ctx, &a[1]) {
    Ok(ms) => int((ms + 500) / 1000),
    Err(n) => int(n),
  }
}

fn pttl(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  match ttl_ms(ctx, &a[1]) {
    Ok(ms) | Err(ms) => int(ms),
  }
}

fn expiretime_generic(ctx: &mut Ctx, key: &[u8], div: u64) -> Reply {
  let now = ctx.now;
  match ctx.db().get(key, now) {
    None => int(-2),
    Some(Entry { expires: None, .. }) => int(-1),
    Some(Entry {
      expires: Some(t), ..
    }) => int((*t / div) as i64),
  }
}

fn expiretime(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  expiretime_generic(ctx, &a[1], 1000)
}

fn pexpiretime(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  expiretime_generic(ctx, &a[1], 1)
}

fn persist(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let now = ctx.now;
  match ctx.db().get(&a[1], now) {
    Some(Entry {
      expires: Some(_), ..
    }) => {
      ctx.db().set_expires(&a[1], None);
      ctx.touch(&a[1]);
      int(1)
    }
    _ => int(0),
  }
}

fn type_(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let now = ctx.now;
  let t = ctx
    .db()
    .get(&a[1], now)
    .map_or("none", |e| e.value.type_name());
  Reply::Status(Bytes::from_static(t.as_bytes()))
}

/// Redis' glob-style `stringmatchlen`: `*`, `?`, `[...]` (with `^` and
/// ranges) and `\` escapes.
pub fn glob(p: &[u8], s: &[u8]) -> bool {
  let (mut pi, mut si) = (0usize, 0usize);
  let (mut star, mut mark) = (usize::MAX, 0usize);
  while si < s.len() {
    if pi < p.len() {
      match p[pi] {
        b'*' => {
          star = pi;
          mark = si;
          pi += 1;
          continue;
        }
        b'?' => {
          pi += 1;
          si += 1;
          continue;
        }
        b'[' => {
          if let Some((matched, next)) = class(p, pi, s[si]) {
            if matched {
              pi = next;
              si += 1;
              continue;
            }
          } else if s[si] == b'[' {
            pi += 1;
            si += 1;
            continue;
          }
        }
        b'\\' if pi + 1 < p.len() => {
          if p[pi + 1] == s[si] {
            pi += 2;
            si += 1;
            continue;
          }
        }
        c => {
          if c == s[si] {
            pi += 1;
            si += 1;
            continue;
          }
        }
      }
    }
    if star != usize::MAX {
      pi = star + 1;
      mark += 1;
      si = mark;
      continue;
    }
    return false;
  }
  while pi < p.len() && p[pi] == b'*' {
    pi += 1;
  }
  pi == p.len()
}

/// A `[...]` class at `p[pi]`: whether `c` matches, and the index after `]`.
fn class(p: &[u8], pi: usize, c: u8) -> Option<(bool, usize)> {
  let mut i = pi + 1;
  let not = p.get(i) == Some(&b'^');
  if not {
    i += 1;
  }
  let mut matched = false;
  loop {
    match p.get(i) {
      None => return None,
      Some(b']') => break,
      Some(b'\\') if i + 1 < p.len() => {
        if p[i + 1] == c {
          matched = true;
        }
        i += 2;
      }
      Some(&lo) if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&h| h != b']') => {
        let hi = p[i + 2];
        let (lo, hi) = if lo > hi { (hi, lo) } else { (lo, hi) };
        if c >= lo && c <= hi {
          matched = true;
        }
        i += 3;
      }
      Some(&x) => {
        if x == c {
          matched = true;
        }
        i += 1;
      }
    }
  }
  Some((matched != not, i + 1))
}

fn scan(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let cursor: u64 = match std::str::from_utf8(&a[1]).ok().and_then(|s| s.parse().ok()) {
    Some(c) => c,
    None => return err("ERR invalid cursor"),
  };
  let (mut pattern, mut count, mut kind): (Option<Bytes>, usize, Option<String>) = (None, 10, None);
  let mut i = 2;
  while i < a.len() {
    let Some(v) = a.get(i + 1) else {
      return err(SYNTAX);
    };
    match lower(&a[i]).as_str() {
      "match" => pattern = Some(v.clone()),
      "count" => match parse_int(v) {
        Some(n) if n >= 1 => count = n as usize,
        Some(_) => return err(SYNTAX),
        None => return err(NOT_INT),
      },
      "type" => kind = Some(lower(v)),
      _ => return err(SYNTAX),
    }
    i += 2;
  }
  let now = ctx.now;
  let db = ctx.db();
  let after = if cursor == 0 {
    None
  } else {
    match db.cursor(cursor) {
      Some(k) => Some(k.clone()),
      // a cursor this store never gave out: nothing more
      None => return Reply::Array(vec![bulk("0"), Reply::Array(Vec::new())]),
    }
  };
  let (page, next) = db.scan_page(after.as_deref(), count, now);
  let keys = page
    .into_iter()
    .filter(|(k, t)| {
      pattern.as_ref().is_none_or(|p| glob(p, k)) && kind.as_deref().is_none_or(|want| want == *t)
    })
    .map(|(k, _)| bulk(k))
    .collect();
  let next = match next {
    Some(k) => db.save_cursor(k),
    None => 0,
  };
  Reply::Array(vec![bulk(next.to_string()), Reply::Array(keys)])
}

fn keys(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let now = ctx.now;
  let p = &a[1];
  Reply::Array(
    ctx
      .db()
      .live_keys(now)
      .filter(|(k, _)| glob(p, k))
      .map(|(k, _)| bulk_of(k))
      .collect(),
  )
}

fn randomkey(ctx: &mut Ctx, _: &[Bytes]) -> Reply {
  let now = ctx.now;
  let keys: Vec<Key> = ctx.db().live_keys(now).map(|(k, _)| k.clone()).collect();
  if keys.is_empty() {
    return Reply::Nil;
  }
  bulk(keys[rand::random_range(0..keys.len())].clone())
}

fn rename_generic(ctx: &mut Ctx, a: &[Bytes], nx: bool) -> Reply {
  let now = ctx.now;
  let Some(e) = ctx.db().get(&a[1], now).cloned() else {
    return err("ERR no such key");
  };
  if nx && ctx.db().contains(&a[2], now) {
    return int(0);
  }
  ctx.db().remove(&a[1]);
  ctx.db().insert(a[2].to_vec(), e);
  ctx.touch(&a[1]);
  ctx.touch(&a[2]);
  if nx {
    int(1)
  } else {
    ok()
  }
}

fn rename(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  rename_generic(ctx, a, false)
}

fn renamenx(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  rename_generic(ctx, a, true)
}

// ---- hashes ---------------------------------------------------------------------

fn hget(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  match tri!(get_hash(ctx, &a[1])).and_then(|h| h.get(&a[2][..])) {
    Some(v) => bulk_of(v),
    None => Reply::Nil,
  }
}

fn hset_pairs(ctx: &mut Ctx, a: &[Bytes]) -> Result<usize, Reply> {
  if !a.len().is_multiple_of(2) {
    return Err(wrong_args(&lower(&a[0])));
  }
  let h = hash_mut(ctx, &a[1])?;
  let mut added = 0;
  for fv in a[2..].chunks(2) {
    if h.insert(fv[0].to_vec(), fv[1].to_vec()).is_none() {
      added += 1;
    }
  }
  Ok(added)
}

fn hset(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  int(tri!(hset_pairs(ctx, a)))
}

fn hmset(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  tri!(hset_pairs(ctx, a));
  ok()
}

fn hsetnx(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  if tri!(get_hash(ctx, &a[1])).is_some_and(|h| h.contains_key(&a[2][..])) {
    return int(0);
  }
  tri!(hash_mut(ctx, &a[1])).insert(a[2].to_vec(), a[3].to_vec());
  int(1)
}

fn hmget(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let h = tri!(get_hash(ctx, &a[1]));
  Reply::Array(
    a[2..]
      .iter()
      .map(|f| match h.and_then(|h| h.get(&f[..])) {
        Some(v) => bulk_of(v),
        None => Reply::Nil,
      })
      .collect(),
  )
}

fn hgetall(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let pairs = tri!(get_hash(ctx, &a[1]))
    .map(|h| {
      h.iter()
        .map(|(k, v)| (bulk_of(k), bulk_of(v)))
        .collect::<Vec<_>>()
    })
    .unwrap_or_default();
  ctx.map(pairs)
}

fn hdel(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  if tri!(get_hash(ctx, &a[1])).is_none() {
    return int(0);
  }
  let h = tri!(hash_mut(ctx, &a[1]));
  let n = a[2..]
    .iter()
    .filter(|f| h.shift_remove(&f[..]).is_some())
    .count();
  ctx.db().drop_if_empty(&a[1]);
  int(n)
}

fn hlen(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  int(tri!(get_hash(ctx, &a[1])).map_or(0, |h| h.len()))
}

fn hexists(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  int(tri!(get_hash(ctx, &a[1])).is_some_and(|h| h.contains_key(&a[2][..])) as i64)
}

fn hkeys(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let h = tri!(get_hash(ctx, &a[1]));
  Reply::Array(h.map_or(Vec::new(), |h| h.keys().map(|k| bulk_of(k)).collect()))
}

fn hvals(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let h = tri!(get_hash(ctx, &a[1]));
  Reply::Array(h.map_or(Vec::new(), |h| h.values().map(|v| bulk_of(v)).collect()))
}

fn hstrlen(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  int(
    tri!(get_hash(ctx, &a[1]))
      .and_then(|h| h.get(&a[2][..]))
      .map_or(0, |v| v.len()),
  )
}

fn hincrby(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let by = tri!(int_arg(&a[3]));
  let cur = match tri!(get_hash(ctx, &a[1])).and_then(|h| h.get(&a[2][..])) {
    None => 0,
    Some(v) => match parse_int(v) {
      Some(n) => n,
      None => return err("ERR hash value is not an integer"),
    },
  };
  let Some(n) = cur.checked_add(by) else {
    return err("ERR increment or decrement would overflow");
  };
  tri!(hash_mut(ctx, &a[1])).insert(a[2].to_vec(), n.to_string().into_bytes());
  int(n)
}

fn hincrbyfloat(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let Some(by) = parse_float(&a[3]) else {
    return err(NOT_FLOAT);
  };
  let cur = match tri!(get_hash(ctx, &a[1])).and_then(|h| h.get(&a[2][..])) {
    None => 0.0,
    Some(v) => match parse_float(v) {
      Some(n) => n,
      None => return err("ERR hash value is not a float"),
    },
  };
  let n = cur + by;
  if !n.is_finite() {
    return err("ERR increment would produce NaN or Infinity");
  }
  let text = human(n).into_bytes();
  tri!(hash_mut(ctx, &a[1])).insert(a[2].to_vec(), text.clone());
  bulk(text)
}

// ---- sets -------------------------------------------------------------------------

fn sadd(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let s = tri!(set_mut(ctx, &a[1]));
  int(a[2..].iter().filter(|m| s.insert(m.to_vec())).count())
}

fn srem(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  if tri!(get_set(ctx, &a[1])).is_none() {
    return int(0);
  }
  let s = tri!(set_mut(ctx, &a[1]));
  let n = a[2..].iter().filter(|m| s.remove(&m[..])).count();
  ctx.db().drop_if_empty(&a[1]);
  int(n)
}

fn smembers(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let Some(s) = tri!(get_set(ctx, &a[1])) else {
    return Reply::Array(Vec::new());
  };
  // A set of integers is an intset on Redis, and comes back sorted; any other
  // set comes back in an order Redis does not define.
  let ints: Option<Vec<i64>> = s.iter().map(|m| parse_int(m)).collect();
  match ints {
    Some(mut v) => {
      v.sort_unstable();
      Reply::Array(v.into_iter().map(|n| bulk(n.to_string())).collect())
    }
    None => Reply::Array(s.iter().map(|m| bulk_of(m)).collect()),
  }
}

fn scard(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  int(tri!(get_set(ctx, &a[1])).map_or(0, |s| s.len()))
}

fn sismember(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  int(tri!(get_set(ctx, &a[1])).is_some_and(|s| s.contains(&a[2][..])) as i64)
}

fn smismember(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let s = tri!(get_set(ctx, &a[1]));
  Reply::Array(
    a[2..]
      .iter()
      .map(|m| int(s.is_some_and(|s| s.contains(&m[..])) as i64))
      .collect(),
  )
}

// ---- sorted sets ------------------------------------------------------------------

fn zadd(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr_mode) =
    (false, false, false, false, false, false);
  let mut i = 2;
  while i < a.len() {
    match lower(&a[i]).as_str() {
      "nx" => nx = true,
      "xx" => xx = true,
      "gt" => gt = true,
      "lt" => lt = true,
      "ch" => ch = true,
      "incr" => incr_mode = true,
      _ => break,
    }
    i += 1;
  }
  let rest = &a[i..];
  if rest.is_empty() || !rest.len().is_multiple_of(2) {
    return err(SYNTAX);
  }
  if nx && xx {
    return err("ERR XX and NX options at the same time are not compatible");
  }
  if ((gt || lt) && nx) || (gt && lt) {
    return err("ERR GT, LT, and/or NX options at the same time are not compatible");
  }
  if incr_mode && rest.len() > 2 {
    return err("ERR INCR option supports a single increment-element pair");
  }
  let mut pairs = Vec::with_capacity(rest.len() / 2);
  for sm in rest.chunks(2) {
    match parse_float(&sm[0]) {
      Some(s) => pairs.push((s, sm[1].to_vec())),
      None => return err(NOT_FLOAT),
    }
  }
  if tri!(get_zset(ctx, &a[1])).is_none() && xx {
    return if incr_mode { Reply::Nil } else { int(0) };
  }
  let z = tri!(zset_mut(ctx, &a[1]));
  let (mut added, mut changed) = (0, 0);
  let mut last: Option<f64> = None;
  for (score, member) in pairs {
    let cur = z.scores.get(&member).copied();
    match cur {
      None => {
        if xx {
          continue;
        }
        if score.is_nan() {
          return err("ERR resulting score is not a number (NaN)");
        }
        z.insert(member, score);
        added += 1;
        last = Some(score);
      }
      Some(c) => {
        if nx {
          continue;
        }
        let new = if incr_mode { c + score } else { score };
        if new.is_nan() {
          return err("ERR resulting score is not a number (NaN)");
        }
        if (gt && new <= c) || (lt && new >= c) {
          continue;
        }
        if new != c {
          z.insert(member, new);
          changed += 1;
        }
        last = Some(new);
      }
    }
  }
  ctx.db().drop_if_empty(&a[1]);
  if incr_mode {
    return match last {
      Some(v) => ctx.double(v),
      None => Reply::Nil,
    };
  }
  int(if ch { added + changed } else { added })
}

fn zincrby(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let args: Vec<Bytes> = vec![
    a[0].clone(),
    a[1].clone(),
    Bytes::from_static(b"INCR"),
    a[2].clone(),
    a[3].clone(),
  ];
  zadd(ctx, &args)
}

fn zrem(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  if tri!(get_zset(ctx, &a[1])).is_none() {
    return int(0);
  }
  let z = tri!(zset_mut(ctx, &a[1]));
  let n = a[2..].iter().filter(|m| z.remove(m)).count();
  ctx.db().drop_if_empty(&a[1]);
  int(n)
}

fn zcard(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  int(tri!(get_zset(ctx, &a[1])).map_or(0, |z| z.len()))
}

fn zscore(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  match tri!(get_zset(ctx, &a[1])).and_then(|z| z.scores.get(&a[2][..]).copied()) {
    Some(s) => ctx.double(s),
    None => Reply::Nil,
  }
}

/// A score bound: `(1.5` exclusive, `-inf`, `+inf`.
#[derive(Clone, Copy)]
struct Bound {
  v: f64,
  excl: bool,
}

fn score_bound(b: &[u8]) -> Option<Bound> {
  let (excl, t) = match b.first() {
    Some(b'(') => (true, &b[1..]),
    _ => (false, b),
  };
  let v = parse_float(t)?;
  Some(Bound { v, excl })
}

fn above_min(s: f64, min: Bound) -> bool {
  if min.excl {
    s > min.v
  } else {
    s >= min.v
  }
}

fn below_max(s: f64, max: Bound) -> bool {
  if max.excl {
    s < max.v
  } else {
    s <= max.v
  }
}

fn zcount(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let (Some(min), Some(max)) = (score_bound(&a[2]), score_bound(&a[3])) else {
    return err("ERR min or max is not a float");
  };
  let z = tri!(get_zset(ctx, &a[1]));
  int(z.map_or(0, |z| {
    z.order
      .iter()
      .filter(|(s, _)| above_min(s.0, min) && below_max(s.0, max))
      .count()
  }))
}

/// Members (with scores) of a ZRANGE in any of its forms.
#[allow(clippy::too_many_arguments)]
fn zrange_generic(
  ctx: &mut Ctx,
  key: &[u8],
  start: &[u8],
  stop: &[u8],
  by_score: bool,
  rev: bool,
  limit: Option<(i64, i64)>,
  withscores: bool,
) -> Reply {
  let items: Vec<(f64, Key)> = if by_score {
    // REV takes max first
    let (lo, hi) = if rev { (stop, start) } else { (start, stop) };
    let (Some(min), Some(max)) = (score_bound(lo), score_bound(hi)) else {
      return err("ERR min or max is not a float");
    };
    let z = tri!(get_zset(ctx, key));
    let mut v: Vec<(f64, Key)> = z.map_or(Vec::new(), |z| {
      z.order
        .iter()
        .filter(|(s, _)| above_min(s.0, min) && below_max(s.0, max))
        .map(|(s, m)| (s.0, m.clone()))
        .collect()
    });
    if rev {
      v.reverse();
    }
    match limit {
      Some((off, count)) => {
        if off < 0 {
          Vec::new()
        } else {
          let it = v.into_iter().skip(off as usize);
          if count < 0 {
            it.collect()
          } else {
            it.take(count as usize).collect()
          }
        }
      }
      None => v,
    }
  } else {
    if limit.is_some() {
      return err(
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
      );
    }
    let (s, e) = (tri!(int_arg(start)), tri!(int_arg(stop)));
    let z = tri!(get_zset(ctx, key));
    let Some(z) = z else {
      return Reply::Array(Vec::new());
    };
    let Some((s, e)) = range(s, e, z.len()) else {
      return Reply::Array(Vec::new());
    };
    let n = e - s + 1;
    if rev {
      z.order
        .iter()
        .rev()
        .skip(s)
        .take(n)
        .map(|(sc, m)| (sc.0, m.clone()))
        .collect()
    } else {
      z.order
        .iter()
        .skip(s)
        .take(n)
        .map(|(sc, m)| (sc.0, m.clone()))
        .collect()
    }
  };
  let mut out = Vec::with_capacity(items.len() * if withscores { 2 } else { 1 });
  for (s, m) in items {
    if withscores && ctx.resp3 {
      out.push(Reply::Array(vec![bulk(m), Reply::Double(s)]));
    } else {
      out.push(bulk(m));
      if withscores {
        out.push(ctx.double(s));
      }
    }
  }
  Reply::Array(out)
}

/// LIMIT (offset, count), WITHSCORES, BYSCORE, REV.
type RangeOpts = (Option<(i64, i64)>, bool, bool, bool);

/// WITHSCORES and LIMIT after position `from`.
fn range_opts(a: &[Bytes], from: usize, allow: &[&str]) -> Result<RangeOpts, Reply> {
  let (mut limit, mut ws, mut by_score, mut rev) = (None, false, false, false);
  let mut i = from;
  while i < a.len() {
    let o = lower(&a[i]);
    if !allow.contains(&o.as_str()) {
      return Err(err(SYNTAX));
    }
    match o.as_str() {
      "withscores" => ws = true,
      "byscore" => by_score = true,
      "rev" => rev = true,
      "limit" => {
        if i + 2 >= a.len() {
          return Err(err(SYNTAX));
        }
        limit = Some((int_arg(&a[i + 1])?, int_arg(&a[i + 2])?));
        i += 2;
      }
      _ => return Err(err(SYNTAX)),
    }
    i += 1;
  }
  Ok((limit, ws, by_score, rev))
}

fn zrange(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let (limit, ws, by_score, rev) =
    tri!(range_opts(a, 4, &["withscores", "byscore", "rev", "limit"]));
  zrange_generic(ctx, &a[1], &a[2], &a[3], by_score, rev, limit, ws)
}

fn zrevrange(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let (_, ws, _, _) = tri!(range_opts(a, 4, &["withscores"]));
  zrange_generic(ctx, &a[1], &a[2], &a[3], false, true, None, ws)
}

fn zrangebyscore(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let (limit, ws, _, _) = tri!(range_opts(a, 4, &["withscores", "limit"]));
  zrange_generic(ctx, &a[1], &a[2], &a[3], true, false, limit, ws)
}

fn zrevrangebyscore(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let (limit, ws, _, _) = tri!(range_opts(a, 4, &["withscores", "limit"]));
  zrange_generic(ctx, &a[1], &a[2], &a[3], true, true, limit, ws)
}

fn zremrangebyscore(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let (Some(min), Some(max)) = (score_bound(&a[2]), score_bound(&a[3])) else {
    return err("ERR min or max is not a float");
  };
  if tri!(get_zset(ctx, &a[1])).is_none() {
    return int(0);
  }
  let z = tri!(zset_mut(ctx, &a[1]));
  let gone: Vec<Key> = z
    .order
    .iter()
    .filter(|(s, _)| above_min(s.0, min) && below_max(s.0, max))
    .map(|(_, m)| m.clone())
    .collect();
  for m in &gone {
    z.remove(m);
  }
  ctx.db().drop_if_empty(&a[1]);
  int(gone.len())
}

fn zremrangebyrank(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let (s, e) = (tri!(int_arg(&a[2])), tri!(int_arg(&a[3])));
  let Some(len) = tri!(get_zset(ctx, &a[1])).map(|z| z.len()) else {
    return int(0);
  };
  let Some((s, e)) = range(s, e, len) else {
    return int(0);
  };
  let z = tri!(zset_mut(ctx, &a[1]));
  let gone: Vec<Key> = z
    .order
    .iter()
    .skip(s)
    .take(e - s + 1)
    .map(|(_, m)| m.clone())
    .collect();
  for m in &gone {
    z.remove(m);
  }
  ctx.db().drop_if_empty(&a[1]);
  int(gone.len())
}

// ---- lists ------------------------------------------------------------------------

fn push(ctx: &mut Ctx, a: &[Bytes], left: bool) -> Reply {
  let l = tri!(list_mut(ctx, &a[1]));
  for v in &a[2..] {
    if left {
      l.push_front(v.to_vec());
    } else {
      l.push_back(v.to_vec());
    }
  }
  int(l.len())
}

fn lpush(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  push(ctx, a, true)
}

fn rpush(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  push(ctx, a, false)
}

fn pop(ctx: &mut Ctx, a: &[Bytes], left: bool) -> Reply {
  let count = match a.get(2) {
    None => None,
    Some(c) => match parse_int(c) {
      Some(n) if n >= 0 => Some(n as usize),
      _ => return err("ERR value is out of range, must be positive"),
    },
  };
  if a.len() > 3 {
    return wrong_args(&lower(&a[0]));
  }
  if tri!(get_list(ctx, &a[1])).is_none() {
    return Reply::Nil;
  }
  let l = tri!(list_mut(ctx, &a[1]));
  let mut out = Vec::new();
  for _ in 0..count.unwrap_or(1) {
    match if left { l.pop_front() } else { l.pop_back() } {
      Some(v) => out.push(bulk(v)),
      None => break,
    }
  }
  ctx.db().drop_if_empty(&a[1]);
  match count {
    Some(_) => Reply::Array(out),
    None => out.pop().unwrap_or(Reply::Nil),
  }
}

fn lpop(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  pop(ctx, a, true)
}

fn rpop(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  pop(ctx, a, false)
}

fn llen(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  int(tri!(get_list(ctx, &a[1])).map_or(0, |l| l.len()))
}

fn lrange(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let (s, e) = (tri!(int_arg(&a[2])), tri!(int_arg(&a[3])));
  let Some(l) = tri!(get_list(ctx, &a[1])) else {
    return Reply::Array(Vec::new());
  };
  match range(s, e, l.len()) {
    Some((s, e)) => Reply::Array(l.range(s..=e).map(|v| bulk_of(v)).collect()),
    None => Reply::Array(Vec::new()),
  }
}

fn lindex(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let i = tri!(int_arg(&a[2]));
  let Some(l) = tri!(get_list(ctx, &a[1])) else {
    return Reply::Nil;
  };
  let i = if i < 0 { l.len() as i64 + i } else { i };
  match (i >= 0).then(|| l.get(i as usize)).flatten() {
    Some(v) => bulk_of(v),
    None => Reply::Nil,
  }
}

fn ltrim(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let (s, e) = (tri!(int_arg(&a[2])), tri!(int_arg(&a[3])));
  let Some(len) = tri!(get_list(ctx, &a[1])).map(|l| l.len()) else {
    return ok();
  };
  let l = tri!(list_mut(ctx, &a[1]));
  match range(s, e, len) {
    Some((s, e)) => {
      l.truncate(e + 1);
      l.drain(..s);
    }
    None => l.clear(),
  }
  ctx.db().drop_if_empty(&a[1]);
  ok()
}

fn linsert(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let after = match lower(&a[2]).as_str() {
    "before" => false,
    "after" => true,
    _ => return err(SYNTAX),
  };
  if tri!(get_list(ctx, &a[1])).is_none() {
    return int(0);
  }
  let l = tri!(list_mut(ctx, &a[1]));
  match l.iter().position(|v| v[..] == a[3][..]) {
    Some(i) => {
      l.insert(if after { i + 1 } else { i }, a[4].to_vec());
      int(l.len())
    }
    None => int(-1),
  }
}

fn lset(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  if tri!(get_list(ctx, &a[1])).is_none() {
    return err("ERR no such key");
  }
  let i = tri!(int_arg(&a[2]));
  let l = tri!(list_mut(ctx, &a[1]));
  let i = if i < 0 { l.len() as i64 + i } else { i };
  match (i >= 0).then(|| l.get_mut(i as usize)).flatten() {
    Some(v) => {
      *v = a[3].to_vec();
      ok()
    }
    None => err("ERR index out of range"),
  }
}

fn lrem(ctx: &mut Ctx, a: &[Bytes]) -> Reply {
  let count = tri!(int_arg(&a[2]));
  if tri!(get_list(ctx, &a[1])).is_none() {
    return int(0);
  }
  let l = tri!(list_mut(ctx, &a[1]));
  // count < 0 removes from the tail: the same walk over the list reversed
  let from_tail = count < 0;
  let mut left = if count == 0 {
    usize::MAX
  } else {
    count.unsigned_abs() as usize
  };
  let before = l.len();
  if from_tail {
    l.make_contiguous().reverse();
  }
  l.retain(|v| {
    let gone = left > 0 && v[..] == a[3][..];
    left -= gone as usize;
    !gone
  });
  if from_tail {
    l.make_contiguous().reverse();
  }
  let removed = before - l.len();
  ctx.db().drop_if_empty(&a[1]);
  int(removed)
}

#[cfg(test)]
mod tests {
  use super::*;

  fn run_on(d: &mut Data, parts: &[&str]) -> Reply {
    let args: Vec<Bytes> = parts
      .iter()
      .map(|p| Bytes::copy_from_slice(p.as_bytes()))
      .collect();
    let mut ctx = Ctx::new(d, 0, false);
    let r = run(&mut ctx, &args);
    ctx.finish();
    r
  }

  fn b(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
  }

  #[test]
  fn strings_and_errors_as_redis() {
    let d = &mut Data::default();
    assert_eq!(run_on(d, &["SET", "k", "v", "NX"]), ok());
    assert_eq!(run_on(d, &["SET", "k", "w", "NX"]), Reply::Nil);
    assert_eq!(run_on(d, &["SET", "k", "w", "XX", "GET"]), b("v"));
    assert_eq!(run_on(d, &["SET", "k", "v", "XX", "NX"]), err(SYNTAX));
    assert_eq!(
      run_on(d, &["SET", "k", "v", "EX", "0"]),
      err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(run_on(d, &["INCR", "k"]), err(NOT_INT));
    assert_eq!(run_on(d, &["INCRBY", "n", "5"]), Reply::Int(5));
    assert_eq!(run_on(d, &["INCRBYFLOAT", "f", "0.1"]), b("0.1"));
    assert_eq!(run_on(d, &["INCRBYFLOAT", "f", "0.2"]), b("0.3"));
    assert_eq!(run_on(d, &["GET"]), wrong_args("get"));
    assert_eq!(
      run_on(d, &["NOSUCH", "a", "b"]),
      err("ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(run_on(d, &["HSET", "h", "a", "1"]), Reply::Int(1));
    assert_eq!(run_on(d, &["GET", "h"]), err(WRONGTYPE));
    assert_eq!(run_on(d, &["TYPE", "h"]), Reply::Status("hash".into()));
    assert_eq!(
      run_on(d, &["MGET", "k", "h", "x"]).clone(),
      Reply::Array(vec![b("w"), Reply::Nil, Reply::Nil])
    );
  }

  #[test]
  fn ttl_and_expire_flags() {
    let d = &mut Data::default();
    run_on(d, &["SET", "k", "v"]);
    assert_eq!(run_on(d, &["TTL", "k"]), Reply::Int(-1));
    assert_eq!(run_on(d, &["EXPIRE", "k", "100", "GT"]), Reply::Int(0));
    assert_eq!(run_on(d, &["EXPIRE", "k", "100", "LT"]), Reply::Int(1));
    assert_eq!(run_on(d, &["TTL", "k"]), Reply::Int(100));
    assert_eq!(run_on(d, &["EXPIRE", "k", "50", "GT"]), Reply::Int(0));
    assert_eq!(run_on(d, &["EXPIRE", "k", "10", "NX"]), Reply::Int(0));
    assert_eq!(run_on(d, &["PERSIST", "k"]), Reply::Int(1));
    assert_eq!(run_on(d, &["PEXPIRE", "k", "-1"]), Reply::Int(1));
    assert_eq!(run_on(d, &["EXISTS", "k"]), Reply::Int(0));
    assert_eq!(run_on(d, &["TTL", "k"]), Reply::Int(-2));
    run_on(d, &["SET", "k", "v", "PX", "100000"]);
    run_on(d, &["SET", "k", "w", "KEEPTTL"]);
    assert!(matches!(run_on(d, &["PTTL", "k"]), Reply::Int(n) if n > 99_000));
  }

  #[test]
  fn sorted_sets_for_the_scripts() {
    let d = &mut Data::default();
    assert_eq!(
      run_on(d, &["ZADD", "z", "1.5", "a", "0.1", "b"]),
      Reply::Int(2)
    );
    assert_eq!(
      run_on(d, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
      Reply::Array(vec![b("b"), b("0.10000000000000001"), b("a"), b("1.5")])
    );
    assert_eq!(run_on(d, &["ZADD", "z", "GT", "1", "a"]), Reply::Int(0));
    assert_eq!(run_on(d, &["ZSCORE", "z", "a"]), b("1.5"));
    assert_eq!(
      run_on(d, &["ZADD", "z", "GT", "NX", "1", "a"]),
      err("ERR GT, LT, and/or NX options at the same time are not compatible")
    );
    assert_eq!(
      run_on(d, &["ZREMRANGEBYSCORE", "z", "-inf", "(1.5"]),
      Reply::Int(1)
    );
    assert_eq!(run_on(d, &["ZCARD", "z"]), Reply::Int(1));
    assert_eq!(
      run_on(d, &["ZRANGE", "z", "-1", "-1"]),
      Reply::Array(vec![b("a")])
    );
    assert_eq!(run_on(d, &["ZREM", "z", "a"]), Reply::Int(1));
    assert_eq!(run_on(d, &["EXISTS", "z"]), Reply::Int(0));
  }

  #[test]
  fn scan_visits_every_key_once() {
    let d = &mut Data::default();
    for i in 0..57 {
      run_on(d, &["SET", &format!("k{i}"), "v"]);
    }
    run_on(d, &["HSET", "kh", "f", "v"]);
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    loop {
      let Reply::Array(r) = run_on(
        d,
        &[
          "SCAN", &cursor, "MATCH", "k*", "COUNT", "7", "TYPE", "string",
        ],
      ) else {
        panic!()
      };
      let (Reply::Bulk(c), Reply::Array(keys)) = (&r[0], &r[1]) else {
        panic!()
      };
      seen.extend(keys.iter().cloned());
      cursor = String::from_utf8(c.to_vec()).unwrap();
      if cursor == "0" {
        break;
      }
    }
    assert_eq!(seen.len(), 57);
  }

  #[test]
  fn glob_patterns() {
    assert!(glob(b"a*", b"abc"));
    assert!(glob(b"*", b""));
    assert!(glob(b"h?llo", b"hello"));
    assert!(glob(b"h[ae]llo", b"hallo"));
    assert!(!glob(b"h[^e]llo", b"hello"));
    assert!(glob(b"h[a-c]llo", b"hbllo"));
    assert!(glob(b"t\\*", b"t*"));
    assert!(!glob(b"t\\*", b"tx"));
    assert!(glob(b"tenant7:rl:{x}*", b"tenant7:rl:{x}:g:5"));
  }
}
