//! The command table: every public method of `RedisClient` is an [`Op`] whose
//! arguments are checked and encoded here, with the key prefix applied, before
//! anything reaches a socket. The reply [`Shape`] tells the bridge how to turn
//! the server's answer into a JavaScript value.
//!
//! ```
//! use atlas_redis::commands::{encode, Arg, Op, Shape};
//! let (cmd, shape) = encode(Op::Get, &[Arg::Str(b"user:1")], b"app:").unwrap();
//! assert_eq!(shape, Shape::Str);
//! assert_eq!(cmd.get_packed_command(), b"*2\r\n$3\r\nGET\r\n$10\r\napp:user:1\r\n");
//!
//! let err = encode(Op::Set, &[Arg::Str(b"k"), Arg::Number(5.0), Arg::Undefined], b"")
//!   .unwrap_err();
//! assert_eq!(err.message, "set(): value must be a string or Buffer, got number");
//! ```

use crate::error::{Error, Result};
use redis::Cmd;
use std::borrow::Cow;

pub mod table;

// The encoders below append arguments to a redis-rs `Cmd`; redis-rs packs it
// (RESP) when the batch is written.
fn push_array_header(_out: &mut Cmd, _parts: usize) {}

fn push_bulk(out: &mut Cmd, b: &[u8]) {
  out.arg(b);
}

fn push_bulk_int(out: &mut Cmd, n: i64) {
  out.arg(n);
}

/// `prefix` + `key` as one argument, written without an intermediate copy.
struct Prefixed<'a>(&'a [u8], &'a [u8]);

impl redis::ToRedisArgs for Prefixed<'_> {
  fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
    use std::io::Write;
    let mut w = out.writer_for_next_arg();
    let _ = w.write_all(self.0);
    let _ = w.write_all(self.1);
  }
}

impl redis::ToSingleRedisArg for Prefixed<'_> {}

fn push_bulk_prefixed(out: &mut Cmd, prefix: &[u8], key: &[u8]) {
  if prefix.is_empty() {
    out.arg(key);
  } else {
    out.arg(Prefixed(prefix, key));
  }
}

/// A JavaScript argument, as the bridge read it. Strings are UTF-8 bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg<'a> {
  Undefined,
  Null,
  Bool(bool),
  Number(f64),
  Str(&'a [u8]),
  Buf(&'a [u8]),
  Array(Vec<Arg<'a>>),
  /// A plain object's own enumerable string keys and their values.
  Object(Vec<(&'a [u8], Arg<'a>)>),
  /// Anything else (bigint, symbol, function, …): its `typeof`.
  Other(&'static str),
}

impl Arg<'_> {
  /// What a message says the caller passed.
  pub fn describe(&self) -> String {
    match self {
      Arg::Undefined => "undefined".into(),
      Arg::Null => "null".into(),
      Arg::Bool(_) => "boolean".into(),
      Arg::Number(n) if n.is_nan() => "NaN".into(),
      Arg::Number(n) if n.is_infinite() => "Infinity".into(),
      Arg::Number(n) => format!("number {n}"),
      Arg::Str([]) => "an empty string".into(),
      Arg::Str(_) => "string".into(),
      Arg::Buf([]) => "an empty Buffer".into(),
      Arg::Buf(_) => "Buffer".into(),
      Arg::Array(v) if v.is_empty() => "an empty array".into(),
      Arg::Array(_) => "array".into(),
      Arg::Object(_) => "object".into(),
      Arg::Other(t) => (*t).into(),
    }
  }

  fn type_name(&self) -> String {
    match self {
      Arg::Number(_) => "number".into(),
      other => other.describe(),
    }
  }
}

/// How the bridge converts a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Shape {
  /// Bulk string → `string`, nil → `null`.
  Str,
  /// Bulk string → `Buffer`, nil → `null`.
  Buf,
  /// Anything → `undefined`.
  Void,
  /// `OK`/1 → `true`, nil/0 → `false`.
  Bool,
  /// Integer → `number`.
  Int,
  /// Array of bulk strings → `(string | null)[]`.
  StrArray,
  /// Field/value pairs → `Record<string, string>`.
  Map,
  /// `[cursor, keys]` → `[string, string[]]` with the key prefix removed.
  Scan,
  /// Generic conversion for `command()`.
  Raw,
  /// `multi()`/`pipeline()` (`Op::Transaction`): the entry spans `replies`
  /// commands on the wire and gets all their replies, as one array; with
  /// `atomic`, they are MULTI, the queued commands and EXEC. The shapes of the
  /// commands inside are kept by the bridge.
  Group { replies: u32, atomic: bool },
}

impl Shape {
  /// How many replies on the wire belong to one entry of this shape.
  pub fn replies(self) -> usize {
    match self {
      Shape::Group { replies, .. } => replies as usize,
      _ => 1,
    }
  }
}

macro_rules! ops {
  ($($name:ident = $js:literal),* $(,)?) => {
    /// One public `RedisClient` method.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u8)]
    pub enum Op { $($name),* }

    impl Op {
      /// Every op, in code order; the bridge exports these names to TypeScript
      /// so the two sides can never disagree on numbering.
      pub const ALL: &'static [Op] = &[$(Op::$name),*];

      /// The method name used in messages (`get()`).
      pub fn method(self) -> &'static str {
        match self { $(Op::$name => $js),* }
      }

      pub fn from_code(code: u32) -> Option<Op> {
        Op::ALL.get(code as usize).copied()
      }
    }
  };
}

ops! {
  Get = "get",
  GetBuffer = "getBuffer",
  Set = "set",
  SetWith = "set",
  Del = "del",
  Exists = "exists",
  Expire = "expire",
  PExpire = "pexpire",
  Ttl = "ttl",
  PTtl = "pttl",
  Incr = "incr",
  IncrBy = "incrBy",
  MGet = "mget",
  MSet = "mset",
  HGet = "hget",
  HSet = "hset",
  HGetAll = "hgetall",
  HDel = "hdel",
  SAdd = "sadd",
  SRem = "srem",
  SMembers = "smembers",
  GetDel = "getDel",
  GetEx = "getEx",
  Scan = "scan",
  Command = "command",
  Ping = "ping",
  Script = "script",
  // Internal ops of `multi()`/`pipeline()`, `watch()` and the script API:
  // `command()` refuses MULTI, EXEC, WATCH and (with a prefix) EVAL; these
  // send them with the key prefix applied where they name keys.
  Transaction = "exec",
  Watch = "watch",
  Unwatch = "unwatch",
  Eval = "eval",
}

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

struct Ctx<'p> {
  method: &'static str,
  prefix: &'p [u8],
}

impl Ctx<'_> {
  fn err(&self, name: &str, what: &str, got: &Arg) -> Error {
    Error::invalid(format!(
      "{}(): {name} must be {what}, got {}",
      self.method,
      got.describe()
    ))
  }

  fn key<'a>(&self, name: &str, a: &'a Arg) -> Result<&'a [u8]> {
    match a {
      Arg::Str(s) | Arg::Buf(s) if !s.is_empty() => Ok(s),
      other => Err(self.err(name, "a non-empty string or Buffer", other)),
    }
  }

  fn value<'a>(&self, name: &str, a: &'a Arg) -> Result<&'a [u8]> {
    match a {
      Arg::Str(s) | Arg::Buf(s) => Ok(s),
      other => Err(Error::invalid(format!(
        "{}(): {name} must be a string or Buffer, got {}",
        self.method,
        other.type_name()
      ))),
    }
  }

  /// A positive integer (TTLs, timeouts).
  fn positive(&self, name: &str, a: &Arg) -> Result<i64> {
    match a {
      Arg::Number(n) if n.is_finite() && n.fract() == 0.0 && *n > 0.0 && *n <= MAX_SAFE => {
        Ok(*n as i64)
      }
      other => Err(self.err(name, "a positive integer", other)),
    }
  }

  fn integer(&self, name: &str, a: &Arg) -> Result<i64> {
    match a {
      Arg::Number(n) if n.is_finite() && n.fract() == 0.0 && n.abs() <= MAX_SAFE => Ok(*n as i64),
      other => Err(self.err(name, "an integer", other)),
    }
  }

  fn flag(&self, name: &str, a: &Arg) -> Result<bool> {
    match a {
      Arg::Undefined => Ok(false),
      Arg::Bool(b) => Ok(*b),
      other => Err(self.err(name, "a boolean", other)),
    }
  }

  fn optional_positive(&self, name: &str, a: &Arg) -> Result<Option<i64>> {
    match a {
      Arg::Undefined => Ok(None),
      other => self.positive(name, other).map(Some),
    }
  }

  fn list<'b, 'a>(&self, name: &str, a: &'b Arg<'a>) -> Result<&'b [Arg<'a>]> {
    match a {
      Arg::Array(items) if !items.is_empty() => Ok(items),
      other => Err(self.err(name, "at least one item", other)),
    }
  }

  /// Non-empty keys, borrowed; the element name is only formatted on error.
  fn keys<'b>(&self, name: &str, a: &'b Arg) -> Result<Vec<&'b [u8]>> {
    let items = self.list(name, a)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, k) in items.iter().enumerate() {
      match k {
        Arg::Str(s) | Arg::Buf(s) if !s.is_empty() => out.push(*s),
        other => {
          return Err(self.err(
            &format!("{name}[{i}]"),
            "a non-empty string or Buffer",
            other,
          ))
        }
      }
    }
    Ok(out)
  }

  /// Strings or Buffers (members, fields), borrowed.
  fn values<'b>(&self, name: &str, a: &'b Arg) -> Result<Vec<&'b [u8]>> {
    let items = self.list(name, a)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
      match v {
        Arg::Str(s) | Arg::Buf(s) => out.push(*s),
        other => return Err(self.value(&format!("{name}[{i}]"), other).unwrap_err()),
      }
    }
    Ok(out)
  }

  /// `*<parts>`, the command name, then the (prefixed) key: how most commands begin.
  fn start(&self, out: &mut Cmd, parts: usize, name: &[u8], key: &[u8]) {
    push_array_header(out, parts);
    push_bulk(out, name);
    self.put_key(out, key);
  }

  fn put_key(&self, out: &mut Cmd, key: &[u8]) {
    push_bulk_prefixed(out, self.prefix, key);
  }
}

/// Field/value pairs given as an object or as a flat `[f1, v1, f2, v2]` array.
fn pairs<'a>(c: &Ctx, name: &str, a: &'a Arg<'a>) -> Result<Vec<(&'a [u8], &'a [u8])>> {
  let text = |a: &'a Arg<'a>, what: &dyn Fn() -> String| -> Result<&'a [u8]> {
    match a {
      Arg::Str(s) | Arg::Buf(s) => Ok(s),
      other => Err(c.value(&what(), other).unwrap_err()),
    }
  };
  let out: Vec<_> = match a {
    Arg::Object(entries) => entries
      .iter()
      .map(|(k, v)| {
        let v = text(v, &|| format!("{name}.{}", String::from_utf8_lossy(k)))?;
        Ok((*k, v))
      })
      .collect::<Result<_>>()?,
    Arg::Array(items) if items.len() % 2 == 0 => items
      .chunks(2)
      .enumerate()
      .map(|(i, kv)| {
        let k = text(&kv[0], &|| format!("{name}[{}]", 2 * i))?;
        let v = text(&kv[1], &|| format!("{name}[{}]", 2 * i + 1))?;
        Ok((k, v))
      })
      .collect::<Result<_>>()?,
    other => return Err(c.err(name, "an object or a flat [key, value, …] array", other)),
  };
  if out.is_empty() {
    return Err(Error::invalid(format!(
      "{}(): {name} must hold at least one entry",
      c.method
    )));
  }
  Ok(out)
}

fn check_arity(op: Op, args: &[Arg], n: usize) -> Result<()> {
  if args.len() != n {
    return Err(Error::invalid(format!(
      "{}(): expected {n} arguments, got {}",
      op.method(),
      args.len()
    )));
  }
  Ok(())
}

/// Number of JavaScript arguments each op takes from the batch.
pub fn arity(op: Op) -> usize {
  match op {
    Op::Ping | Op::Unwatch => 0,
    Op::Get
    | Op::GetBuffer
    | Op::Del
    | Op::Exists
    | Op::Ttl
    | Op::PTtl
    | Op::Incr
    | Op::MGet
    | Op::MSet
    | Op::HGetAll
    | Op::SMembers
    | Op::GetDel
    | Op::Watch => 1,
    Op::Expire | Op::PExpire | Op::IncrBy | Op::HGet | Op::HDel | Op::SAdd | Op::SRem => 2,
    Op::Command | Op::Transaction => 2,
    Op::Set | Op::HSet => 3,
    Op::GetEx | Op::Scan | Op::Script | Op::Eval => 4,
    Op::SetWith => 7,
  }
}

/// Checks `args` and builds the command, key prefix applied.
pub fn encode(op: Op, args: &[Arg], prefix: &[u8]) -> Result<(Cmd, Shape)> {
  let mut out = Cmd::new();
  let shape = encode_inner(op, args, prefix, &mut out)?;
  Ok((out, shape))
}

fn encode_inner(op: Op, args: &[Arg], prefix: &[u8], out: &mut Cmd) -> Result<Shape> {
  check_arity(op, args, arity(op))?;
  let c = Ctx {
    method: op.method(),
    prefix,
  };
  let simple_key = |name: &[u8], shape: Shape, out: &mut Cmd| -> Result<Shape> {
    let k = c.key("key", &args[0])?;
    c.start(out, 2, name, k);
    Ok(shape)
  };
  match op {
    Op::Ping => {
      push_array_header(out, 1);
      push_bulk(out, b"PING");
      Ok(Shape::Void)
    }
    Op::Get => simple_key(b"GET", Shape::Str, out),
    Op::GetBuffer => simple_key(b"GET", Shape::Buf, out),
    Op::Ttl => simple_key(b"TTL", Shape::Int, out),
    Op::PTtl => simple_key(b"PTTL", Shape::Int, out),
    Op::Incr => simple_key(b"INCR", Shape::Int, out),
    Op::HGetAll => simple_key(b"HGETALL", Shape::Map, out),
    Op::SMembers => simple_key(b"SMEMBERS", Shape::StrArray, out),
    Op::GetDel => simple_key(b"GETDEL", Shape::Str, out),
    Op::Set => {
      let k = c.key("key", &args[0])?;
      let v = c.value("value", &args[1])?;
      let ttl = c.optional_positive("ttlSeconds", &args[2])?;
      c.start(out, if ttl.is_some() { 5 } else { 3 }, b"SET", k);
      push_bulk(out, v);
      if let Some(t) = ttl {
        push_bulk(out, b"EX");
        push_bulk_int(out, t);
      }
      Ok(Shape::Void)
    }
    Op::SetWith => {
      // args: key, value, ttlSeconds, ttlMs, nx, xx, keepTtl
      let k = c.key("key", &args[0])?;
      let v = c.value("value", &args[1])?;
      let secs = c.optional_positive("options.ttlSeconds", &args[2])?;
      let ms = c.optional_positive("options.ttlMs", &args[3])?;
      let nx = c.flag("options.nx", &args[4])?;
      let xx = c.flag("options.xx", &args[5])?;
      let keep = c.flag("options.keepTtl", &args[6])?;
      if secs.is_some() && ms.is_some() {
        return Err(Error::invalid(
          "set(): give options.ttlSeconds or options.ttlMs, not both",
        ));
      }
      if nx && xx {
        return Err(Error::invalid(
          "set(): options.nx and options.xx exclude each other",
        ));
      }
      if keep && (secs.is_some() || ms.is_some()) {
        return Err(Error::invalid(
          "set(): options.keepTtl cannot be combined with a TTL",
        ));
      }
      let n =
        3 + 2 * (secs.is_some() || ms.is_some()) as usize + (nx || xx) as usize + keep as usize;
      c.start(out, n, b"SET", k);
      push_bulk(out, v);
      if let Some(s) = secs {
        push_bulk(out, b"EX");
        push_bulk_int(out, s);
      }
      if let Some(m) = ms {
        push_bulk(out, b"PX");
        push_bulk_int(out, m);
      }
      if nx {
        push_bulk(out, b"NX");
      }
      if xx {
        push_bulk(out, b"XX");
      }
      if keep {
        push_bulk(out, b"KEEPTTL");
      }
      Ok(Shape::Bool)
    }
    Op::Del | Op::Exists | Op::MGet => {
      let keys = c.keys("keys", &args[0])?;
      let (name, shape): (&[u8], _) = match op {
        Op::Del => (b"DEL", Shape::Int),
        Op::Exists => (b"EXISTS", Shape::Int),
        _ => (b"MGET", Shape::StrArray),
      };
      push_array_header(out, 1 + keys.len());
      push_bulk(out, name);
      for k in &keys {
        c.put_key(out, k);
      }
      Ok(shape)
    }
    Op::Expire | Op::PExpire => {
      let k = c.key("key", &args[0])?;
      let (name, what): (&[u8], _) = if op == Op::Expire {
        (b"EXPIRE", "seconds")
      } else {
        (b"PEXPIRE", "milliseconds")
      };
      let t = c.positive(what, &args[1])?;
      c.start(out, 3, name, k);
      push_bulk_int(out, t);
      Ok(Shape::Bool)
    }
    Op::IncrBy => {
      let k = c.key("key", &args[0])?;
      let by = c.integer("increment", &args[1])?;
      c.start(out, 3, b"INCRBY", k);
      push_bulk_int(out, by);
      Ok(Shape::Int)
    }
    Op::MSet => {
      let p = pairs(&c, "entries", &args[0])?;
      for (i, (k, _)) in p.iter().enumerate() {
        if k.is_empty() {
          return Err(Error::invalid(format!(
            "mset(): key #{i} must be a non-empty string or Buffer"
          )));
        }
      }
      push_array_header(out, 1 + 2 * p.len());
      push_bulk(out, b"MSET");
      for (k, v) in p {
        c.put_key(out, k);
        push_bulk(out, v);
      }
      Ok(Shape::Void)
    }
    Op::HGet => {
      let k = c.key("key", &args[0])?;
      let f = c.value("field", &args[1])?;
      c.start(out, 3, b"HGET", k);
      push_bulk(out, f);
      Ok(Shape::Str)
    }
    Op::HSet => {
      // hset(key, field, value) or hset(key, { field: value, … })
      let k = c.key("key", &args[0])?;
      let p = match (&args[1], &args[2]) {
        (fields @ (Arg::Object(_) | Arg::Array(_)), Arg::Undefined) => pairs(&c, "fields", fields)?,
        (f, v) => vec![(c.value("field", f)?, c.value("value", v)?)],
      };
      c.start(out, 2 + 2 * p.len(), b"HSET", k);
      for (f, v) in p {
        push_bulk(out, f);
        push_bulk(out, v);
      }
      Ok(Shape::Int)
    }
    Op::HDel | Op::SAdd | Op::SRem => {
      let k = c.key("key", &args[0])?;
      let (name, what): (&[u8], _) = match op {
        Op::HDel => (b"HDEL", "fields"),
        Op::SAdd => (b"SADD", "members"),
        _ => (b"SREM", "members"),
      };
      let items = c.values(what, &args[1])?;
      c.start(out, 2 + items.len(), name, k);
      for m in items {
        push_bulk(out, m);
      }
      Ok(Shape::Int)
    }
    Op::GetEx => {
      // args: key, ttlSeconds, ttlMs, persist
      let k = c.key("key", &args[0])?;
      let secs = c.optional_positive("options.ttlSeconds", &args[1])?;
      let ms = c.optional_positive("options.ttlMs", &args[2])?;
      let persist = c.flag("options.persist", &args[3])?;
      if (secs.is_some() as u8 + ms.is_some() as u8 + persist as u8) > 1 {
        return Err(Error::invalid(
          "getEx(): give one of options.ttlSeconds, options.ttlMs, options.persist",
        ));
      }
      let extra = if secs.is_some() || ms.is_some() {
        2
      } else {
        persist as usize
      };
      c.start(out, 2 + extra, b"GETEX", k);
      if let Some(s) = secs {
        push_bulk(out, b"EX");
        push_bulk_int(out, s);
      }
      if let Some(m) = ms {
        push_bulk(out, b"PX");
        push_bulk_int(out, m);
      }
      if persist {
        push_bulk(out, b"PERSIST");
      }
      Ok(Shape::Str)
    }
    Op::Scan => encode_scan(&c, args, out),
    Op::Command => encode_generic(&c, args, out),
    Op::Script => encode_script(&c, args, out),
    Op::Watch => {
      let keys = c.keys("keys", &args[0])?;
      push_bulk(out, b"WATCH");
      for k in &keys {
        c.put_key(out, k);
      }
      Ok(Shape::Void)
    }
    Op::Unwatch => {
      push_bulk(out, b"UNWATCH");
      Ok(Shape::Void)
    }
    Op::Eval => encode_eval(&c, args, out),
    // Several commands: the bridge reads them and calls `group`.
    Op::Transaction => Err(Error::invalid(
      "exec(): a transaction is not a single command",
    )),
  }
}

/// How `multi()`/`pipeline()` send their commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupMode {
  /// MULTI, the commands, EXEC: atomic on the server.
  Multi,
  /// The commands back to back, each on its own.
  Pipeline,
}

impl GroupMode {
  pub fn from_code(code: f64) -> Option<GroupMode> {
    if code == 0.0 {
      Some(GroupMode::Multi)
    } else if code == 1.0 {
      Some(GroupMode::Pipeline)
    } else {
      None
    }
  }
}

/// A transaction's wire commands, the shape of its entry, and the shapes of
/// the commands inside.
pub type Group = (Vec<Cmd>, Shape, Vec<Shape>);

/// The wire commands of a transaction or pipeline whose commands were each
/// encoded (checked, prefixed) by [`encode`]: contiguous in one batch, they
/// make one entry of shape [`Shape::Group`]; the commands' own shapes are
/// returned for converting the replies.
///
/// ```
/// use atlas_redis::commands::{encode, group, Arg, GroupMode, Op, Shape};
/// let set = encode(Op::Incr, &[Arg::Str(b"n")], b"p:").unwrap();
/// let (cmds, shape, shapes) = group(GroupMode::Multi, vec![set]).unwrap();
/// assert_eq!(cmds.len(), 3); // MULTI, INCR p:n, EXEC
/// assert_eq!(shape, Shape::Group { replies: 3, atomic: true });
/// assert_eq!(shapes, vec![Shape::Int]);
/// ```
pub fn group(mode: GroupMode, parts: Vec<(Cmd, Shape)>) -> Result<Group> {
  if parts.is_empty() {
    return Err(Error::invalid("exec(): no commands were queued"));
  }
  let atomic = mode == GroupMode::Multi;
  let mut cmds = Vec::with_capacity(parts.len() + 2);
  let mut shapes = Vec::with_capacity(parts.len());
  if atomic {
    cmds.push(redis::cmd("MULTI"));
  }
  for (cmd, shape) in parts {
    if matches!(shape, Shape::Group { .. }) {
      return Err(Error::invalid(
        "exec(): a transaction cannot hold another one",
      ));
    }
    cmds.push(cmd);
    shapes.push(shape);
  }
  if atomic {
    cmds.push(redis::cmd("EXEC"));
  }
  let replies =
    u32::try_from(cmds.len()).map_err(|_| Error::invalid("exec(): too many commands"))?;
  Ok((cmds, Shape::Group { replies, atomic }, shapes))
}

/// `EVALSHA sha numkeys keys… args…`, or `EVAL source …` (the script API:
/// `eval()`, `defineScript()`). Keys get the prefix.
fn encode_eval(c: &Ctx, args: &[Arg], out: &mut Cmd) -> Result<Shape> {
  // args: source or sha1, keys, arguments, whether the first is the source (EVAL)
  let eval = c.flag("eval", &args[3])?;
  let script = match &args[0] {
    Arg::Str(s) if !s.is_empty() => *s,
    other => return Err(c.err("script", "a non-empty string", other)),
  };
  let is_sha1 = script.len() == 40 && script.iter().all(u8::is_ascii_hexdigit);
  if !eval && !is_sha1 {
    return Err(Error::invalid("eval(): sha1 must be 40 hex digits"));
  }
  let keys = match &args[1] {
    Arg::Array(items) if items.is_empty() => Vec::new(),
    a @ Arg::Array(_) => c.keys("keys", a)?,
    other => return Err(c.err("keys", "an array of keys", other)),
  };
  let argv = match &args[2] {
    Arg::Array(items) => words(c, items)?,
    other => return Err(c.err("args", "an array", other)),
  };
  push_bulk(out, if eval { b"EVAL" } else { b"EVALSHA" });
  push_bulk(out, script);
  push_bulk_int(out, keys.len() as i64);
  for k in &keys {
    c.put_key(out, k);
  }
  for a in &argv {
    push_bulk(out, a);
  }
  Ok(Shape::Raw)
}

/// `args[i]` as bytes each: strings and Buffers as they are, finite numbers
/// as text. Borrowed where it can be: a pipeline of generic commands reads
/// every argument through here.
fn words<'a>(c: &Ctx, items: &'a [Arg]) -> Result<Vec<Cow<'a, [u8]>>> {
  let mut out = Vec::with_capacity(items.len());
  for (i, a) in items.iter().enumerate() {
    out.push(match a {
      Arg::Str(s) | Arg::Buf(s) => Cow::Borrowed(*s),
      Arg::Number(n) if n.is_finite() => Cow::Owned(if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
        (*n as i64).to_string().into_bytes()
      } else {
        n.to_string().into_bytes()
      }),
      other => {
        return Err(c.err(
          &format!("args[{i}]"),
          "a string, Buffer or finite number",
          other,
        ))
      }
    });
  }
  Ok(out)
}

/// `EVALSHA sha numkeys keys… args…` (or `EVAL source …` after NOSCRIPT) for
/// one of the package's own scripts. Keys get the prefix; keys and
/// arguments only ever travel as KEYS/ARGV, never inside script text.
fn encode_script(c: &Ctx, args: &[Arg], out: &mut Cmd) -> Result<Shape> {
  // args: script id, keys, arguments, send the source (EVAL) instead of the hash
  let script = match &args[0] {
    Arg::Number(n) if n.fract() == 0.0 && *n >= 0.0 => crate::scripts::script(*n as u32),
    _ => None,
  }
  .ok_or_else(|| Error::invalid("script(): unknown script"))?;
  let keys = c.keys("keys", &args[1])?;
  let argv = match &args[2] {
    Arg::Array(items) => words(c, items)?,
    other => return Err(c.err("args", "an array", other)),
  };
  let eval = c.flag("eval", &args[3])?;
  push_array_header(out, 3 + keys.len() + argv.len());
  if eval {
    push_bulk(out, b"EVAL");
    push_bulk(out, script.source.as_bytes());
  } else {
    push_bulk(out, b"EVALSHA");
    push_bulk(out, script.sha1.as_bytes());
  }
  push_bulk_int(out, keys.len() as i64);
  for k in &keys {
    c.put_key(out, k);
  }
  for a in &argv {
    push_bulk(out, a);
  }
  Ok(Shape::Raw)
}

/// Escapes glob metacharacters so a key prefix matches only itself.
pub fn escape_glob(prefix: &[u8]) -> Vec<u8> {
  let mut out = Vec::with_capacity(prefix.len());
  for &b in prefix {
    if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
      out.push(b'\\');
    }
    out.push(b);
  }
  out
}

fn encode_scan(c: &Ctx, args: &[Arg], out: &mut Cmd) -> Result<Shape> {
  // args: cursor, match, count, type
  let cursor = match &args[0] {
    // `<master>-<cursor>` on a cluster (src/engine/cluster.rs)
    Arg::Str(s)
      if !s.is_empty()
        && s.iter().all(|b| b.is_ascii_digit() || *b == b'-')
        && s[0] != b'-'
        && s.iter().filter(|b| **b == b'-').count() <= 1 =>
    {
      *s
    }
    other => return Err(c.err("cursor", "a decimal string", other)),
  };
  let pattern = match &args[1] {
    Arg::Undefined => None,
    a => Some(c.key("options.match", a)?),
  };
  let count = c.optional_positive("options.count", &args[2])?;
  let kind = match &args[3] {
    Arg::Undefined => None,
    a => Some(c.key("options.type", a)?),
  };
  let full_pattern = match (c.prefix.is_empty(), pattern) {
    (true, p) => p.map(|p| p.to_vec()),
    (false, p) => {
      let mut v = escape_glob(c.prefix);
      v.extend_from_slice(p.unwrap_or(b"*"));
      Some(v)
    }
  };
  let n =
    2 + 2 * (full_pattern.is_some() as usize + count.is_some() as usize + kind.is_some() as usize);
  push_array_header(out, n);
  push_bulk(out, b"SCAN");
  push_bulk(out, cursor);
  if let Some(p) = &full_pattern {
    push_bulk(out, b"MATCH");
    push_bulk(out, p);
  }
  if let Some(n) = count {
    push_bulk(out, b"COUNT");
    push_bulk_int(out, n);
  }
  if let Some(t) = kind {
    push_bulk(out, b"TYPE");
    push_bulk(out, t);
  }
  Ok(Shape::Scan)
}

/// Commands that would let a prefixed client reach other prefixes' keys:
/// whole-keyspace commands, scripts (they can touch any key), and commands that
/// take key patterns or store to a key outside the key positions.
const REFUSED_WITH_PREFIX: &[&str] = &[
  "FLUSHDB",
  "FLUSHALL",
  "SELECT",
  "SWAPDB",
  "MOVE",
  "KEYS",
  "SCAN",
  "RANDOMKEY",
  "MIGRATE",
  "EVAL",
  "EVALSHA",
  "EVAL_RO",
  "EVALSHA_RO",
  "FCALL",
  "FCALL_RO",
  "SCRIPT",
  "FUNCTION",
  "SORT",
  "SORT_RO",
  "GEORADIUS",
  "GEORADIUSBYMEMBER",
  "MEMORY",
  "DEBUG",
  "OBJECT",
];

/// Commands that change the state of the shared connection, which every other
/// call of this client relies on (reply order, protocol, database, auth).
const REFUSED_ALWAYS: &[&str] = &[
  "SUBSCRIBE",
  "PSUBSCRIBE",
  "SSUBSCRIBE",
  "UNSUBSCRIBE",
  "PUNSUBSCRIBE",
  "SUNSUBSCRIBE",
  "MONITOR",
  "MULTI",
  "EXEC",
  "DISCARD",
  "WATCH",
  "UNWATCH",
  "RESET",
  "QUIT",
  "HELLO",
  "AUTH",
  "SELECT",
  "READONLY",
  "READWRITE",
];

fn encode_generic(c: &Ctx, args: &[Arg], out: &mut Cmd) -> Result<Shape> {
  let name = match &args[0] {
    Arg::Str(s)
      if !s.is_empty()
        && s.iter().all(|b| {
          b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.' || *b == b'|' || *b == b'-'
        }) =>
    {
      *s
    }
    other => return Err(c.err("name", "a command name", other)),
  };
  let items: &[Arg] = match &args[1] {
    Arg::Array(items) => items,
    other => return Err(c.err("args", "an array", other)),
  };
  let texts = words(c, items)?;
  let refused = |list: &[&str]| list.iter().any(|r| r.as_bytes().eq_ignore_ascii_case(name));
  let sub_is = |list: &[&str]| {
    texts
      .first()
      .is_some_and(|t| list.iter().any(|r| r.as_bytes().eq_ignore_ascii_case(t)))
  };
  let upper = || String::from_utf8_lossy(name).to_ascii_uppercase();
  let is_client = name.eq_ignore_ascii_case(b"CLIENT");
  if refused(REFUSED_ALWAYS) || (is_client && sub_is(&["REPLY", "TRACKING", "CACHING"])) {
    let what = if is_client {
      format!(
        "CLIENT {}",
        String::from_utf8_lossy(&texts[0]).to_ascii_uppercase()
      )
    } else {
      upper()
    };
    return Err(Error::invalid(format!(
      "command(): {what} would change the connection this client shares between all its calls; use a dedicated connection"
    )));
  }
  let mut keyed = Vec::new();
  if !c.prefix.is_empty() {
    if refused(REFUSED_WITH_PREFIX) {
      return Err(Error::invalid(format!(
        "command(): {} is not allowed on a client with a keyPrefix (it would reach keys outside the prefix)",
        upper()
      )));
    }
    keyed = vec![false; texts.len()];
    let refs: Vec<&[u8]> = texts.iter().map(|t| t.as_ref()).collect();
    let idx = table::lookup(name, &refs).map(|cmd| table::key_positions(cmd, &refs)).ok_or_else(|| {
      Error::invalid(format!(
        "command(): cannot apply the keyPrefix to {} (its key positions are not known); use a client without keyPrefix",
        upper()
      ))
    })?;
    for i in idx {
      keyed[i] = true;
    }
  }
  push_array_header(out, 1 + texts.len());
  push_bulk(out, name);
  for (i, t) in texts.iter().enumerate() {
    if keyed.get(i).copied().unwrap_or(false) {
      c.put_key(out, t);
    } else {
      push_bulk(out, t);
    }
  }
  Ok(Shape::Raw)
}

#[cfg(test)]
mod tests {
  use super::*;

  fn enc(op: Op, args: &[Arg], prefix: &[u8]) -> Result<String> {
    encode(op, args, prefix)
      .map(|(cmd, _)| String::from_utf8_lossy(&cmd.get_packed_command()).replace("\r\n", " "))
  }

  fn s(v: &str) -> Arg<'_> {
    Arg::Str(v.as_bytes())
  }

  #[test]
  fn set_forms() {
    assert_eq!(
      enc(Op::Set, &[s("k"), s("v"), Arg::Undefined], b"").unwrap(),
      "*3 $3 SET $1 k $1 v "
    );
    assert_eq!(
      enc(Op::Set, &[s("k"), s("v"), Arg::Number(10.0)], b"p:").unwrap(),
      "*5 $3 SET $3 p:k $1 v $2 EX $2 10 "
    );
    assert_eq!(
      enc(
        Op::SetWith,
        &[
          s("k"),
          s("v"),
          Arg::Undefined,
          Arg::Number(1500.0),
          Arg::Bool(true),
          Arg::Undefined,
          Arg::Undefined
        ],
        b""
      )
      .unwrap(),
      "*6 $3 SET $1 k $1 v $2 PX $4 1500 $2 NX "
    );
  }

  #[test]
  fn bad_ttls_are_refused_by_name() {
    for bad in [
      Arg::Number(0.0),
      Arg::Number(-1.0),
      Arg::Number(f64::NAN),
      Arg::Number(f64::INFINITY),
      Arg::Number(1.5),
      s("10"),
      Arg::Null,
    ] {
      let e = enc(Op::Set, &[s("k"), s("v"), bad.clone()], b"").unwrap_err();
      assert_eq!(e.code.as_str(), "ERR_INVALID_ARGUMENT");
      assert!(e.message.contains("ttlSeconds"), "{}", e.message);
    }
  }

  #[test]
  fn bad_keys_and_values() {
    for bad in [
      s(""),
      Arg::Buf(b""),
      Arg::Number(1.0),
      Arg::Undefined,
      Arg::Other("symbol"),
    ] {
      let e = enc(Op::Get, &[bad], b"").unwrap_err();
      assert!(e
        .message
        .starts_with("get(): key must be a non-empty string or Buffer"));
    }
    let e = enc(Op::Set, &[s("k"), Arg::Object(vec![]), Arg::Undefined], b"").unwrap_err();
    assert_eq!(
      e.message,
      "set(): value must be a string or Buffer, got object"
    );
    assert!(enc(Op::Del, &[Arg::Array(vec![])], b"").is_err());
    assert!(enc(Op::Del, &[Arg::Array(vec![s("a"), Arg::Number(2.0)])], b"").is_err());
    let e = enc(
      Op::SetWith,
      &[
        s("k"),
        s("v"),
        Arg::Number(1.0),
        Arg::Number(1.0),
        Arg::Undefined,
        Arg::Undefined,
        Arg::Undefined,
      ],
      b"",
    )
    .unwrap_err();
    assert!(e.message.contains("not both"));
  }

  #[test]
  fn multi_key_commands_prefix_every_key() {
    assert_eq!(
      enc(Op::Del, &[Arg::Array(vec![s("a"), Arg::Buf(b"b")])], b"x:").unwrap(),
      "*3 $3 DEL $3 x:a $3 x:b "
    );
    assert_eq!(
      enc(
        Op::MSet,
        &[Arg::Object(vec![(b"a", s("1")), (b"b", s("2"))])],
        b"x:"
      )
      .unwrap(),
      "*5 $4 MSET $3 x:a $1 1 $3 x:b $1 2 "
    );
    assert_eq!(
      enc(
        Op::HSet,
        &[s("h"), Arg::Object(vec![(b"f", s("v"))]), Arg::Undefined],
        b"x:"
      )
      .unwrap(),
      "*4 $4 HSET $3 x:h $1 f $1 v "
    );
  }

  #[test]
  fn scan_escapes_the_prefix() {
    assert_eq!(
      enc(
        Op::Scan,
        &[s("0"), Arg::Undefined, Arg::Number(100.0), Arg::Undefined],
        b"a*[b]:"
      )
      .unwrap(),
      "*6 $4 SCAN $1 0 $5 MATCH $10 a\\*\\[b\\]:* $5 COUNT $3 100 "
    );
    assert_eq!(
      enc(
        Op::Scan,
        &[s("17"), Arg::Undefined, Arg::Undefined, Arg::Undefined],
        b""
      )
      .unwrap(),
      "*2 $4 SCAN $2 17 "
    );
    assert!(enc(
      Op::Scan,
      &[
        s("0 MATCH *"),
        Arg::Undefined,
        Arg::Undefined,
        Arg::Undefined
      ],
      b""
    )
    .is_err());
  }

  #[test]
  fn generic_command_prefixes_known_keys_only() {
    let args = |v: Vec<Arg<'static>>| Arg::Array(v);
    assert_eq!(
      enc(
        Op::Command,
        &[s("lpush"), args(vec![s("l"), s("a"), Arg::Number(3.0)])],
        b"p:"
      )
      .unwrap(),
      "*4 $5 lpush $3 p:l $1 a $1 3 "
    );
    // Scripts can reach any key: refused on a prefixed client, untouched without one.
    let eval = || args(vec![s("return 1"), s("1"), s("k1")]);
    assert!(enc(Op::Command, &[s("EVAL"), eval()], b"p:").is_err());
    assert_eq!(
      enc(Op::Command, &[s("EVAL"), eval()], b"").unwrap(),
      "*4 $4 EVAL $8 return 1 $1 1 $2 k1 "
    );
    // Commands that would change the shared connection are refused for everyone.
    for (name, first) in [
      ("SUBSCRIBE", "ch"),
      ("MULTI", ""),
      ("CLIENT", "REPLY"),
      ("RESET", ""),
    ] {
      let a = if first.is_empty() {
        vec![]
      } else {
        vec![s(first)]
      };
      assert!(
        enc(Op::Command, &[s(name), args(a)], b"").is_err(),
        "{name}"
      );
    }
    assert_eq!(
      enc(
        Op::Command,
        &[s("MSET"), args(vec![s("a"), s("1"), s("b"), s("2")])],
        b"p:"
      )
      .unwrap(),
      "*5 $4 MSET $3 p:a $1 1 $3 p:b $1 2 "
    );
    assert!(enc(Op::Command, &[s("FLUSHDB"), args(vec![])], b"p:").is_err());
    assert!(enc(Op::Command, &[s("FOO.BAR"), args(vec![s("x")])], b"p:").is_err());
    // Without a prefix anything goes through untouched.
    assert!(enc(Op::Command, &[s("FOO.BAR"), args(vec![s("x")])], b"").is_ok());
    // A command name cannot smuggle extra protocol.
    assert!(enc(Op::Command, &[s("GET\r\nFLUSHALL"), args(vec![])], b"").is_err());
  }

  #[test]
  fn internal_ops_for_transactions_and_scripts_prefix_their_keys() {
    let keys = Arg::Array(vec![s("a"), s("b")]);
    assert_eq!(
      enc(Op::Watch, &[keys], b"p:").unwrap(),
      "*3 $5 WATCH $3 p:a $3 p:b "
    );
    assert!(enc(Op::Watch, &[Arg::Array(vec![])], b"").is_err());
    assert_eq!(enc(Op::Unwatch, &[], b"p:").unwrap(), "*1 $7 UNWATCH ");
    let sha = "a".repeat(40);
    assert_eq!(
      enc(
        Op::Eval,
        &[
          s(&sha),
          Arg::Array(vec![s("k")]),
          Arg::Array(vec![Arg::Number(5.0)]),
          Arg::Bool(false)
        ],
        b"p:"
      )
      .unwrap(),
      format!("*5 $7 EVALSHA $40 {sha} $1 1 $3 p:k $1 5 ")
    );
    assert_eq!(
      enc(
        Op::Eval,
        &[
          s("return 1"),
          Arg::Array(vec![]),
          Arg::Array(vec![]),
          Arg::Bool(true)
        ],
        b"p:"
      )
      .unwrap(),
      "*3 $4 EVAL $8 return 1 $1 0 "
    );
    // EVALSHA takes a SHA1 only; keys must be keys
    assert!(enc(
      Op::Eval,
      &[
        s("return 1"),
        Arg::Array(vec![]),
        Arg::Array(vec![]),
        Arg::Bool(false)
      ],
      b""
    )
    .is_err());
    assert!(enc(
      Op::Eval,
      &[
        s("x"),
        Arg::Array(vec![s("")]),
        Arg::Array(vec![]),
        Arg::Bool(true)
      ],
      b""
    )
    .is_err());
    // and command() still refuses what these ops send
    for name in ["MULTI", "EXEC", "WATCH", "UNWATCH"] {
      assert!(
        enc(Op::Command, &[s(name), Arg::Array(vec![s("k")])], b"").is_err(),
        "{name}"
      );
    }
  }

  #[test]
  fn a_group_wraps_its_commands() {
    let parts = || {
      vec![
        encode(Op::Incr, &[s("n")], b"p:").unwrap(),
        encode(Op::Get, &[s("k")], b"p:").unwrap(),
      ]
    };
    let (cmds, shape, shapes) = group(GroupMode::Multi, parts()).unwrap();
    let wire: Vec<_> = cmds
      .iter()
      .map(|c| String::from_utf8_lossy(&c.get_packed_command()).replace("\r\n", " "))
      .collect();
    assert_eq!(
      wire,
      [
        "*1 $5 MULTI ",
        "*2 $4 INCR $3 p:n ",
        "*2 $3 GET $3 p:k ",
        "*1 $4 EXEC "
      ]
    );
    assert_eq!(
      shape,
      Shape::Group {
        replies: 4,
        atomic: true
      }
    );
    assert_eq!(shape.replies(), 4);
    assert_eq!(shapes, [Shape::Int, Shape::Str]);
    let (cmds, shape, _) = group(GroupMode::Pipeline, parts()).unwrap();
    assert_eq!(cmds.len(), 2);
    assert_eq!(
      shape,
      Shape::Group {
        replies: 2,
        atomic: false
      }
    );
    assert!(group(GroupMode::Multi, vec![]).is_err());
    assert_eq!(GroupMode::from_code(2.0), None);
    assert!(encode(
      Op::Transaction,
      &[Arg::Number(0.0), Arg::Array(vec![])],
      b""
    )
    .is_err());
  }

  #[test]
  fn op_codes_round_trip() {
    for (i, op) in Op::ALL.iter().enumerate() {
      assert_eq!(Op::from_code(i as u32), Some(*op));
      assert_eq!(*op as usize, i);
    }
    assert_eq!(Op::from_code(Op::ALL.len() as u32), None);
  }
}
