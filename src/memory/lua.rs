//! EVAL, EVALSHA and SCRIPT for `memory://`, in Lua 5.1 as Redis runs them,
//! with Redis 7.0's conversions:
//!
//! - Lua → reply: number → integer (truncated), string → bulk, true → 1,
//!   false/nil → nil, `{ok=…}` → status, `{err=…}` → error, a table → array up
//!   to its first nil.
//! - reply → Lua (`redis.call`): integer → number, bulk → string, nil → false,
//!   status → `{ok=…}`, array → table; an error is raised (`redis.pcall`
//!   returns it as `{err=…}`). `pcall` turns such a raised table into its text.
//!
//! A script runs with the store locked, so it is atomic, as on Redis; in the
//! sandbox of [`super::sandbox`] (Redis 7's globals, read-only), stopped by
//! SCRIPT KILL through [`ScriptRun`], its Lua heap capped at
//! [`SCRIPT_MEMORY_LIMIT`] (`CONFIG SET lua-memory-limit`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Table, Value};

use super::commands::{self, err, Ctx};
use super::fmt::g17;
use super::sandbox;
use super::script_run::{Ended, ScriptRun, INLINE_BUDGET};
use super::store::Data;
use crate::memory::resp::Reply;

/// Redis 7: an error raised by `redis.call` reaches the caller of `pcall` as
/// its text. (`errtext` reads that text from the error value.)
const LIB: &str = r#"
local errtext = ...
local lua_pcall = pcall
local function plain(ok, ...)
  if not ok then
    local e = ...
    if type(e) == 'table' and e.err ~= nil then return false, e.err end
    local t = errtext(e)
    if t then return false, t end
  end
  return ok, ...
end
pcall = function(f, ...) return plain(lua_pcall(f, ...)) end
"#;

/// An error reply raised by `redis.call` (a Rust function, so that a script's
/// `return redis.call(…)` keeps its own frame for the error's line number).
#[derive(Debug)]
struct CallError(String);

impl std::fmt::Display for CallError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str(&self.0)
  }
}

impl std::error::Error for CallError {}

/// The reply text of a [`CallError`] inside a Lua error.
fn call_error_text(e: &mlua::Error) -> Option<String> {
  match e {
    mlua::Error::CallbackError { cause, .. } => call_error_text(cause),
    mlua::Error::ExternalError(x) => x.downcast_ref::<CallError>().map(|c| c.0.clone()),
    mlua::Error::WithContext { cause, .. } => call_error_text(cause),
    _ => None,
  }
}

/// How much memory a store's Lua may use (scripts, their data and the
/// compiled scripts together) unless `CONFIG SET lua-memory-limit` says
/// otherwise. Redis has no such limit; here the store lives in the client's
/// process, so a runaway script fails instead of growing it.
pub const SCRIPT_MEMORY_LIMIT: usize = 64 << 20;

/// `redis.REDIS_VERSION_NUM` of the 7.0.15 that `memory://` answers as.
const VERSION_NUM: u32 = 0x07_00_0f;

pub struct Engine {
  lua: Lua,
  on_error: Function,
  /// The `_G` scripts see (read-only, see [`sandbox`]).
  env: Table,
  /// The `redis` table itself (scripts see a read-only view of it).
  redis: Table,
  /// Bytes the Lua heap may use (0: no limit).
  memory_limit: usize,
  /// The running script as other connections see it (SCRIPT KILL, BUSY).
  pub run: Arc<ScriptRun>,
  /// Compiled scripts by SHA-1.
  funcs: HashMap<String, Function>,
  /// Scripts whose every run took less than [`INLINE_BUDGET`]: they may
  /// write on the I/O thread.
  brief: std::collections::HashSet<String>,
  /// Set by the server for the next script: it runs on the I/O thread.
  pub inline_next: bool,
  /// The last script stopped on the I/O thread to run on the script thread.
  moved: bool,
}

impl Default for Engine {
  fn default() -> Self {
    Self::new(Arc::default())
  }
}

fn sha1_hex(b: &[u8]) -> String {
  sha1_smol::Sha1::from(b).digest().to_string()
}

impl Engine {
  pub fn new(run: Arc<ScriptRun>) -> Engine {
    // the base library (with coroutine), string, table and math; the
    // sandbox takes out what Redis leaves out of the base library
    let lua = Lua::new_with(
      StdLib::STRING | StdLib::TABLE | StdLib::MATH,
      LuaOptions::default(),
    )
    .expect("a Lua state for memory:// scripts");
    let setup = || -> mlua::Result<(Function, Table, Table)> {
      let redis = redis_api(&lua)?;
      lua.globals().set("redis", redis.clone())?;
      let g = lua.globals();
      g.set("struct", super::lua_struct::library(&lua)?)?;
      g.set("cjson", super::lua_cjson::library(&lua)?)?;
      g.set("cmsgpack", super::lua_cmsgpack::library(&lua)?)?;
      g.set("bit", super::lua_bit::library(&lua)?)?;
      let errtext = lua.create_function(|_, v: Value| {
        Ok(match v {
          Value::Error(e) => call_error_text(&e),
          _ => None,
        })
      })?;
      lua.load(LIB).set_name("=redis_lib").call::<()>(errtext)?;
      // the handler of a script's run lifts the cap: the error may be that the
      // heap is full, and describing it must not fail (the run puts it back);
      // the one scripts can call does not
      let on_error = lua.create_function(|lua, e: Value| {
        let _ = lua.set_memory_limit(0);
        error_handler(lua, e)
      })?;
      lua
        .globals()
        .set("__redis__err__handler", lua.create_function(error_handler)?)?;
      let env = sandbox::lock_globals(&lua)?;
      sandbox::install_hook(&lua, &run)?;
      Ok((on_error, env, redis))
    };
    let (on_error, env, redis) = setup().expect("the Lua environment for memory:// scripts");
    let mut engine = Engine {
      lua,
      on_error,
      env,
      redis,
      memory_limit: 0,
      run,
      funcs: HashMap::new(),
      brief: Default::default(),
      inline_next: false,
      moved: false,
    };
    engine.set_memory_limit(SCRIPT_MEMORY_LIMIT);
    engine
  }

  pub fn memory_limit(&self) -> usize {
    self.memory_limit
  }

  /// Caps the Lua heap (0: no cap) while a script runs or compiles. (Only
  /// then: with a cap mlua guards every call into Lua, which costs.)
  pub fn set_memory_limit(&mut self, bytes: usize) {
    self.memory_limit = bytes;
  }

  /// Runs `f` with the Lua heap capped.
  fn capped<R>(&self, f: impl FnOnce() -> R) -> R {
    let _ = self.lua.set_memory_limit(self.memory_limit);
    let r = f();
    // (the error handler lifts the cap too, so that it can describe a failure)
    let _ = self.lua.set_memory_limit(0);
    r
  }

  /// Bytes the Lua heap uses now.
  pub fn used_memory(&self) -> usize {
    self.lua.used_memory()
  }

  /// Compiles and caches `src`; returns its SHA-1.
  pub fn load(&mut self, data: &mut Data, src: &[u8]) -> Result<String, Reply> {
    let sha = sha1_hex(src);
    if !self.funcs.contains_key(&sha) {
      let f = self
        .capped(|| {
          self
            .lua
            .load(src)
            .set_name("@user_script")
            .set_environment(self.env.clone())
            .into_function()
        })
        .map_err(|e| {
          err(format!(
            "ERR Error compiling script (new function): {}",
            lua_message(&e)
          ))
        })?;
      self.funcs.insert(sha.clone(), f);
      data
        .scripts
        .insert(sha.clone(), String::from_utf8_lossy(src).into_owned());
    }
    Ok(sha)
  }

  pub fn exists(&self, sha: &[u8]) -> bool {
    let s = String::from_utf8_lossy(sha).to_ascii_lowercase();
    self.funcs.contains_key(&s)
  }

  /// Whether the last script was stopped on the I/O thread to run again on
  /// the script thread (its reply means nothing).
  pub fn take_moved(&mut self) -> bool {
    std::mem::take(&mut self.moved)
  }

  pub fn flush(&mut self, data: &mut Data) {
    self.funcs.clear();
    self.brief.clear();
    data.scripts.clear();
  }

  /// EVAL (`by_sha` false) or EVALSHA: `args` as received, name included.
  pub fn eval(&mut self, data: &mut Data, db: usize, args: &[Bytes], by_sha: bool) -> Reply {
    let inline = std::mem::take(&mut self.inline_next);
    let numkeys = match super::fmt::parse_int(&args[2]) {
      Some(n) => n,
      None => return err(commands::NOT_INT),
    };
    if numkeys < 0 {
      return err("ERR Number of keys can't be negative");
    }
    if numkeys as usize > args.len() - 3 {
      return err("ERR Number of keys can't be greater than number of args");
    }
    let sha = if by_sha {
      let s = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
      if !self.funcs.contains_key(&s) {
        return err("NOSCRIPT No matching script. Please use EVAL.");
      }
      s
    } else {
      match self.load(data, &args[1]) {
        Ok(s) => s,
        Err(r) => return r,
      }
    };
    let f = self.funcs[&sha].clone();
    let keys = &args[3..3 + numkeys as usize];
    let argv = &args[3 + numkeys as usize..];
    let ctx = RefCell::new(Ctx::new(data, db, false));
    let run = &*self.run;
    run.begin(inline.then(|| self.brief.contains(&sha)));
    let result = self.lua.scope(|scope| {
      let redis_call =
        scope.create_function(
          |lua, parts: MultiValue| match call(lua, &ctx, run, parts)? {
            Ok(v) => Ok(v),
            Err(text) => Err(mlua::Error::external(CallError(text))),
          },
        )?;
      let redis_pcall =
        scope.create_function(
          |lua, parts: MultiValue| match call(lua, &ctx, run, parts)? {
            Ok(v) => Ok(v),
            Err(text) => {
              let t = lua.create_table()?;
              t.set("err", text)?;
              Ok(Value::Table(t))
            }
          },
        )?;
      let g = self.lua.globals();
      let redis = &self.redis;
      redis.raw_set("call", redis_call)?;
      redis.raw_set("pcall", redis_pcall)?;
      g.raw_set("KEYS", strings(&self.lua, keys)?)?;
      g.raw_set("ARGV", strings(&self.lua, argv)?)?;
      let xpcall: Function = g.raw_get("xpcall")?;
      let (ok, value): (bool, Value) = self.capped(|| xpcall.call((f, self.on_error.clone())))?;
      let reply = if ok {
        to_reply(&value, 0)
      } else {
        script_error(&value, &sha, self.memory_limit)
      };
      redis.raw_set("call", Value::Nil)?;
      redis.raw_set("pcall", Value::Nil)?;
      Ok(reply)
    });
    if run.stopping() {
      let _ = sandbox::reset_hook(&self.lua);
    }
    let took = run.elapsed();
    self.moved = run.end() == Ended::Moved;
    if self.moved || took >= INLINE_BUDGET {
      self.brief.remove(&sha);
    } else if !self.brief.contains(&sha) {
      self.brief.insert(sha.clone());
    }
    ctx.into_inner().finish();
    let reply = result.unwrap_or_else(|e| {
      err(format!(
        "ERR Error running script {sha}: {}",
        with_memory_hint(lua_message(&e), self.memory_limit)
      ))
    });
    if matches!(&reply, Reply::Error(e) if e.contains(OOM)) {
      // what the failed script left is garbage now
      let _ = self.lua.gc_collect();
    }
    reply
  }
}

/// Lua's text for a failed allocation.
const OOM: &str = "not enough memory";

/// Adds where the cap comes from to an out-of-memory message.
fn with_memory_hint(msg: String, limit: usize) -> String {
  if msg.contains(OOM) && limit > 0 {
    format!(
      "{msg} (memory:// lets scripts use {} MB of Lua memory: CONFIG SET lua-memory-limit)",
      limit >> 20
    )
  } else {
    msg
  }
}

/// The `redis` table: everything but `call` and `pcall`, which are set for
/// each script run.
fn redis_api(lua: &Lua) -> mlua::Result<Table> {
  let redis = lua.create_table()?;
  redis.set(
    "error_reply",
    lua.create_function(|lua, s: mlua::String| {
      let t = lua.create_table()?;
      // Redis' luaPushErrorBuff: the first word is the error code; a
      // text of one word gets the code ERR
      let b = s.as_bytes();
      let text = b.strip_prefix(b"-").unwrap_or(&b);
      let text = if text.contains(&b' ') {
        text.to_vec()
      } else {
        [b"ERR ".as_slice(), text].concat()
      };
      let end = text.len()
        - text
          .iter()
          .rev()
          .take_while(|c| matches!(c, b'\r' | b'\n'))
          .count();
      t.set("err", lua.create_string(&text[..end])?)?;
      Ok(t)
    })?,
  )?;
  redis.set(
    "status_reply",
    lua.create_function(|lua, s: mlua::String| {
      let t = lua.create_table()?;
      t.set("ok", s)?;
      Ok(t)
    })?,
  )?;
  redis.set(
    "sha1hex",
    lua.create_function(|_, s: mlua::String| Ok(sha1_hex(&s.as_bytes())))?,
  )?;
  redis.set("log", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
  redis.set("setresp", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
  redis.set("set_repl", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
  redis.set(
    "replicate_commands",
    lua.create_function(|_, _: MultiValue| Ok(true))?,
  )?;
  // the Lua debugger's, which answer so when no debugging session runs
  redis.set(
    "breakpoint",
    lua.create_function(|_, _: MultiValue| Ok(false))?,
  )?;
  redis.set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
  // no ACL on memory://: every known command is allowed
  redis.set(
    "acl_check_cmd",
    lua.create_function(|_, name: Option<mlua::String>| {
      let known = name
        .map(|n| commands::lookup(&n.to_string_lossy().to_ascii_lowercase()).is_some())
        .unwrap_or(false);
      if known {
        Ok(true)
      } else {
        Err(mlua::Error::RuntimeError(
          "Invalid command passed to redis.acl_check_cmd()".into(),
        ))
      }
    })?,
  )?;
  redis.set("REDIS_VERSION", "7.0.15")?;
  redis.set("REDIS_VERSION_NUM", VERSION_NUM)?;
  for (i, name) in ["LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING"]
    .iter()
    .enumerate()
  {
    redis.set(*name, i)?;
  }
  for (i, name) in [
    "REPL_NONE",
    "REPL_AOF",
    "REPL_SLAVE",
    "REPL_REPLICA",
    "REPL_ALL",
  ]
  .iter()
  .enumerate()
  {
    redis.set(*name, [0, 1, 2, 2, 3][i])?;
  }
  Ok(redis)
}

fn lua_message(e: &mlua::Error) -> String {
  match e {
    mlua::Error::SyntaxError { message, .. } => message.clone(),
    mlua::Error::RuntimeError(m) => m.clone(),
    mlua::Error::CallbackError { cause, .. } => lua_message(cause),
    mlua::Error::MemoryError(_) => OOM.into(),
    other => other.to_string(),
  }
}

fn strings(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
  let t = lua.create_table_with_capacity(items.len(), 0)?;
  for (i, b) in items.iter().enumerate() {
    t.raw_set(i + 1, lua.create_string(b)?)?;
  }
  Ok(t)
}

/// `redis.call`/`redis.pcall`: the reply, or the text of the error reply.
fn call(
  lua: &Lua,
  ctx: &RefCell<Ctx>,
  run: &ScriptRun,
  parts: MultiValue,
) -> mlua::Result<Result<Value, String>> {
  let fail = |text: &str| Ok(Err(text.to_string()));
  if parts.is_empty() {
    return fail("ERR Please specify at least one argument for this redis lib call");
  }
  let mut args = Vec::with_capacity(parts.len());
  for v in parts.iter() {
    match v {
      Value::String(s) => args.push(Bytes::copy_from_slice(&s.as_bytes())),
      Value::Number(n) => args.push(Bytes::from(g17(*n))),
      Value::Integer(n) => args.push(Bytes::from(n.to_string())),
      _ => return fail("ERR Lua redis lib command arguments must be strings or integers"),
    }
  }
  let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
  let Some((arity, handler)) = commands::lookup(&name) else {
    return fail("ERR Unknown Redis command called from script");
  };
  let start = std::time::Instant::now();
  let mut c = ctx.borrow_mut();
  if !commands::arity_ok(arity, args.len()) {
    return fail("ERR Wrong number of args calling Redis command from script");
  }
  // a write makes the script unkillable; a killed script writes no more
  if commands::is_write(&name) && !run.may_write() {
    return Err(mlua::Error::RuntimeError(run.stop_text().into()));
  }
  let reply = handler(&mut c, &args);
  let stat = c.data.stats.entry(name).or_default();
  stat.calls += 1;
  stat.usec += start.elapsed().as_micros() as u64;
  if let Reply::Error(e) = reply {
    stat.failed += 1;
    return Ok(Err(e));
  }
  drop(c);
  Ok(Ok(to_lua(lua, reply)?))
}

/// A reply as `redis.call` hands it to the script (RESP2 rules).
fn to_lua(lua: &Lua, r: Reply) -> mlua::Result<Value> {
  Ok(match r {
    Reply::Nil => Value::Boolean(false),
    Reply::Int(n) => Value::Number(n as f64),
    Reply::Bulk(b) | Reply::BigNumber(b) => Value::String(lua.create_string(&b)?),
    Reply::Status(s) => {
      let t = lua.create_table()?;
      t.set("ok", lua.create_string(&s)?)?;
      Value::Table(t)
    }
    Reply::Error(e) => {
      let t = lua.create_table()?;
      t.set("err", e)?;
      Value::Table(t)
    }
    Reply::Double(d) => Value::String(lua.create_string(g17(d))?),
    Reply::Bool(b) => {
      if b {
        Value::Number(1.0)
      } else {
        Value::Boolean(false)
      }
    }
    Reply::Array(items) | Reply::Push(items) => {
      let t = lua.create_table_with_capacity(items.len(), 0)?;
      for (i, it) in items.into_iter().enumerate() {
        t.raw_set(i + 1, to_lua(lua, it)?)?;
      }
      Value::Table(t)
    }
    Reply::Map(pairs) => {
      let t = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
      let mut i = 1;
      for (k, v) in pairs {
        t.raw_set(i, to_lua(lua, k)?)?;
        t.raw_set(i + 1, to_lua(lua, v)?)?;
        i += 2;
      }
      Value::Table(t)
    }
  })
}

/// A script's return value as a reply.
pub fn to_reply(v: &Value, depth: usize) -> Reply {
  match v {
    Value::Nil => Reply::Nil,
    Value::Boolean(true) => Reply::Int(1),
    Value::Boolean(false) => Reply::Nil,
    Value::Integer(n) => Reply::Int(*n),
    Value::Number(n) => Reply::Int(*n as i64),
    Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
    Value::Table(t) => {
      if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
        return Reply::Error(e.to_string_lossy());
      }
      if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
        return Reply::Status(Bytes::copy_from_slice(&s.as_bytes()));
      }
      if depth > 64 {
        return err("ERR reached lua stack limit");
      }
      let mut out = Vec::new();
      for i in 1.. {
        match t.raw_get::<Value>(i) {
          Ok(Value::Nil) | Err(_) => break,
          Ok(item) => out.push(to_reply(&item, depth + 1)),
        }
      }
      Reply::Array(out)
    }
    _ => Reply::Nil,
  }
}

/// The error reply of a script that raised `v` (after [`error_handler`]).
fn script_error(v: &Value, sha: &str, memory_limit: usize) -> Reply {
  let Value::Table(t) = v else {
    // Lua calls no error handler for a failed allocation: the text comes as is
    let text = match v {
      Value::String(s) => s.to_string_lossy(),
      _ => "execution failure".into(),
    };
    return err(format!(
      "ERR Error running script {sha}: {}",
      with_memory_hint(text, memory_limit)
    ));
  };
  let text: String = t
    .raw_get::<Option<mlua::String>>("err")
    .ok()
    .flatten()
    .map(|s| s.to_string_lossy())
    .unwrap_or_else(|| "ERR unknown error".into());
  let source: Option<String> = t.raw_get("source").ok().flatten();
  let line: Option<i64> = t.raw_get("line").ok().flatten();
  match (source, line) {
    (Some(s), Some(l)) => err(format!("{text} script: {sha}, on {s}:{l}.")),
    _ => err(text),
  }
}

/// Redis' error handler: every error becomes `{err=…}` with where the script
/// was when it failed.
fn error_handler(lua: &Lua, e: Value) -> mlua::Result<Table> {
  let t = match &e {
    Value::Table(t) if matches!(t.raw_get::<Value>("err"), Ok(Value::String(_))) => t.clone(),
    other => {
      let t = lua.create_table()?;
      let msg = match other {
        Value::String(s) => s.to_string_lossy(),
        Value::Error(e) => match call_error_text(e) {
          Some(text) => {
            let t2 = lua.create_table()?;
            t2.set("err", text)?;
            return with_location(lua, t2);
          }
          None => lua_message(e),
        },
        Value::Nil => "nil".into(),
        v => lua
          .coerce_string(v.clone())
          .ok()
          .flatten()
          .map(|s| s.to_string_lossy())
          .unwrap_or_else(|| v.type_name().into()),
      };
      t.set("err", format!("ERR {msg}"))?;
      t
    }
  };
  with_location(lua, t)
}

/// Adds where the script was (`source`, `line`) to an error table: as
/// Redis' error handler, the first frame that is not a C function (here: not
/// Rust, nor the sandbox's wrappers, which stand for Redis' C functions).
fn with_location(lua: &Lua, t: Table) -> mlua::Result<Table> {
  for level in 1..64 {
    let Some((src, line)) = lua.inspect_stack(level).map(|d| {
      let s = d.source();
      (
        (s.what != "C")
          .then(|| s.source.map(|x| x.into_owned()))
          .flatten(),
        d.curr_line(),
      )
    }) else {
      break;
    };
    if let Some(src) = src {
      if !sandbox::is_sandbox_source(&src) {
        t.set("source", src)?;
        t.set("line", line)?;
        break;
      }
    }
  }
  Ok(t)
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::memory::script_run::{KillReply, Status};
  use std::time::Duration;

  fn eval(e: &mut Engine, d: &mut Data, src: &str, keys: &[&str], argv: &[&str]) -> Reply {
    let mut args: Vec<Bytes> = vec![
      Bytes::from_static(b"EVAL"),
      Bytes::copy_from_slice(src.as_bytes()),
      Bytes::from(keys.len().to_string()),
    ];
    args.extend(
      keys
        .iter()
        .chain(argv)
        .map(|s| Bytes::copy_from_slice(s.as_bytes())),
    );
    e.eval(d, 0, &args, false)
  }

  fn b(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
  }

  #[test]
  fn conversions_follow_redis() {
    let (e, d) = (&mut Engine::default(), &mut Data::default());
    assert_eq!(
      eval(e, d, "return {1, 'x', true, false, {2}, 3.99}", &[], &[]),
      Reply::Array(vec![
        Reply::Int(1),
        b("x"),
        Reply::Int(1),
        Reply::Nil,
        Reply::Array(vec![Reply::Int(2)]),
        Reply::Int(3)
      ])
    );
    assert_eq!(
      eval(e, d, "return {1, 2, nil, 4}", &[], &[]),
      Reply::Array(vec![Reply::Int(1), Reply::Int(2)])
    );
    assert_eq!(
      eval(e, d, "return {ok='fine'}", &[], &[]),
      Reply::Status("fine".into())
    );
    assert_eq!(eval(e, d, "return {err='ab cd'}", &[], &[]), err("ab cd"));
    assert_eq!(
      eval(e, d, "return redis.error_reply('-X y')", &[], &[]),
      err("X y")
    );
    assert_eq!(
      eval(e, d, "return redis.error_reply('plain')", &[], &[]),
      err("ERR plain")
    );
    assert_eq!(
      eval(
        e,
        d,
        "return type(redis.call('GET', KEYS[1]))",
        &["nokey"],
        &[]
      ),
      b("boolean")
    );
    assert_eq!(
      eval(
        e,
        d,
        "return redis.call('SET', KEYS[1], ARGV[1] + 0.5)",
        &["n"],
        &["1764123516789"]
      ),
      Reply::Status("OK".into())
    );
    assert_eq!(
      eval(e, d, "return redis.call('GET', 'n')", &[], &[]),
      b("1764123516789.5")
    );
    assert_eq!(
      eval(
        e,
        d,
        "return redis.call('SET', 'n', 0.1) and redis.call('GET', 'n')",
        &[],
        &[]
      ),
      b("0.10000000000000001")
    );
    assert_eq!(
      eval(e, d, "return redis.sha1hex('')", &[], &[]),
      b("da39a3ee5e6b4b0d3255bfef95601890afd80709")
    );
  }

  #[test]
  fn errors_read_as_on_redis() {
    let (e, d) = (&mut Engine::default(), &mut Data::default());
    eval(e, d, "return redis.call('SET', 'foo', 'bar')", &[], &[]);
    let src = "return redis.call('incr','foo')";
    assert_eq!(
      eval(e, d, src, &[], &[]),
      err(format!(
        "ERR value is not an integer or out of range script: {}, on @user_script:1.",
        sha1_hex(src.as_bytes())
      ))
    );
    assert_eq!(
      eval(
        e,
        d,
        "local ok, e = pcall(redis.call, 'incr','foo'); return e",
        &[],
        &[]
      ),
      b("ERR value is not an integer or out of range")
    );
    assert_eq!(
      eval(e, d, "return redis.pcall('incr','foo')", &[], &[]),
      err("ERR value is not an integer or out of range")
    );
    let src = "error('boom')";
    assert_eq!(
      eval(e, d, src, &[], &[]),
      err(format!(
        "ERR user_script:1: boom script: {}, on @user_script:1.",
        sha1_hex(src.as_bytes())
      ))
    );
    let src = "x = 1";
    assert_eq!(
      eval(e, d, src, &[], &[]),
      err(format!(
        "ERR user_script:1: Attempt to modify a readonly table script: {}, on @user_script:1.",
        sha1_hex(src.as_bytes())
      ))
    );
    let r = eval(e, d, "return redis.call('nosuch')", &[], &[]);
    assert!(
      matches!(&r, Reply::Error(t) if t.starts_with("ERR Unknown Redis command called from script script: ")),
      "{r:?}"
    );
    let mut args = vec![
      Bytes::from_static(b"EVALSHA"),
      Bytes::from_static(b"0123456789012345678901234567890123456789"),
      Bytes::from_static(b"0"),
    ];
    assert_eq!(
      e.eval(d, 0, &args, true),
      err("NOSCRIPT No matching script. Please use EVAL.")
    );
    args[1] = Bytes::from(sha1_hex(b"error('boom')"));
    assert!(matches!(e.eval(d, 0, &args, true), Reply::Error(t) if t.contains("boom")));
  }

  /// Runs `src` while another thread sends SCRIPT KILL once it is busy.
  fn eval_killed(e: &mut Engine, d: &mut Data, src: &str) -> (Reply, KillReply) {
    e.run.set_busy_ms(20);
    let run = e.run.clone();
    let killer = std::thread::spawn(move || loop {
      std::thread::sleep(Duration::from_millis(5));
      match run.kill() {
        KillReply::NotBusy => continue,
        other => return other,
      }
    });
    let r = eval(e, d, src, &[], &[]);
    (r, killer.join().unwrap())
  }

  #[test]
  fn script_kill_stops_a_script_that_never_ends() {
    let (e, d) = (&mut Engine::default(), &mut Data::default());
    // pcall cannot catch the kill, nor can a coroutine hide from it
    for (src, wrapped) in [
      ("while true do pcall(function() end) end", ""),
      (
        "while true do pcall(function() while true do end end) end",
        "",
      ),
      // Lua 5.1's coroutine.wrap adds where it was called to an error text
      (
        "coroutine.wrap(function() while true do end end)()",
        "user_script:1: ",
      ),
    ] {
      let (r, kill) = eval_killed(e, d, src);
      assert_eq!(kill, KillReply::Killed);
      assert_eq!(
        r,
        err(format!(
          "ERR {wrapped}Script killed by user with SCRIPT KILL... script: {}, on @user_script:1.",
          sha1_hex(src.as_bytes())
        ))
      );
      assert_eq!(eval(e, d, "return 1", &[], &[]), Reply::Int(1));
    }
  }

  #[test]
  fn a_script_that_wrote_is_unkillable() {
    let (e, d) = (&mut Engine::default(), &mut Data::default());
    let run = e.run.clone();
    let src = "redis.call('SET', 'k', 'v') local n = 0 while n < 2e7 do n = n + 1 end return n";
    let (r, kill) = eval_killed(e, d, src);
    assert_eq!(kill, KillReply::Unkillable);
    assert_eq!(r, Reply::Int(20_000_000));
    assert!(matches!(run.status(), Status::Idle));
  }

  #[test]
  fn the_memory_limit_fails_the_script_not_the_process() {
    let (e, d) = (&mut Engine::default(), &mut Data::default());
    e.set_memory_limit(8 << 20);
    let r = eval(e, d, "return #string.rep('x', 16 * 1024 * 1024)", &[], &[]);
    assert!(
      matches!(&r, Reply::Error(t) if t.contains("not enough memory") && t.contains("lua-memory-limit")),
      "{r:?}"
    );
    let r = eval(
      e,
      d,
      "local t = {} for i = 1, 1e7 do t[i] = i end return #t",
      &[],
      &[],
    );
    assert!(
      matches!(&r, Reply::Error(t) if t.contains("not enough memory")),
      "{r:?}"
    );
    // what the failed script held is collected
    assert!(e.used_memory() < 2 << 20, "{}", e.used_memory());
    // the error handler scripts can call does not lift the cap
    let r = eval(
      e,
      d,
      "__redis__err__handler('x') return #string.rep('x', 16 * 1024 * 1024)",
      &[],
      &[],
    );
    assert!(
      matches!(&r, Reply::Error(t) if t.contains("not enough memory")),
      "{r:?}"
    );
    // caught by pcall, it is an error like any other
    assert_eq!(
      eval(
        e,
        d,
        "return {pcall(string.rep, 'x', 16 * 1024 * 1024)}",
        &[],
        &[]
      ),
      Reply::Array(vec![Reply::Nil, b("not enough memory")])
    );
    assert_eq!(
      eval(e, d, "return #string.rep('x', 1024)", &[], &[]),
      Reply::Int(1024)
    );
  }

  #[test]
  fn globals_are_redis_7s_and_read_only() {
    let (e, d) = (&mut Engine::default(), &mut Data::default());
    for (src, text) in [
      (
        "return os.getenv('HOME')",
        "user_script:1: Script attempted to access nonexistent global variable 'os'",
      ),
      ("x = 1", "user_script:1: Attempt to modify a readonly table"),
      ("rawset(_G, 'x', 1)", "Attempt to modify a readonly table"),
      (
        "string.rep = nil",
        "user_script:1: Attempt to modify a readonly table",
      ),
      (
        "getmetatable('').__index.rep = nil",
        "user_script:1: Attempt to modify a readonly table",
      ),
      (
        "setmetatable(_G, nil)",
        "Attempt to modify a readonly table",
      ),
      (
        "loadstring('string = 1')()",
        "[string \"string = 1\"]:1: Attempt to modify a readonly table",
      ),
    ] {
      let r = eval(e, d, src, &[], &[]);
      assert!(
        matches!(&r, Reply::Error(t) if t.starts_with(&format!("ERR {text} script: "))),
        "{src}: {r:?}"
      );
    }
    // bytecode is refused
    assert_eq!(
      eval(
        e,
        d,
        "return loadstring(string.dump(function() return 1 end)) == nil",
        &[],
        &[]
      ),
      Reply::Int(1)
    );
    // the tables themselves are intact
    assert_eq!(eval(e, d, "return string.rep('a', 2)", &[], &[]), b("aa"));
    let names = "local t = {} for k in pairs(_G) do t[#t + 1] = k end table.sort(t) return t";
    let Reply::Array(got) = eval(e, d, names, &[], &[]) else {
      panic!()
    };
    let mut want: Vec<&str> = sandbox::GLOBALS.to_vec();
    want.extend(["KEYS", "ARGV"]);
    want.sort();
    assert_eq!(got, want.iter().map(|n| b(n)).collect::<Vec<_>>());
  }

  #[test]
  fn the_package_scripts_compile_and_run() {
    let (e, d) = (&mut Engine::default(), &mut Data::default());
    for (name, src) in crate::scripts::SCRIPTS {
      assert!(e.load(d, src.as_bytes()).is_ok(), "{name}");
    }
    let incr = crate::scripts::SCRIPTS
      .iter()
      .find(|(n, _)| *n == "better_auth_incr")
      .unwrap()
      .1;
    assert_eq!(eval(e, d, incr, &["c"], &["60"]), Reply::Int(1));
    assert_eq!(eval(e, d, incr, &["c"], &["60"]), Reply::Int(2));
    let mut ctx = Ctx::new(d, 0, false);
    assert_eq!(
      commands::run(
        &mut ctx,
        &[Bytes::from_static(b"TTL"), Bytes::from_static(b"c")]
      ),
      Reply::Int(60)
    );
  }
}
