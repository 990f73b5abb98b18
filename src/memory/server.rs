//! One `memory://` connection: reads RESP commands from the pipe, runs them on
//! the store, and writes RESP2 replies (RESP3 after `HELLO 3`, with
//! client-tracking invalidations as push messages). Also the connection-level
//! commands: HELLO, AUTH, CLIENT, EVAL/EVALSHA/SCRIPT, INFO, CONFIG, QUIT,
//! SHUTDOWN.
//!
//! Commands run on the I/O thread, and so do brief scripts; the others run on
//! the store's script thread: while one runs, the other connections wait for
//! the store, and once it has run longer than `busy-reply-threshold` they are
//! answered as Redis answers them then (BUSY; SCRIPT KILL and SHUTDOWN NOSAVE
//! stop it), see [`super::script_run`].

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::commands::{self, bulk, err, ok, wrong_args, Ctx};
use super::fmt::g17;
use super::script_run::{KillReply, Status, BUSY, NOTBUSY, UNKILLABLE};
use super::store::{Invalidation, Shared, Store, Tracker};
use crate::memory::resp::{self, Reply};

/// The server's side of one connection.
pub struct Session {
  pub id: u64,
  pub db: usize,
  pub resp3: bool,
  pub name: Option<Bytes>,
  pub tx: UnboundedSender<Invalidation>,
  pub quit: bool,
  /// Commands queued since MULTI; `multi_failed` once one was refused.
  pub multi: Option<Vec<Vec<Bytes>>>,
  pub multi_failed: bool,
  /// Close without answering the last command (SHUTDOWN).
  pub hang_up: bool,
}

/// Serves one connection until the client goes away.
pub async fn serve(shared: Arc<Shared>, stream: DuplexStream) {
  let (mut rd, mut wr) = tokio::io::split(stream);
  let (tx, mut rx) = unbounded_channel();
  let id = shared.new_conn_id();
  let mut sess = Session {
    id,
    db: 0,
    resp3: false,
    name: None,
    tx,
    quit: false,
    multi: None,
    multi_failed: false,
    hang_up: false,
  };
  let mut buf = BytesMut::with_capacity(16 * 1024);
  let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
  loop {
    tokio::select! {
      r = rd.read_buf(&mut buf) => {
        match r {
          Ok(0) | Err(_) => break,
          Ok(_) => {}
        }
        let mut cmds = Vec::new();
        let mut broken = None;
        loop {
          match resp::parse(&mut buf) {
            Ok(Some(Reply::Array(items))) => match command_args(items) {
              Some(args) if args.is_empty() => {}
              Some(args) => cmds.push(args),
              None => {
                broken = Some("expected a command: an array of bulk strings".to_string());
                break;
              }
            },
            Ok(Some(_)) => {
              broken = Some("expected a command: an array of bulk strings".to_string());
              break;
            }
            Ok(None) => break,
            Err(e) => {
              broken = Some(e.0);
              break;
            }
          }
        }
        if !cmds.is_empty() {
          sess = run_commands(&shared, sess, cmds, &mut out).await;
        }
        while let Ok(p) = rx.try_recv() {
          encode_push(&mut out, &p, sess.resp3);
        }
        if let Some(why) = &broken {
          encode(&mut out, &err(format!("ERR Protocol error: {why}")), sess.resp3);
        }
        if wr.write_all(&out).await.is_err() {
          break;
        }
        out.clear();
        if sess.quit || broken.is_some() {
          break;
        }
      }
      Some(p) = rx.recv() => {
        encode_push(&mut out, &p, sess.resp3);
        while let Ok(p) = rx.try_recv() {
          encode_push(&mut out, &p, sess.resp3);
        }
        if wr.write_all(&out).await.is_err() {
          break;
        }
        out.clear();
      }
    }
  }
  let _ = wr.shutdown().await;
  when_free(&shared, |store| store.data.untrack(id)).await;
}

/// Whether a command runs a script (on the script thread).
fn runs_script(name: &[u8]) -> bool {
  [&b"eval"[..], b"evalsha", b"eval_ro", b"evalsha_ro"]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// Runs a connection's commands in order, encoding their replies into `out`.
/// Scripts run here too, on the I/O thread, unless they move to the script
/// thread (see [`super::script_run`]).
async fn run_commands(
  shared: &Arc<Shared>,
  mut sess: Session,
  cmds: Vec<Vec<Bytes>>,
  out: &mut Vec<u8>,
) -> Session {
  let mut i = 0;
  while i < cmds.len() && !sess.quit {
    if shared.inner.is_locked() {
      // a script holds the store (EVAL included: a second script gets BUSY too)
      if let Some(reply) = while_script_runs(shared, &mut sess, &cmds[i]).await {
        encode(out, &reply, sess.resp3);
        i += 1;
        continue;
      }
    }
    let mut moved = false;
    {
      let Some(mut store) = shared.inner.try_lock() else {
        continue; // taken meanwhile: wait above
      };
      while i < cmds.len() && !sess.quit {
        let script = runs_script(&cmds[i][0]);
        store.lua.inline_next = script;
        let reply = execute(&mut store, &mut sess, &cmds[i]);
        store.lua.inline_next = false;
        if script && store.lua.take_moved() {
          // counted again where it runs
          let name = lower(&cmds[i][0]);
          if let Some(stat) = store.data.stats.get_mut(&name) {
            stat.calls -= 1;
          }
          moved = true;
          break;
        }
        if !sess.hang_up {
          encode(out, &reply, sess.resp3);
        }
        i += 1;
      }
    }
    if moved {
      let reply;
      (reply, sess) = run_script(shared, sess, cmds[i].clone()).await;
      encode(out, &reply, sess.resp3);
      i += 1;
    }
  }
  sess
}

/// Runs a script command on the store's script thread, so that the I/O
/// thread keeps serving the other connections meanwhile.
async fn run_script(shared: &Arc<Shared>, mut sess: Session, args: Vec<Bytes>) -> (Reply, Session) {
  let store = shared.clone();
  shared
    .script_thread()
    .run(move || {
      let reply = execute(&mut store.inner.lock(), &mut sess, &args);
      store.script.released.notify_waiters();
      (reply, sess)
    })
    .await
}

/// How long to sleep between looks at a store a script holds, at most (the
/// script's end wakes the waiters sooner).
const RECHECK: Duration = Duration::from_millis(10);

/// Runs `f` on the store once no script holds it, without blocking the I/O
/// thread meanwhile.
async fn when_free<R>(shared: &Shared, f: impl FnOnce(&mut Store) -> R) -> R {
  loop {
    let released = shared.script.released.notified();
    tokio::pin!(released);
    released.as_mut().enable();
    if let Some(mut store) = shared.inner.try_lock() {
      return f(&mut store);
    }
    tokio::select! {
      _ = released => {}
      _ = tokio::time::sleep(RECHECK) => {}
    }
  }
}

/// A command that found the store held by a script. As on Redis, it waits
/// while the script is young; once the script is busy it gets BUSY, except
/// the commands Redis serves then. None: the store is free, run it as usual.
async fn while_script_runs(shared: &Shared, sess: &mut Session, args: &[Bytes]) -> Option<Reply> {
  let name = lower(&args[0]);
  loop {
    let released = shared.script.released.notified();
    tokio::pin!(released);
    released.as_mut().enable();
    if !shared.inner.is_locked() {
      return None;
    }
    let wait = match shared.script.status() {
      Status::Busy => match busy_reply(shared, sess, &name, args) {
        Some(reply) => return Some(reply),
        None => RECHECK,
      },
      Status::Young(left) => left.min(RECHECK * 10),
      Status::Idle => RECHECK,
    };
    tokio::select! {
      _ = released => {}
      _ = tokio::time::sleep(wait) => {}
    }
  }
}

/// The answer to a command while a script is busy; None: it waits for the
/// store (SHUTDOWN NOSAVE, after stopping the script; RESET).
fn busy_reply(shared: &Shared, sess: &mut Session, name: &str, a: &[Bytes]) -> Option<Reply> {
  if let Some(reply) = session_command(sess, name, a) {
    return Some(reply);
  }
  Some(match name {
    "script" if a.len() == 2 && lower(&a[1]) == "kill" => match shared.script.kill() {
      KillReply::Killed => ok(),
      KillReply::NotBusy => err(NOTBUSY),
      KillReply::Unkillable => err(UNKILLABLE),
    },
    "shutdown" if a[1..].iter().any(|x| lower(x) == "nosave") => {
      shared.script.abort();
      return None;
    }
    "reset" => return None,
    _ if commands::lookup(name).is_none() && !CONNECTION_COMMANDS.contains(&name) => {
      commands::unknown(a)
    }
    _ => err(BUSY),
  })
}

/// The commands [`connection_command`] serves.
const CONNECTION_COMMANDS: &[&str] = &[
  "hello",
  "auth",
  "quit",
  "reset",
  "client",
  "eval",
  "evalsha",
  "eval_ro",
  "evalsha_ro",
  "script",
  "info",
  "config",
  "command",
  "shutdown",
];

fn command_args(items: Vec<Reply>) -> Option<Vec<Bytes>> {
  items
    .into_iter()
    .map(|i| match i {
      Reply::Bulk(b) | Reply::Status(b) => Some(b),
      Reply::Int(n) => Some(Bytes::from(n.to_string())),
      _ => None,
    })
    .collect()
}

/// Runs one command for `sess`, counting it in `INFO commandstats`.
pub fn execute(store: &mut Store, sess: &mut Session, args: &[Bytes]) -> Reply {
  let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
  if let Some(reply) = transaction(store, sess, &name, args) {
    return reply;
  }
  let start = std::time::Instant::now();
  let (stat_name, reply) = match connection_command(store, sess, &name, args) {
    Some(r) => r,
    None => match commands::lookup(&name) {
      None => return commands::unknown(args),
      Some((arity, f)) => {
        let reply = if commands::arity_ok(arity, args.len()) {
          let mut ctx = Ctx::new(&mut store.data, sess.db, sess.resp3);
          let r = f(&mut ctx, args);
          sess.db = ctx.db;
          ctx.finish();
          r
        } else {
          wrong_args(&name)
        };
        (name, reply)
      }
    },
  };
  let stat = store.data.stats.entry(stat_name).or_default();
  stat.calls += 1;
  stat.usec += start.elapsed().as_micros() as u64;
  if matches!(reply, Reply::Error(_)) {
    stat.failed += 1;
  }
  reply
}

/// MULTI, EXEC, DISCARD, WATCH, UNWATCH, and queuing while in MULTI; None:
/// run the command now. The caller holds the store for the whole batch, so
/// EXEC runs its commands with nobody in between.
fn transaction(store: &mut Store, sess: &mut Session, name: &str, args: &[Bytes]) -> Option<Reply> {
  let in_multi = sess.multi.is_some();
  Some(match name {
    "multi" if in_multi => err("ERR MULTI calls can not be nested"),
    "multi" => {
      sess.multi = Some(Vec::new());
      sess.multi_failed = false;
      ok()
    }
    "exec" | "discard" if !in_multi => {
      err(format!("ERR {} without MULTI", name.to_ascii_uppercase()))
    }
    "discard" => {
      sess.multi = None;
      store.data.watches.remove(&sess.id);
      ok()
    }
    "exec" => {
      let queued = sess.multi.take().unwrap_or_default();
      let watch = store.data.watches.remove(&sess.id);
      if std::mem::take(&mut sess.multi_failed) {
        return Some(err(
          "EXECABORT Transaction discarded because of previous errors.",
        ));
      }
      if watch.is_some_and(|w| w.dirty) {
        return Some(Reply::Nil);
      }
      let replies = queued.iter().map(|a| execute(store, sess, a)).collect();
      Reply::Array(replies)
    }
    "watch" if in_multi => err("ERR WATCH inside MULTI is not allowed"),
    "watch" if args.len() < 2 => wrong_args("watch"),
    "watch" => {
      let w = store.data.watches.entry(sess.id).or_default();
      w.keys.extend(args[1..].iter().map(|k| k.to_vec()));
      ok()
    }
    "unwatch" => {
      store.data.watches.remove(&sess.id);
      ok()
    }
    // RESET and QUIT end a transaction and its watch, then run.
    "reset" | "quit" => {
      sess.multi = None;
      sess.multi_failed = false;
      store.data.watches.remove(&sess.id);
      return None;
    }
    _ if in_multi => {
      // Refused now (unknown, wrong arity) fails the whole transaction at EXEC.
      let refused = match commands::lookup(name) {
        Some((arity, _)) if !commands::arity_ok(arity, args.len()) => Some(wrong_args(name)),
        None if !CONNECTION_COMMANDS.contains(&name) => Some(commands::unknown(args)),
        _ => None,
      };
      if let Some(e) = refused {
        sess.multi_failed = true;
        return Some(e);
      }
      sess.multi.as_mut().expect("in MULTI").push(args.to_vec());
      Reply::Status(Bytes::from_static(b"QUEUED"))
    }
    _ => return None,
  })
}

fn lower(b: &[u8]) -> String {
  String::from_utf8_lossy(b).to_ascii_lowercase()
}

fn unknown_sub(cmd: &str, sub: &[u8]) -> Reply {
  err(format!(
    "ERR unknown subcommand '{}'. Try {} HELP.",
    String::from_utf8_lossy(sub),
    cmd.to_ascii_uppercase()
  ))
}

/// The commands that need no store (so are served while a script is busy too).
fn session_command(sess: &mut Session, name: &str, a: &[Bytes]) -> Option<Reply> {
  Some(match name {
    "hello" => hello(sess, a),
    "auth" => match a.len() {
      2 | 3 => ok(),
      _ => wrong_args("auth"),
    },
    "quit" => {
      sess.quit = true;
      ok()
    }
    _ => return None,
  })
}

/// Commands about the connection or the whole server; None: a data command.
fn connection_command(
  store: &mut Store,
  sess: &mut Session,
  name: &str,
  a: &[Bytes],
) -> Option<(String, Reply)> {
  if let Some(reply) = session_command(sess, name, a) {
    return Some((name.to_string(), reply));
  }
  let reply = match name {
    "shutdown" => shutdown(store, sess, a),
    "reset" => {
      sess.db = 0;
      sess.resp3 = false;
      sess.name = None;
      store.data.untrack(sess.id);
      Reply::Status(Bytes::from_static(b"RESET"))
    }
    "client" => {
      if a.len() < 2 {
        return Some((name.into(), wrong_args("client")));
      }
      let sub = lower(&a[1]);
      let r = client(store, sess, &sub, a);
      return Some((format!("client|{sub}"), r));
    }
    "eval" | "evalsha" | "eval_ro" | "evalsha_ro" => {
      if a.len() < 3 {
        return Some((name.into(), wrong_args(name)));
      }
      let Store { data, lua } = store;
      lua.eval(data, sess.db, a, name.starts_with("evalsha"))
    }
    "script" => {
      if a.len() < 2 {
        return Some((name.into(), wrong_args("script")));
      }
      let sub = lower(&a[1]);
      let r = match (sub.as_str(), a.len()) {
        ("load", 3) => {
          let Store { data, lua } = store;
          match lua.load(data, &a[2]) {
            Ok(sha) => bulk(sha),
            Err(e) => e,
          }
        }
        ("exists", n) if n >= 3 => Reply::Array(
          a[2..]
            .iter()
            .map(|s| Reply::Int(store.lua.exists(s) as i64))
            .collect(),
        ),
        ("flush", 2 | 3) => {
          let Store { data, lua } = store;
          lua.flush(data);
          ok()
        }
        // a running script holds the store: here none runs
        ("kill", 2) => err(NOTBUSY),
        ("load" | "exists" | "flush" | "kill", _) => wrong_args(&format!("script|{sub}")),
        _ => unknown_sub("script", &a[1]),
      };
      return Some((format!("script|{sub}"), r));
    }
    "info" => info(store, a),
    "config" => {
      if a.len() < 2 {
        return Some((name.into(), wrong_args("config")));
      }
      let sub = lower(&a[1]);
      let r = match sub.as_str() {
        "resetstat" => {
          store.data.stats.clear();
          ok()
        }
        "get" => config_get(store, sess, a),
        "set" => config_set(store, a),
        _ => unknown_sub("config", &a[1]),
      };
      return Some((format!("config|{sub}"), r));
    }
    "command" => Reply::Array(Vec::new()),
    _ => return None,
  };
  Some((name.to_string(), reply))
}

fn hello(sess: &mut Session, a: &[Bytes]) -> Reply {
  let mut i = 1;
  if let Some(v) = a.get(1) {
    match super::fmt::parse_int(v) {
      Some(2) => sess.resp3 = false,
      Some(3) => sess.resp3 = true,
      Some(_) => return err("NOPROTO unsupported protocol version"),
      None => return err("ERR Protocol version is not an integer or out of range"),
    }
    i = 2;
  }
  while i < a.len() {
    match lower(&a[i]).as_str() {
      // memory:// has no users: any credentials are accepted
      "auth" if i + 2 < a.len() => i += 3,
      "setname" if i + 1 < a.len() => {
        sess.name = Some(a[i + 1].clone());
        i += 2;
      }
      _ => {
        return err(format!(
          "ERR Syntax error in HELLO option '{}'",
          String::from_utf8_lossy(&a[i])
        ))
      }
    }
  }
  let s = |t: &str| bulk(t.to_string());
  let pairs = vec![
    (s("server"), s("redis")),
    (s("version"), s("7.0.15")),
    (s("proto"), Reply::Int(if sess.resp3 { 3 } else { 2 })),
    (s("id"), Reply::Int(sess.id as i64)),
    (s("mode"), s("standalone")),
    (s("role"), s("master")),
    (s("modules"), Reply::Array(Vec::new())),
  ];
  if sess.resp3 {
    Reply::Map(pairs)
  } else {
    Reply::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
  }
}

/// SHUTDOWN: the store starts over empty, as a server restarted without
/// persistence would, and the connection closes without an answer. (While a
/// script is busy, SHUTDOWN NOSAVE first stops it, writes or not.)
fn shutdown(store: &mut Store, sess: &mut Session, a: &[Bytes]) -> Reply {
  for opt in &a[1..] {
    match lower(opt).as_str() {
      "nosave" | "save" | "now" | "force" => {}
      "abort" => return err("ERR No shutdown in progress."),
      _ => return err(commands::SYNTAX),
    }
  }
  let Store { data, lua } = store;
  let mut ctx = Ctx::new(data, 0, false);
  commands::run(&mut ctx, &[Bytes::from_static(b"FLUSHALL")]);
  ctx.finish();
  lua.flush(data);
  data.stats.clear();
  sess.quit = true;
  sess.hang_up = true;
  ok()
}

/// The settings CONFIG GET and SET know: Redis' script time limit (under
/// both its names) and memory://'s own cap on a script's Lua memory.
const SETTINGS: &[&str] = &["busy-reply-threshold", "lua-time-limit", "lua-memory-limit"];

fn config_get(store: &mut Store, sess: &Session, a: &[Bytes]) -> Reply {
  if a.len() < 3 {
    return wrong_args("config|get");
  }
  let mut pairs = Vec::new();
  for name in SETTINGS {
    if a[2..]
      .iter()
      .any(|p| commands::glob(&p.to_ascii_lowercase(), name.as_bytes()))
    {
      let value = match *name {
        "lua-memory-limit" => store.lua.memory_limit() as u64,
        _ => store.lua.run.busy_ms(),
      };
      pairs.push((bulk(name.to_string()), bulk(value.to_string())));
    }
  }
  if sess.resp3 {
    Reply::Map(pairs)
  } else {
    Reply::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
  }
}

/// A size as Redis' memory settings take it: bytes, or with k/kb/m/mb/g/gb.
fn parse_bytes(v: &[u8]) -> Option<u64> {
  let s = String::from_utf8_lossy(v).to_ascii_lowercase();
  let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
  let unit = match &s[digits.len()..] {
    "" | "b" => 1,
    "k" => 1000,
    "kb" => 1024,
    "m" => 1_000_000,
    "mb" => 1 << 20,
    "g" => 1_000_000_000,
    "gb" => 1 << 30,
    _ => return None,
  };
  digits.parse::<u64>().ok()?.checked_mul(unit)
}

fn config_set(store: &mut Store, a: &[Bytes]) -> Reply {
  if a.len() < 4 || !a.len().is_multiple_of(2) {
    return wrong_args("config|set");
  }
  for pair in a[2..].chunks(2) {
    let name = lower(&pair[0]);
    let bad = |what: &str| {
      err(format!(
        "ERR CONFIG SET failed (possibly related to argument '{name}') - {what}"
      ))
    };
    match name.as_str() {
      "busy-reply-threshold" | "lua-time-limit" => match super::fmt::parse_int(&pair[1]) {
        Some(ms) if ms >= 0 => store.lua.run.set_busy_ms(ms as u64),
        Some(_) => return bad("argument must be between 0 and 9223372036854775807 inclusive"),
        None => return bad("argument couldn't be parsed into an integer"),
      },
      "lua-memory-limit" => match parse_bytes(&pair[1]) {
        Some(bytes) => store.lua.set_memory_limit(bytes as usize),
        None => return bad("argument must be a memory value"),
      },
      // other settings mean nothing here: accepted, as before
      _ => {}
    }
  }
  ok()
}

fn client(store: &mut Store, sess: &mut Session, sub: &str, a: &[Bytes]) -> Reply {
  match (sub, a.len()) {
    ("setname", 3) => {
      if a[2].iter().any(|&c| c <= b' ' || c > b'~') {
        return err("ERR Client names cannot contain spaces, newlines or special characters.");
      }
      sess.name = (!a[2].is_empty()).then(|| a[2].clone());
      ok()
    }
    ("getname", 2) => sess.name.clone().map(Reply::Bulk).unwrap_or(Reply::Nil),
    ("id", 2) => Reply::Int(sess.id as i64),
    ("setinfo", 4) => ok(),
    ("info", 2) | ("list", _) => bulk(format!(
      "id={} addr=memory fd=-1 name={} db={} resp={}\n",
      sess.id,
      sess
        .name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default(),
      sess.db,
      if sess.resp3 { 3 } else { 2 }
    )),
    ("tracking", n) if n >= 3 => {
      let on = match lower(&a[2]).as_str() {
        "on" => true,
        "off" => false,
        _ => return err(commands::SYNTAX),
      };
      let mut prefixes: Vec<Vec<u8>> = Vec::new();
      let mut bcast = false;
      let mut i = 3;
      while i < a.len() {
        match lower(&a[i]).as_str() {
          "prefix" if i + 1 < a.len() => {
            prefixes.push(a[i + 1].to_vec());
            i += 1;
          }
          // without BCAST Redis tracks the keys this connection read; here
          // every write to any key is announced (more than needed, never less)
          "bcast" => bcast = true,
          "noloop" | "optin" | "optout" => {}
          "redirect" if i + 1 < a.len() => i += 1,
          _ => return err(commands::SYNTAX),
        }
        i += 1;
      }
      if !prefixes.is_empty() && !bcast {
        return err("ERR PREFIX option requires BCAST mode to be enabled");
      }
      for (i, p) in prefixes.iter().enumerate() {
        for q in &prefixes[i + 1..] {
          if p.starts_with(q) || q.starts_with(p) {
            return err(format!(
              "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
              String::from_utf8_lossy(p),
              String::from_utf8_lossy(q)
            ));
          }
        }
      }
      store.data.untrack(sess.id);
      if on {
        store.data.trackers.push(Tracker {
          conn: sess.id,
          prefixes,
          tx: sess.tx.clone(),
        });
      }
      ok()
    }
    ("setname" | "getname" | "id" | "setinfo" | "info" | "tracking", _) => {
      wrong_args(&format!("client|{sub}"))
    }
    _ => unknown_sub("client", &a[1]),
  }
}

fn info(store: &mut Store, a: &[Bytes]) -> Reply {
  let section = a
    .get(1)
    .map(|s| lower(s))
    .unwrap_or_else(|| "default".into());
  let mut s = String::new();
  let all = matches!(section.as_str(), "default" | "all" | "everything");
  if all || section == "server" {
    s.push_str(
      "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nexecutable:memory://\r\n\r\n",
    );
  }
  if section == "commandstats" || section == "all" || section == "everything" {
    s.push_str("# Commandstats\r\n");
    for (name, st) in &store.data.stats {
      let per = if st.calls > 0 {
        st.usec as f64 / st.calls as f64
      } else {
        0.0
      };
      s.push_str(&format!(
        "cmdstat_{name}:calls={},usec={},usec_per_call={per:.2},rejected_calls=0,failed_calls={}\r\n",
        st.calls, st.usec, st.failed
      ));
    }
    s.push_str("\r\n");
  }
  if all || section == "keyspace" {
    s.push_str("# Keyspace\r\n");
    let now = super::store::now_ms();
    for (i, db) in store.data.dbs.iter().enumerate() {
      let (keys, expires) = db.live_keys(now).fold((0, 0), |(k, e), (_, v)| {
        (k + 1, e + v.expires.is_some() as u64)
      });
      if keys > 0 {
        s.push_str(&format!(
          "db{i}:keys={keys},expires={expires},avg_ttl=0\r\n"
        ));
      }
    }
  }
  bulk(s)
}

// ---- encoding -------------------------------------------------------------------

fn line(out: &mut Vec<u8>, tag: u8, text: &[u8]) {
  out.push(tag);
  out.extend_from_slice(text);
  out.extend_from_slice(b"\r\n");
}

/// One reply in RESP2 or RESP3.
pub fn encode(out: &mut Vec<u8>, r: &Reply, resp3: bool) {
  match r {
    Reply::Nil => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
    Reply::Status(s) => line(out, b'+', s),
    Reply::Error(e) => {
      let clean: String = e
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
      line(out, b'-', clean.as_bytes())
    }
    Reply::Int(n) => line(out, b':', n.to_string().as_bytes()),
    Reply::Bulk(b) => resp::push_bulk(out, b),
    Reply::Array(items) => {
      resp::push_array_header(out, items.len());
      for i in items {
        encode(out, i, resp3);
      }
    }
    Reply::Push(items) => {
      if resp3 {
        line(out, b'>', items.len().to_string().as_bytes());
      } else {
        resp::push_array_header(out, items.len());
      }
      for i in items {
        encode(out, i, resp3);
      }
    }
    Reply::Map(pairs) => {
      if resp3 {
        line(out, b'%', pairs.len().to_string().as_bytes());
      } else {
        resp::push_array_header(out, pairs.len() * 2);
      }
      for (k, v) in pairs {
        encode(out, k, resp3);
        encode(out, v, resp3);
      }
    }
    Reply::Double(d) => {
      if resp3 {
        line(out, b',', g17(*d).as_bytes())
      } else {
        resp::push_bulk(out, g17(*d).as_bytes())
      }
    }
    Reply::Bool(b) => {
      if resp3 {
        out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" })
      } else {
        line(out, b':', if *b { b"1" } else { b"0" })
      }
    }
    Reply::BigNumber(b) => {
      if resp3 {
        line(out, b'(', b)
      } else {
        resp::push_bulk(out, b)
      }
    }
  }
}

/// `>2 invalidate [keys]` (RESP3 only: a RESP2 connection has no way to get it).
fn encode_push(out: &mut Vec<u8>, p: &Invalidation, resp3: bool) {
  if !resp3 {
    return;
  }
  out.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n");
  match p {
    Invalidation::All => out.extend_from_slice(b"_\r\n"),
    Invalidation::Keys(keys) => {
      resp::push_array_header(out, keys.len());
      for k in keys {
        resp::push_bulk(out, k);
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn cmd(parts: &[&str]) -> Vec<u8> {
    let p: Vec<&[u8]> = parts.iter().map(|s| s.as_bytes()).collect();
    let mut out = Vec::new();
    resp::encode_command(&mut out, &p);
    out
  }

  async fn roundtrip(c: &mut tokio::io::DuplexStream, parts: &[&str], buf: &mut BytesMut) -> Reply {
    c.write_all(&cmd(parts)).await.unwrap();
    loop {
      if let Some(r) = resp::parse(buf).unwrap() {
        return r;
      }
      c.read_buf(buf).await.unwrap();
    }
  }

  #[test]
  fn a_busy_script_gets_others_busy_until_script_kill() {
    let rt = tokio::runtime::Builder::new_current_thread()
      .enable_all()
      .build()
      .unwrap();
    rt.block_on(async {
      let shared = Arc::new(Shared::new());
      let (mut a, sa) = tokio::io::duplex(1 << 16);
      let (mut b, sb) = tokio::io::duplex(1 << 16);
      tokio::spawn(serve(shared.clone(), sa));
      tokio::spawn(serve(shared.clone(), sb));
      let (mut ba, mut bb) = (BytesMut::new(), BytesMut::new());
      assert_eq!(
        roundtrip(&mut b, &["CONFIG", "SET", "lua-time-limit", "50"], &mut bb).await,
        ok()
      );
      // whatever happens, the endless script ends with the test (the
      // test binary would spin on it to the end)
      struct Stop(Arc<Shared>);
      impl Drop for Stop {
        fn drop(&mut self) {
          self.0.script.abort();
        }
      }
      let _stop = Stop(shared.clone());
      a.write_all(&cmd(&["EVAL", "while true do end", "0"])).await.unwrap();
      while matches!(shared.script.status(), Status::Idle) {
        tokio::time::sleep(Duration::from_millis(1)).await;
      }
      // young: B waits for it; busy: B is told so, and another script too
      let started = std::time::Instant::now();
      assert_eq!(roundtrip(&mut b, &["GET", "k"], &mut bb).await, err(BUSY));
      assert!(started.elapsed() >= Duration::from_millis(40));
      assert_eq!(roundtrip(&mut b, &["EVAL", "return 1", "0"], &mut bb).await, err(BUSY));
      assert!(matches!(roundtrip(&mut b, &["HELLO"], &mut bb).await, Reply::Array(_)));
      assert_eq!(roundtrip(&mut b, &["SCRIPT", "KILL"], &mut bb).await, ok());
      let killed = loop {
        if let Some(r) = resp::parse(&mut ba).unwrap() {
          break r;
        }
        a.read_buf(&mut ba).await.unwrap();
      };
      assert!(
        matches!(&killed, Reply::Error(e) if e.starts_with("ERR Script killed by user with SCRIPT KILL...")),
        "{killed:?}"
      );
      assert_eq!(roundtrip(&mut b, &["SCRIPT", "KILL"], &mut bb).await, err(NOTBUSY));
      assert_eq!(roundtrip(&mut a, &["EVAL", "return 2", "0"], &mut ba).await, Reply::Int(2));
    });
  }

  #[test]
  fn tracking_connections_get_invalidations() {
    let rt = tokio::runtime::Builder::new_current_thread()
      .enable_all()
      .build()
      .unwrap();
    rt.block_on(async {
      let shared = Arc::new(Shared::new());
      let (mut a, sa) = tokio::io::duplex(1 << 16);
      let (mut b, sb) = tokio::io::duplex(1 << 16);
      tokio::spawn(serve(shared.clone(), sa));
      tokio::spawn(serve(shared.clone(), sb));
      let (mut ba, mut bb) = (BytesMut::new(), BytesMut::new());
      assert!(matches!(
        roundtrip(&mut a, &["HELLO", "3"], &mut ba).await,
        Reply::Map(_)
      ));
      assert_eq!(
        roundtrip(
          &mut a,
          &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "coa:"],
          &mut ba
        )
        .await,
        ok()
      );
      assert_eq!(
        roundtrip(&mut b, &["SET", "coa:1", "x"], &mut bb).await,
        ok()
      );
      assert_eq!(
        roundtrip(&mut b, &["SET", "other", "x"], &mut bb).await,
        ok()
      );
      let push = roundtrip(&mut a, &["PING"], &mut ba).await;
      let pong = loop {
        if let Some(r) = resp::parse(&mut ba).unwrap() {
          break r;
        }
        a.read_buf(&mut ba).await.unwrap();
      };
      assert_eq!(pong, Reply::Status("PONG".into()));
      assert_eq!(
        push,
        Reply::Push(vec![
          Reply::Bulk("invalidate".into()),
          Reply::Array(vec![Reply::Bulk("coa:1".into())])
        ])
      );
      // the other connection saw its own db and stats
      assert_eq!(
        roundtrip(&mut b, &["GET", "coa:1"], &mut bb).await,
        Reply::Bulk("x".into())
      );
      let Reply::Bulk(info) = roundtrip(&mut b, &["INFO", "commandstats"], &mut bb).await else {
        panic!()
      };
      assert!(String::from_utf8_lossy(&info).contains("cmdstat_set:calls=2,"));
    });
  }

  #[test]
  fn multi_exec_and_watch() {
    let rt = tokio::runtime::Builder::new_current_thread()
      .enable_all()
      .build()
      .unwrap();
    rt.block_on(async {
      let shared = Arc::new(Shared::new());
      let (mut a, sa) = tokio::io::duplex(1 << 16);
      let (mut b, sb) = tokio::io::duplex(1 << 16);
      tokio::spawn(serve(shared.clone(), sa));
      tokio::spawn(serve(shared.clone(), sb));
      let (mut ba, mut bb) = (BytesMut::new(), BytesMut::new());
      let queued = Reply::Status("QUEUED".into());
      // commands run at EXEC, a failure in its place
      assert_eq!(roundtrip(&mut a, &["SET", "s", "x"], &mut ba).await, ok());
      assert_eq!(roundtrip(&mut a, &["MULTI"], &mut ba).await, ok());
      assert_eq!(roundtrip(&mut a, &["INCR", "n"], &mut ba).await, queued);
      assert_eq!(roundtrip(&mut a, &["INCR", "s"], &mut ba).await, queued);
      assert_eq!(roundtrip(&mut b, &["GET", "n"], &mut bb).await, Reply::Nil);
      let Reply::Array(r) = roundtrip(&mut a, &["EXEC"], &mut ba).await else {
        panic!()
      };
      assert_eq!(r[0], Reply::Int(1));
      assert!(matches!(&r[1], Reply::Error(e) if e.starts_with("ERR value is not an integer")));
      // a command refused while queuing discards everything
      assert_eq!(roundtrip(&mut a, &["MULTI"], &mut ba).await, ok());
      assert_eq!(roundtrip(&mut a, &["INCR", "n"], &mut ba).await, queued);
      assert!(matches!(roundtrip(&mut a, &["NOSUCH"], &mut ba).await, Reply::Error(_)));
      assert!(matches!(roundtrip(&mut a, &["EXEC"], &mut ba).await, Reply::Error(e) if e.starts_with("EXECABORT")));
      assert_eq!(roundtrip(&mut b, &["GET", "n"], &mut bb).await, Reply::Bulk("1".into()));
      // WATCH: another connection's write aborts (nil), no write runs
      assert_eq!(roundtrip(&mut a, &["WATCH", "n"], &mut ba).await, ok());
      assert_eq!(roundtrip(&mut b, &["INCR", "n"], &mut bb).await, Reply::Int(2));
      assert_eq!(roundtrip(&mut a, &["MULTI"], &mut ba).await, ok());
      assert_eq!(roundtrip(&mut a, &["SET", "n", "mine"], &mut ba).await, queued);
      assert_eq!(roundtrip(&mut a, &["EXEC"], &mut ba).await, Reply::Nil);
      assert_eq!(roundtrip(&mut b, &["GET", "n"], &mut bb).await, Reply::Bulk("2".into()));
      // EXEC forgot the watch; DISCARD, nesting and EXEC without MULTI
      assert_eq!(roundtrip(&mut a, &["MULTI"], &mut ba).await, ok());
      assert!(matches!(roundtrip(&mut a, &["MULTI"], &mut ba).await, Reply::Error(_)));
      assert!(matches!(roundtrip(&mut a, &["WATCH", "x"], &mut ba).await, Reply::Error(_)));
      assert_eq!(roundtrip(&mut a, &["SET", "n", "mine"], &mut ba).await, queued);
      assert_eq!(roundtrip(&mut a, &["DISCARD"], &mut ba).await, ok());
      assert!(matches!(roundtrip(&mut a, &["EXEC"], &mut ba).await, Reply::Error(_)));
      assert_eq!(roundtrip(&mut a, &["MULTI"], &mut ba).await, ok());
      assert_eq!(roundtrip(&mut a, &["SET", "n", "mine"], &mut ba).await, queued);
      assert_eq!(roundtrip(&mut a, &["EXEC"], &mut ba).await, Reply::Array(vec![ok()]));
      assert_eq!(roundtrip(&mut b, &["GET", "n"], &mut bb).await, Reply::Bulk("mine".into()));
    });
  }
}
