//! Blocking commands on connections of their own.
//!
//! BLPOP, BRPOP, BLMOVE, BLMPOP, BRPOPLPUSH, BZPOPMIN, BZPOPMAX, BZMPOP, and
//! XREAD / XREADGROUP with a BLOCK option hold their connection until
//! something arrives: on the connection every call of a client shares, they
//! would hold every later reply behind them (DESIGN.md, "Known traps").
//! [`split`] takes them out of a batch, as the command table says; a client's
//! [`Pool`] runs each on a connection that carries nothing else meanwhile:
//! - opened on demand with the client's settings and handshake (TLS, ACL, db,
//!   connection name; in Sentinel mode the master the sentinels name; on a
//!   cluster, the node serving the keys' slot, MOVED and ASK followed);
//! - kept when the command has answered, for the next one, and closed after
//!   `blocking.idleMs` unused;
//! - at most `blocking.maxConnections` at once: one more blocking call fails
//!   at once (`ERR_CONNECTION`, nothing sent) instead of queueing behind calls
//!   that may never end;
//! - a call's deadline is its block time plus `commandTimeoutMs` (none for a
//!   block of 0): past it, `ERR_TIMEOUT`, and its connection is dropped;
//! - `close()` fails the calls still blocked with `ERR_CLOSED` at once and
//!   drops every connection (the server then unblocks them).
//!
//! WAIT and WAITAOF stay on the shared connection: they wait for the writes
//! made on the connection they are sent on. In `multi()` a blocking command
//! does not block (Redis runs it at once); in `pipeline()` it stays with its
//! pipeline on the shared connection.
//!
//! ```
//! use atlas_redis::engine::dedicated::blocking;
//! let mut blpop = redis::cmd("BLPOP");
//! blpop.arg("jobs").arg("1.5");
//! let (block, _slot) = blocking(&blpop).unwrap();
//! assert_eq!(block, Some(std::time::Duration::from_millis(1500)));
//! assert!(blocking(redis::cmd("XREAD").arg("STREAMS").arg("s").arg("0")).is_none());
//! ```

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{Cmd, ServerErrorKind, Value};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

use crate::bridge::outbox::{Completion, Outbox};
use crate::commands::{table, Shape};
use crate::engine::config::Config;
use crate::engine::sentinel::{self, Sentinels};
use crate::engine::{cluster, connect, runtime, tls, Batch, Entry};
use crate::error::{Error, ErrorCode, Result};
use crate::stats::Stats;

/// The response timeout of a call that may block forever (BLPOP … 0): redis-rs
/// wants one; a dead peer is found by TCP keepalive instead.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// How a command blocks, if it does: how long the server may hold it (`None`:
/// until something arrives) and the cluster slot of its keys.
pub fn blocking(cmd: &Cmd) -> Option<(Option<Duration>, Option<u16>)> {
  let mut args = cmd.args_iter().map(|a| match a {
    redis::Arg::Simple(b) => b,
    _ => b"0",
  });
  let name = args.next()?;
  if !may_block(name) {
    return None;
  }
  let rest: Vec<&[u8]> = args.collect();
  let c = table::lookup(name, &rest)?;
  // `None`: not blocking, or a timeout the server refuses at once.
  let ms = table::block_timeout_ms(c, &rest)?;
  let slot = table::routing_positions(c, &rest)
    .first()
    .map(|&i| cluster::slot(rest[i]));
  Some((ms.map(Duration::from_millis), slot))
}

/// Whether `name` is one of the commands the table flags BLOCKING, WAIT and
/// WAITAOF aside (they stay on the connection whose writes they wait for). A
/// look-up in the table would cost ten times more: most names are told apart
/// by their first letter (B or X today), the rest by a few comparisons.
fn may_block(name: &[u8]) -> bool {
  struct Names {
    first: [bool; 256],
    names: Vec<&'static str>,
  }
  static NAMES: OnceLock<Names> = OnceLock::new();
  let n = NAMES.get_or_init(|| {
    let names: Vec<&'static str> = table::commands()
      .iter()
      .filter(|c| c.has(table::flags::BLOCKING) && !c.name.starts_with("wait"))
      .map(|c| c.name)
      .collect();
    let mut first = [false; 256];
    for b in names.iter().filter_map(|n| n.bytes().next()) {
      first[b.to_ascii_lowercase() as usize] = true;
      first[b.to_ascii_uppercase() as usize] = true;
    }
    Names { first, names }
  });
  name.first().is_some_and(|&b| n.first[b as usize])
    && n
      .names
      .iter()
      .any(|x| x.as_bytes().eq_ignore_ascii_case(name))
}

/// A blocking call taken out of a batch.
pub struct Call {
  pub cmd: Cmd,
  pub entry: Entry,
  /// How long the server may hold it; `None`: until something arrives.
  pub block: Option<Duration>,
  /// The cluster slot of its keys.
  pub slot: Option<u16>,
}

/// Takes the blocking calls out of `batch`. Only `command()` entries
/// (`Shape::Raw`: every typed command in TS goes through it) are looked at;
/// a batch without one comes back untouched, at the cost of one pass over
/// its entries.
pub fn split(batch: Batch) -> (Batch, Vec<Call>) {
  let mut found = Vec::new();
  let mut at = 0;
  for (k, e) in batch.entries.iter().enumerate() {
    if e.shape == Shape::Raw {
      if let Some(how) = batch.cmds.get(at).and_then(blocking) {
        found.push((k, how));
      }
    }
    at += e.shape.replies();
  }
  if found.is_empty() {
    return (batch, Vec::new());
  }
  let Batch {
    cmds,
    entries,
    created,
  } = batch;
  let mut kept_cmds = Vec::with_capacity(cmds.len() - found.len());
  let mut kept = Vec::with_capacity(entries.len() - found.len());
  let mut calls = Vec::with_capacity(found.len());
  let mut found = found.into_iter().peekable();
  let mut cmds = cmds.into_iter();
  for (k, entry) in entries.into_iter().enumerate() {
    match found.next_if(|(f, _)| *f == k) {
      Some((_, (block, slot))) => calls.push(Call {
        cmd: cmds.next().expect("a command per entry"),
        entry,
        block,
        slot,
      }),
      None => {
        kept_cmds.extend(cmds.by_ref().take(entry.shape.replies()));
        kept.push(entry);
      }
    }
  }
  let rest = Batch {
    cmds: kept_cmds,
    entries: kept,
    created,
  };
  (rest, calls)
}

/// `(host, port)` of a cluster node; `None` for the client's one server.
type Addr = Option<(String, u16)>;

/// One dedicated connection; its driver stops when it is dropped.
struct Link {
  conn: MultiplexedConnection,
  driver: JoinHandle<()>,
}

impl Link {
  /// False once the server closed it.
  fn alive(&self) -> bool {
    !self.driver.is_finished()
  }
}

impl Drop for Link {
  fn drop(&mut self) {
    self.driver.abort();
  }
}

struct Idle {
  at: Addr,
  link: Link,
  since: Instant,
}

struct Running {
  entry: Entry,
  task: Option<AbortHandle>,
}

#[derive(Default)]
struct State {
  closed: bool,
  next_id: u64,
  /// Calls under way: counted against the cap, failed by `close()`.
  running: HashMap<u64, Running>,
  /// Connections free for the next call, oldest first.
  idle: Vec<Idle>,
  /// The idle reaper runs.
  reaping: bool,
}

struct Shared {
  cfg: Arc<Config>,
  outbox: Arc<Outbox>,
  stats: Arc<Stats>,
  tls: OnceLock<Result<Option<tls::Connector>>>,
  sentinels: Option<Arc<Sentinels>>,
  state: Mutex<State>,
  /// Cluster: the node of a slot, from CLUSTER SLOTS and MOVED replies.
  slots: Mutex<HashMap<u16, (String, u16)>>,
}

/// A client's dedicated connections.
pub struct Pool {
  shared: Arc<Shared>,
}

impl Pool {
  pub fn new(cfg: &Config, outbox: Arc<Outbox>, stats: Arc<Stats>) -> Pool {
    Pool {
      shared: Arc::new(Shared {
        cfg: Arc::new(cfg.clone()),
        outbox,
        stats,
        tls: OnceLock::new(),
        sentinels: cfg.sentinel.as_ref().map(Sentinels::new),
        state: Mutex::new(State::default()),
        slots: Mutex::new(HashMap::new()),
      }),
    }
  }

  /// Starts each call on a connection of its own.
  pub fn send(&self, calls: Vec<Call>) {
    let s = &self.shared;
    let max = s.cfg.blocking.max_connections;
    let mut refused = Vec::new();
    for call in calls {
      let mut st = s.state.lock();
      let error = if st.closed {
        Error::closed()
      } else if st.running.len() >= max {
        Error::new(
          ErrorCode::Connection,
          format!(
            "{max} blocking commands already wait on this client's dedicated connections (option blocking.maxConnections); this call was not sent"
          ),
        )
      } else {
        let id = st.next_id;
        st.next_id += 1;
        st.running.insert(
          id,
          Running {
            entry: call.entry,
            task: None,
          },
        );
        // The task cannot finish before its handle is stored: it needs the lock.
        let task = runtime().spawn(run(s.clone(), id, call));
        if let Some(r) = st.running.get_mut(&id) {
          r.task = Some(task.abort_handle());
        }
        continue;
      };
      drop(st);
      refused.push(Completion::Error {
        id: call.entry.id,
        error,
      });
    }
    s.outbox.push_all(&mut refused);
  }

  /// Fails the calls still blocked with `ERR_CLOSED` and drops every connection.
  pub fn close(&self) {
    let (running, idle) = {
      let mut st = self.shared.state.lock();
      st.closed = true;
      (
        std::mem::take(&mut st.running),
        std::mem::take(&mut st.idle),
      )
    };
    drop(idle);
    let mut done: Vec<Completion> = running
      .into_values()
      .map(|r| {
        if let Some(t) = r.task {
          // Dropping the task's future drops its connection.
          t.abort();
        }
        Completion::Error {
          id: r.entry.id,
          error: Error::closed(),
        }
      })
      .collect();
    self.shared.outbox.push_all(&mut done);
  }
}

impl Drop for Pool {
  fn drop(&mut self) {
    self.close();
  }
}

async fn run(s: Arc<Shared>, id: u64, call: Call) {
  let Call {
    cmd,
    entry,
    block,
    slot,
  } = call;
  let r = s.execute(&cmd, block, slot).await;
  let mut st = s.state.lock();
  if st.running.remove(&id).is_none() {
    return; // close() answered it
  }
  // Under the lock: close() never answers it too, and its ERR_CLOSED ones come
  // before the client's `closed` event.
  s.outbox.push(match r {
    Ok(reply) => Completion::Reply {
      id: entry.id,
      shape: entry.shape,
      reply,
    },
    Err(error) => Completion::Error {
      id: entry.id,
      error,
    },
  });
}

/// `host:port` of a MOVED or ASK reply.
fn redirect(e: &redis::ServerError) -> Option<(String, u16)> {
  let addr = e.details()?.split_ascii_whitespace().nth(1)?;
  let (h, p) = addr.rsplit_once(':')?;
  let h = h.trim_start_matches('[').trim_end_matches(']');
  Some((h.to_string(), p.parse().ok()?))
}

impl Shared {
  fn where_(&self, at: &Addr) -> String {
    match at {
      Some((h, p)) => sentinel::addr(h, *p),
      None => self.cfg.address(),
    }
  }

  /// Runs `cmd` on a dedicated connection, following cluster redirections.
  async fn execute(
    self: &Arc<Self>,
    cmd: &Cmd,
    block: Option<Duration>,
    slot: Option<u16>,
  ) -> Result<Value> {
    let cluster = self.cfg.cluster.as_ref();
    let max = cluster.map_or(1, |c| c.max_redirections);
    let deadline = block.map(|b| b + self.cfg.command_timeout);
    let mut moved: Option<(String, u16)> = None;
    let mut asking = false;
    let mut attempt = 0u32;
    loop {
      let (at, mut link) = self.connection(slot, moved.take()).await?;
      let mut pipe = redis::pipe();
      if asking {
        pipe.cmd("ASKING");
      }
      pipe.add_command(cmd.clone());
      link.conn.set_response_timeout(deadline.unwrap_or(FOREVER));
      let reply = link
        .conn
        .send_packed_commands(&pipe, asking as usize, 1)
        .await
        .map(|mut v| v.pop().unwrap_or(Value::Nil));
      asking = false;
      let reply = match reply {
        Ok(v) => v,
        Err(e) if e.is_timeout() => {
          self
            .stats
            .timeouts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
          return Err(Error::new(
            ErrorCode::Timeout,
            format!(
              "no reply from {} within {} ms (the block time plus commandTimeoutMs); the command may or may not have run",
              self.where_(&at),
              deadline.unwrap_or_default().as_millis()
            ),
          ));
        }
        Err(e) => {
          let mut cfg = (*self.cfg).clone();
          if let Some((h, p)) = &at {
            (cfg.host, cfg.port, cfg.sentinel) = (h.clone(), *p, None);
          }
          let error = connect::classify(&cfg, &e);
          return Err(Error::new(
            error.code,
            format!("{}; the command may or may not have run", error.message),
          ));
        }
      };
      let Value::ServerError(se) = &reply else {
        self.give_back(at, link);
        return Ok(reply);
      };
      if attempt >= max {
        self.give_back(at, link);
        return Ok(reply);
      }
      attempt += 1;
      match (cluster, se.kind()) {
        (Some(_), Some(ServerErrorKind::Moved)) => {
          let to = redirect(se);
          if let (Some(s), Some(to)) = (slot, &to) {
            self.slots.lock().insert(s, to.clone());
          }
          moved = to;
        }
        (Some(_), Some(ServerErrorKind::Ask)) => {
          moved = redirect(se);
          asking = true;
        }
        (Some(_), Some(ServerErrorKind::TryAgain | ServerErrorKind::ClusterDown)) => {
          tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
        }
        // The server behind this address was demoted (a failover): nothing ran;
        // a new connection finds the new primary (in Sentinel mode).
        (None, _) if se.code() == "READONLY" => {
          self.state.lock().idle.clear();
          continue;
        }
        _ => {
          self.give_back(at, link);
          return Ok(reply);
        }
      }
      self.give_back(at, link);
    }
  }

  /// An idle connection to where the call must go, or a new one. `to`: where a
  /// redirection points; else the node a MOVED named for `slot`; should that
  /// fail (nothing was sent), or be unknown, the seeds in turn (a cluster). Or
  /// the client's server.
  async fn connection(&self, slot: Option<u16>, to: Option<(String, u16)>) -> Result<(Addr, Link)> {
    let candidates: Vec<Addr> = match &self.cfg.cluster {
      None => vec![None],
      Some(c) => {
        if let (None, Some(s)) = (&to, slot) {
          if !self.slots.lock().contains_key(&s) {
            self.learn_slots().await;
          }
        }
        let known = to.or_else(|| slot.and_then(|s| self.slots.lock().get(&s).cloned()));
        known
          .into_iter()
          .chain(c.nodes.iter().cloned())
          .map(Some)
          .collect()
      }
    };
    let mut last = None;
    for at in candidates {
      if let Some(link) = self.take_idle(&at) {
        return Ok((at, link));
      }
      match self.open(&at).await {
        Ok(link) => return Ok((at, link)),
        Err(e) => {
          if let (Some(s), Some(_)) = (slot, &at) {
            // That node may be gone (a failover): ask the seeds next time.
            self.slots.lock().remove(&s);
          }
          last = Some(e);
        }
      }
    }
    Err(last.unwrap_or_else(|| Error::new(ErrorCode::Connection, "no node to connect to")))
  }

  /// Cluster: reads the whole slot map (CLUSTER SLOTS from the first seed that
  /// answers), so that a call goes to its slot's master without a MOVED first.
  /// On failure the map stays as it is: the seeds and MOVED replies still lead.
  async fn learn_slots(&self) {
    let Some(c) = &self.cfg.cluster else { return };
    for seed in &c.nodes {
      let Ok(mut link) = self.open(&Some(seed.clone())).await else {
        continue;
      };
      let ask = redis::cmd("CLUSTER").arg("SLOTS").clone();
      let reply = tokio::time::timeout(
        self.cfg.command_timeout,
        link.conn.send_packed_command(&ask),
      )
      .await;
      if let Ok(Ok(v)) = reply {
        if let Some(map) = cluster::parse_slot_map(v, &seed.0) {
          let mut slots = self.slots.lock();
          for (first, last, node) in map {
            for s in first..=last {
              slots.insert(s, node.clone());
            }
          }
          return;
        }
      }
    }
  }

  /// A live idle connection to `at`; otherwise makes room for a new one
  /// (connections stay within the cap: the oldest idle one goes).
  fn take_idle(&self, at: &Addr) -> Option<Link> {
    let mut st = self.state.lock();
    while let Some(i) = st.idle.iter().rposition(|x| &x.at == at) {
      let idle = st.idle.remove(i);
      if idle.link.alive() {
        return Some(idle.link);
      }
    }
    if !st.idle.is_empty() && st.running.len() + st.idle.len() > self.cfg.blocking.max_connections {
      st.idle.remove(0);
    }
    None
  }

  async fn open(&self, at: &Addr) -> Result<Link> {
    let tls = self
      .tls
      .get_or_init(|| self.cfg.tls.as_ref().map(tls::connector).transpose())
      .clone()?;
    let opened = async {
      match (at, &self.sentinels) {
        (Some((host, port)), _) => {
          let mut node = (*self.cfg).clone();
          (node.host, node.port) = (host.clone(), *port);
          connect::open(&node, tls.as_ref(), None).await
        }
        (None, Some(sn)) => sentinel::open_master(&self.cfg, sn, tls.as_ref(), None).await,
        (None, None) => connect::open(&self.cfg, tls.as_ref(), None).await,
      }
    };
    let (conn, driver) = tokio::time::timeout(self.cfg.connect_timeout, opened)
      .await
      .map_err(|_| {
        Error::new(
          ErrorCode::Connection,
          format!(
            "cannot reach {} (timed out after {} ms)",
            self.where_(at),
            self.cfg.connect_timeout.as_millis()
          ),
        )
      })??;
    Ok(Link {
      conn,
      driver: tokio::spawn(driver),
    })
  }

  /// Keeps `link` for the next call (while the client is open and it is alive).
  fn give_back(self: &Arc<Self>, at: Addr, link: Link) {
    let mut st = self.state.lock();
    if st.closed || !link.alive() {
      return;
    }
    st.idle.push(Idle {
      at,
      link,
      since: Instant::now(),
    });
    if !st.reaping {
      st.reaping = true;
      tokio::spawn(reap(Arc::downgrade(self)));
    }
  }
}

/// Closes connections idle for `blocking.idleMs`; ends when none is left.
async fn reap(pool: Weak<Shared>) {
  loop {
    let wait = {
      let Some(s) = pool.upgrade() else { return };
      let idle_for = s.cfg.blocking.idle;
      let mut st = s.state.lock();
      let now = Instant::now();
      st.idle
        .retain(|i| now.duration_since(i.since) < idle_for && i.link.alive());
      match st.idle.iter().map(|i| i.since).min() {
        Some(oldest) => (oldest + idle_for).saturating_duration_since(now),
        None => {
          st.reaping = false;
          return;
        }
      }
    };
    tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn cmd(words: &[&str]) -> Cmd {
    let mut c = redis::cmd(words[0]);
    for w in &words[1..] {
      c.arg(*w);
    }
    c
  }

  fn entry(id: u32, shape: Shape) -> Entry {
    Entry { id, shape }
  }

  #[test]
  fn blocking_commands_are_told_by_the_table() {
    let b = |w: &[&str]| blocking(&cmd(w)).map(|(block, _)| block);
    assert_eq!(b(&["BLPOP", "k", "0"]), Some(None));
    assert_eq!(
      b(&["brpop", "a", "b", "2"]),
      Some(Some(Duration::from_secs(2)))
    );
    assert_eq!(
      b(&["BLMOVE", "a", "b", "LEFT", "RIGHT", "0.25"]),
      Some(Some(Duration::from_millis(250)))
    );
    assert_eq!(b(&["BZPOPMIN", "z", "0"]), Some(None));
    assert_eq!(
      b(&["XREAD", "BLOCK", "100", "STREAMS", "s", "$"]),
      Some(Some(Duration::from_millis(100)))
    );
    assert_eq!(
      b(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">"
      ]),
      Some(None)
    );
    // Not blocking, or answered at once.
    assert_eq!(b(&["XREAD", "STREAMS", "s", "0"]), None);
    assert_eq!(b(&["BLPOP", "k", "-1"]), None);
    assert_eq!(b(&["BITCOUNT", "k"]), None);
    assert_eq!(b(&["GET", "k"]), None);
    assert_eq!(b(&["WAIT", "1", "0"]), None);
  }

  #[test]
  fn the_slot_is_the_first_keys() {
    let (_, slot) = blocking(&cmd(&["BLPOP", "{q}:a", "{q}:b", "1"])).unwrap();
    assert_eq!(slot, Some(cluster::slot(b"q")));
    let (_, slot) = blocking(&cmd(&["XREAD", "BLOCK", "1", "STREAMS", "s1", "0"])).unwrap();
    assert_eq!(slot, Some(cluster::slot(b"s1")));
  }

  #[test]
  fn split_takes_out_only_the_blocking_calls() {
    let group = Shape::Group {
      replies: 3,
      atomic: true,
    };
    let batch = Batch {
      cmds: vec![
        cmd(&["GET", "a"]),
        cmd(&["BLPOP", "q", "0"]),
        cmd(&["MULTI"]),
        cmd(&["BLPOP", "q", "0"]),
        cmd(&["EXEC"]),
        cmd(&["XREAD", "BLOCK", "5", "STREAMS", "s", "$"]),
        cmd(&["LPOP", "q"]),
      ],
      entries: vec![
        entry(1, Shape::Str),
        entry(2, Shape::Raw),
        entry(3, group),
        entry(4, Shape::Raw),
        entry(5, Shape::Raw),
      ],
      created: Instant::now(),
    };
    let (rest, calls) = split(batch);
    let ids: Vec<u32> = calls.iter().map(|c| c.entry.id).collect();
    assert_eq!(ids, [2, 4]);
    assert_eq!(calls[1].block, Some(Duration::from_millis(5)));
    let kept: Vec<u32> = rest.entries.iter().map(|e| e.id).collect();
    assert_eq!(kept, [1, 3, 5]);
    let names: Vec<Vec<u8>> = rest
      .cmds
      .iter()
      .map(|c| match c.args_iter().next() {
        Some(redis::Arg::Simple(b)) => b.to_vec(),
        _ => vec![],
      })
      .collect();
    assert_eq!(
      names,
      [&b"GET"[..], b"MULTI", b"BLPOP", b"EXEC", b"LPOP"].map(|n| n.to_vec())
    );
  }

  #[test]
  fn a_batch_without_blocking_calls_comes_back_whole() {
    let batch = Batch {
      cmds: vec![cmd(&["GET", "a"]), cmd(&["LPUSH", "q", "x"])],
      entries: vec![entry(1, Shape::Str), entry(2, Shape::Raw)],
      created: Instant::now(),
    };
    let (rest, calls) = split(batch);
    assert!(calls.is_empty());
    assert_eq!(rest.entries.len(), 2);
    assert_eq!(rest.cmds.len(), 2);
  }

  #[test]
  fn redirections_name_their_node() {
    let e: redis::ServerError = match redis::parse_redis_value(b"-MOVED 3999 127.0.0.1:6381\r\n") {
      Ok(Value::ServerError(e)) => e,
      other => panic!("{other:?}"),
    };
    assert_eq!(redirect(&e), Some(("127.0.0.1".into(), 6381)));
  }
}
