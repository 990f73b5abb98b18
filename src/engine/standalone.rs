//! One client's connection to a standalone server (or a Sentinel-managed
//! master): a redis-rs `MultiplexedConnection` and the supervisor around it.
//!
//! Each batch from the JS thread goes out as one redis-rs pipeline. The
//! supervisor adds the policy redis-rs leaves to its user:
//! - nothing is ever sent twice: a command whose connection drops before its
//!   reply rejects with `ERR_CONNECTION` (it may or may not have run);
//! - while the server is unreachable, calls fail at once instead of queueing
//!   without bound (only the first reconnect attempt is waited for);
//! - a connection that stops answering without closing (half-open TCP, a
//!   command that blocks the server side) is found by a PING after any
//!   timeout, and replaced;
//! - a `READONLY` reply (the primary behind this address was demoted) and a
//!   Sentinel `+switch-master` reconnect, so the new primary is found.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::sync::Notify;
use tokio::time::timeout;

use crate::bridge::outbox::{Completion, Event, Outbox};
use crate::engine::config::Config;
use crate::engine::connect::{self, Driver};
use crate::engine::driver::{SharedDriver, Task};
use crate::engine::sentinel::{self, Sentinels};
use crate::engine::uv::EventLoop;
use crate::engine::{backoff, reject_all, runtime, tls, Batch};
use crate::error::{Error, ErrorCode, Result};
use crate::stats::Stats;

/// Batches held while the first reconnect attempt runs; beyond this they fail at once.
const MAX_WAITING: usize = 100_000;
/// Bytes of commands sent and not yet answered past which a new call fails at
/// once: a server that stopped reading must not make the process buffer
/// without bound (redis-rs queues whatever it is given).
pub const MAX_UNANSWERED_BYTES: usize = 64 * 1024 * 1024;
/// Batches on the wire at once while many commands are unanswered: past it a
/// new batch waits (`Link::held`), merged with the ones after it, until one
/// is answered. Without the cap, a tick's few calls go out alone while Redis
/// still works on earlier ones, Redis answers them alone, and the connection
/// settles into rounds of a few commands, each paying a write and a read on
/// both sides (ADR 0001: 6.6 commands per write at 100 callers).
const MAX_BATCHES_AHEAD: usize = 2;
/// ... unless fewer replies than this are owed: then Redis may be idle, and a
/// batch goes at once (a few callers keep their latency).
const HOLD_FROM_REPLIES: usize = 32;

/// About how many bytes `cmds` take on the wire.
fn wire_bytes(cmds: &[redis::Cmd]) -> usize {
  cmds
    .iter()
    .map(|c| {
      c.args_iter()
        .map(|a| match a {
          redis::Arg::Simple(b) => b.len() + 16,
          _ => 16,
        })
        .sum::<usize>()
    })
    .sum()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
  /// Before the first connection is up.
  Connecting,
  Up,
  /// Lost; `first_attempt` while the first reconnect attempt is still running.
  Down {
    first_attempt: bool,
  },
  Closed,
}

struct Link {
  phase: Phase,
  conn: Option<MultiplexedConnection>,
  /// Its driver: the JS thread polls it after queuing a batch (see `driver`).
  driver: Option<Arc<SharedDriver>>,
  /// Bumped on every new connection: news about an older one is ignored.
  generation: u64,
  waiting: VecDeque<Batch>,
  /// Batches sent and not yet answered: `close()` waits for them.
  in_flight: usize,
  /// Their replies on the wire.
  in_flight_replies: usize,
  /// Their size (see `MAX_UNANSWERED_BYTES`).
  unanswered_bytes: usize,
  /// Batches that wait, merged, for one in flight to be answered (see
  /// `MAX_BATCHES_AHEAD`); never written yet, so a lost connection keeps
  /// them for the next one, like the batches sent while it reconnects.
  held: Option<Batch>,
  held_bytes: usize,
  closing: bool,
  probing: bool,
  last_error: Option<Error>,
}

struct Shared {
  cfg: Arc<Config>,
  outbox: Arc<Outbox>,
  stats: Arc<Stats>,
  link: Mutex<Link>,
  /// Wakes the supervisor: a lost connection, `close()`, a Sentinel switch.
  wake: Arc<Notify>,
  cache_epoch: Arc<AtomicU32>,
  /// The JS thread's event loop, which then drives the connection's socket.
  home: Option<Arc<EventLoop>>,
}

/// The JS thread's handle on a client's connection.
pub struct Connection {
  /// Bumped (after the event is queued) on every invalidation or cache reset,
  /// so the JS thread can tell, without a call, that it must drain first.
  pub cache_epoch: Arc<AtomicU32>,
  shared: Arc<Shared>,
}

fn not_connected(cfg: &Config, last: Option<&Error>) -> Error {
  let why = last
    .map(|e| e.message.as_str())
    .unwrap_or("not connected yet");
  Error::new(
    ErrorCode::Connection,
    format!("not connected to {} ({why}); reconnecting", cfg.address()),
  )
}

impl Connection {
  /// Starts connecting; [`Event::Ready`] or [`Event::ConnectFailed`] follows
  /// in the outbox. With `home`, the connection's socket is read and written
  /// on that event loop's thread (memory:// stays on the I/O thread).
  pub fn start(
    config: Config,
    outbox: Arc<Outbox>,
    stats: Arc<Stats>,
    home: Option<Arc<EventLoop>>,
  ) -> Connection {
    let cache_epoch = Arc::new(AtomicU32::new(0));
    let home = home.filter(|_| config.memory.is_none());
    let shared = Arc::new(Shared {
      home,
      cfg: Arc::new(config),
      outbox,
      stats,
      link: Mutex::new(Link {
        phase: Phase::Connecting,
        conn: None,
        driver: None,
        generation: 0,
        waiting: VecDeque::new(),
        in_flight: 0,
        in_flight_replies: 0,
        unanswered_bytes: 0,
        held: None,
        held_bytes: 0,
        closing: false,
        probing: false,
        last_error: None,
      }),
      wake: Arc::new(Notify::new()),
      cache_epoch: cache_epoch.clone(),
    });
    let task = runtime().spawn(supervise(shared.clone()));
    // If the supervisor panics (a bug), fail what it held instead of leaving callers hanging.
    let watched = shared.clone();
    runtime().spawn(async move {
      if let Err(e) = task.await {
        if e.is_panic() {
          watched.fail_after_panic();
        }
      }
    });
    Connection {
      cache_epoch,
      shared,
    }
  }

  /// Hands a batch to the connection.
  pub fn send(&self, batch: Batch) {
    let s = &self.shared;
    let mut l = s.link.lock();
    let error = match l.phase {
      _ if l.closing => Error::closed(),
      Phase::Closed => Error::closed(),
      Phase::Up => {
        // Entries (a transaction spans several commands) are taken while the
        // unanswered bytes stay under the cap; one alone may be larger.
        let Batch {
          cmds,
          entries,
          created,
        } = batch;
        let mut cmds = cmds.into_iter();
        let (mut taken_cmds, mut taken, mut refused) = (Vec::new(), Vec::new(), Vec::new());
        let mut bytes = 0usize;
        for e in entries {
          let group: Vec<redis::Cmd> = cmds.by_ref().take(e.shape.replies()).collect();
          let b = wire_bytes(&group);
          let pending = l.unanswered_bytes + l.held_bytes + bytes;
          if refused.is_empty() && (pending == 0 || pending + b <= MAX_UNANSWERED_BYTES) {
            bytes += b;
            taken_cmds.extend(group);
            taken.push(e);
          } else {
            refused.push(e);
          }
        }
        let batch = Batch {
          cmds: taken_cmds,
          entries: taken,
          created,
        };
        let sent = if batch.entries.is_empty() {
          None
        } else if l.held.is_some()
          || (l.in_flight >= MAX_BATCHES_AHEAD && l.in_flight_replies >= HOLD_FROM_REPLIES)
        {
          l.held_bytes += bytes;
          match &mut l.held {
            Some(held) => held.append(batch),
            None => l.held = Some(batch),
          }
          None
        } else {
          Some(l.start(s, batch, bytes))
        };
        drop(l);
        // Written from this thread, without waking the I/O thread.
        if let Some((driver, task)) = sent {
          driver.submit(task);
        }
        if !refused.is_empty() {
          let e = Error::new(
            ErrorCode::Connection,
            format!(
              "more than {} MB of commands wait for {} to answer (is it reachable?); this call was not sent",
              MAX_UNANSWERED_BYTES >> 20,
              s.cfg.address()
            ),
          );
          reject_all(&s.outbox, &refused, &e);
        }
        return;
      }
      Phase::Down {
        first_attempt: true,
      } if l.waiting.len() < MAX_WAITING => {
        l.waiting.push_back(batch);
        return;
      }
      Phase::Down { .. } | Phase::Connecting => not_connected(&s.cfg, l.last_error.as_ref()),
    };
    drop(l);
    reject_all(&s.outbox, &batch.entries, &error);
  }

  /// Asks the supervisor to finish what is in flight and disconnect.
  pub fn close(&self) {
    let mut l = self.shared.link.lock();
    l.closing = true;
    let ended = l.phase == Phase::Closed;
    drop(l);
    if ended {
      self.shared.outbox.push(Completion::Event(Event::Closed));
    } else {
      self.shared.wake.notify_one();
    }
  }
}

impl Drop for Connection {
  /// A client dropped without `close()` (garbage-collected) still winds down.
  fn drop(&mut self) {
    self.shared.link.lock().closing = true;
    self.shared.wake.notify_one();
  }
}

impl Link {
  /// Counts `batch` in flight; the task that writes it, for its driver.
  fn start(
    &mut self,
    s: &Arc<Shared>,
    batch: Batch,
    bytes: usize,
  ) -> (Arc<SharedDriver>, Arc<Task>) {
    let conn = self.conn.clone().expect("a connection while up");
    let driver = self.driver.clone().expect("a driver while up");
    self.in_flight += 1;
    self.in_flight_replies += batch.wire_replies();
    self.unanswered_bytes += bytes;
    let task = Task::new(run_batch(s.clone(), conn, self.generation, batch, bytes));
    (driver, task)
  }

  /// The held batch, started, once fewer than `MAX_BATCHES_AHEAD` are in flight.
  fn start_held(&mut self, s: &Arc<Shared>) -> Option<(Arc<SharedDriver>, Arc<Task>)> {
    if self.phase != Phase::Up || self.in_flight >= MAX_BATCHES_AHEAD {
      return None;
    }
    let batch = self.held.take()?;
    let bytes = std::mem::take(&mut self.held_bytes);
    Some(self.start(s, batch, bytes))
  }

  /// A lost connection's held batch waits for the next one.
  fn keep_held(&mut self) {
    if let Some(b) = self.held.take() {
      self.held_bytes = 0;
      self.waiting.push_back(b);
    }
  }
}

/// Sends one batch as a pipeline and hands its replies (or its error) to JS.
async fn run_batch(
  s: Arc<Shared>,
  mut conn: MultiplexedConnection,
  generation: u64,
  batch: Batch,
  bytes: usize,
) {
  let Batch {
    cmds,
    entries,
    created,
  } = batch;
  let mut pipe = redis::Pipeline::with_capacity(cmds.len());
  for c in cmds {
    pipe.add_command(c);
  }
  // A transaction's entry spans several commands (and replies).
  let wire: usize = entries.iter().map(|e| e.shape.replies()).sum();
  let result = conn.send_packed_commands(&pipe, 0, wire).await;
  match result {
    Ok(values) => {
      s.stats
        .record_replies(created.elapsed().as_micros() as u64, entries.len() as u64);
      let mut demoted = false;
      let mut done: Vec<Completion> = crate::engine::replies_by_entry(&entries, values)
        .into_iter()
        .map(|(e, reply)| {
          if let Value::ServerError(err) = &reply {
            demoted |= err.code() == "READONLY";
          }
          Completion::Reply {
            id: e.id,
            shape: e.shape,
            reply,
          }
        })
        .collect();
      s.outbox.push_all(&mut done);
      if demoted {
        s.lost(
          generation,
          Error::new(
            ErrorCode::Connection,
            format!(
              "{} answered READONLY (no longer the primary); reconnecting",
              s.cfg.address()
            ),
          ),
        );
      }
    }
    Err(e) => {
      let error = s.cfg.redact(connect::classify(&s.cfg, &e));
      if error.code == ErrorCode::Timeout {
        s.stats.timeouts.fetch_add(entries.len() as u64, Relaxed);
        reject_all(&s.outbox, &entries, &error);
        s.probe(conn, generation);
      } else {
        let error = Error::new(
          error.code,
          format!("{}; the command may or may not have run", error.message),
        );
        reject_all(&s.outbox, &entries, &error);
        s.lost(generation, error);
      }
    }
  }
  let mut l = s.link.lock();
  l.in_flight -= 1;
  l.in_flight_replies = l.in_flight_replies.saturating_sub(wire);
  l.unanswered_bytes = l.unanswered_bytes.saturating_sub(bytes);
  let held = l.start_held(&s);
  let ended = l.closing && l.in_flight == 0;
  drop(l);
  if let Some((driver, task)) = held {
    driver.submit(task);
  }
  if ended {
    s.wake.notify_one();
  }
}

impl Shared {
  /// After a timeout: is the connection still answering? A PING must come
  /// back within `commandTimeoutMs`, or the connection is replaced (it is
  /// half-open, or a command holds the server side of it).
  fn probe(self: &Arc<Self>, mut conn: MultiplexedConnection, generation: u64) {
    {
      let mut l = self.link.lock();
      if l.probing || l.generation != generation || l.phase != Phase::Up {
        return;
      }
      l.probing = true;
    }
    // A slow command or a brief pause is not a dead connection: the PING gets
    // longer than the command that timed out.
    let grace = (2 * self.cfg.command_timeout).max(std::time::Duration::from_secs(2));
    conn.set_response_timeout(grace);
    let s = self.clone();
    runtime().spawn(async move {
      let r = conn.send_packed_command(&redis::cmd("PING")).await;
      s.link.lock().probing = false;
      if r.is_err() {
        s.lost(
          generation,
          Error::new(
            ErrorCode::Connection,
            format!(
              "connection to {} stopped answering (no reply to PING within {} ms)",
              s.cfg.address(),
              grace.as_millis()
            ),
          ),
        );
      }
    });
  }

  /// The connection of `generation` is gone (or must go).
  fn lost(&self, generation: u64, error: Error) {
    let mut l = self.link.lock();
    if l.generation != generation || l.phase != Phase::Up {
      return;
    }
    l.phase = Phase::Down {
      first_attempt: true,
    };
    l.conn = None;
    l.driver = None;
    l.last_error = Some(error.clone());
    l.keep_held();
    drop(l);
    self.stats.reconnects.fetch_add(1, Relaxed);
    self
      .outbox
      .push(Completion::Event(Event::Reconnecting(error)));
    if self.cfg.client_cache.is_some() {
      // Invalidations may be missed while disconnected.
      self.outbox.push(Completion::Event(Event::CacheReset));
      self.cache_epoch.fetch_add(1, Relaxed);
    }
    self.wake.notify_one();
  }

  fn fail_after_panic(&self) {
    let error = Error::new(
      ErrorCode::Internal,
      "a bug in @atlas-erp/redis stopped this connection; the command may or may not have run",
    );
    let (waiting, was_connecting) = {
      let mut l = self.link.lock();
      let was_connecting = l.phase == Phase::Connecting;
      l.phase = Phase::Closed;
      l.conn = None;
      l.driver = None;
      l.keep_held();
      (std::mem::take(&mut l.waiting), was_connecting)
    };
    for b in waiting {
      reject_all(&self.outbox, &b.entries, &error);
    }
    self.outbox.push(Completion::Event(if was_connecting {
      Event::ConnectFailed(error)
    } else {
      Event::Closed
    }));
  }

  /// Installs a fresh connection and sends what waited for it.
  fn up(self: &Arc<Self>, conn: MultiplexedConnection, driver: Driver) -> u64 {
    let driver = SharedDriver::new(driver, self.home.clone());
    let (generation, waiting) = {
      let mut l = self.link.lock();
      l.generation += 1;
      l.phase = Phase::Up;
      l.conn = Some(conn.clone());
      l.driver = Some(driver.clone());
      l.last_error = None;
      l.in_flight += l.waiting.len();
      l.in_flight_replies += l.waiting.iter().map(Batch::wire_replies).sum::<usize>();
      (l.generation, std::mem::take(&mut l.waiting))
    };
    let s = self.clone();
    // Its first poll on the event loop moves the socket there.
    driver.wake();
    runtime().spawn(async move {
      driver.run().await;
      s.lost(
        generation,
        Error::new(
          ErrorCode::Connection,
          format!(
            "connection to {} lost (connection closed by the server)",
            s.cfg.address()
          ),
        ),
      );
    });
    for b in waiting {
      let bytes = wire_bytes(&b.cmds);
      self.link.lock().unanswered_bytes += bytes;
      runtime().spawn(run_batch(self.clone(), conn.clone(), generation, b, bytes));
    }
    generation
  }

  fn push_invalidation(&self, push: redis::PushInfo) {
    if push.kind == redis::PushKind::Invalidate {
      crate::engine::deliver_invalidation(&self.outbox, &self.cache_epoch, push.data);
    }
  }
}

/// Opens one connection (through the sentinels in Sentinel mode).
async fn open(
  s: &Arc<Shared>,
  tls: Option<&tls::Connector>,
  sentinels: Option<&Sentinels>,
) -> Result<(MultiplexedConnection, Driver)> {
  let weak = Arc::downgrade(s);
  let push: Option<Arc<dyn Fn(redis::PushInfo) + Send + Sync>> =
    s.cfg.client_cache.as_ref().map(|_| {
      Arc::new(move |p: redis::PushInfo| {
        if let Some(s) = weak.upgrade() {
          s.push_invalidation(p);
        }
      }) as Arc<dyn Fn(redis::PushInfo) + Send + Sync>
    });
  match sentinels {
    None => connect::open(&s.cfg, tls, push).await,
    Some(sn) => sentinel::open_master(&s.cfg, sn, tls, push).await,
  }
}

fn connect_timed_out(cfg: &Config) -> Error {
  Error::new(
    ErrorCode::Connection,
    format!(
      "cannot reach {} (timed out after {} ms)",
      cfg.address(),
      cfg.connect_timeout.as_millis()
    ),
  )
}

async fn supervise(s: Arc<Shared>) {
  let cfg = s.cfg.clone();
  let connector = match cfg.tls.as_ref().map(tls::connector).transpose() {
    Ok(c) => c,
    Err(e) => return s.connect_failed(e),
  };
  let sentinels = cfg.sentinel.as_ref().map(Sentinels::new);
  // Dropped when this task ends: the `+switch-master` watchers stop with it.
  let (_stop_watchers, stop) = tokio::sync::watch::channel(());
  if let Some(sn) = &sentinels {
    sentinel::watch_all(sn, &cfg, connector.clone(), &s.wake, &stop);
  }
  let first = timeout(
    cfg.connect_timeout,
    open(&s, connector.as_ref(), sentinels.as_deref()),
  )
  .await;
  let (mut conn, mut driver) = match first {
    Ok(Ok(c)) => c,
    Ok(Err(e)) => return s.connect_failed(cfg.redact(e)),
    Err(_) => return s.connect_failed(connect_timed_out(&cfg)),
  };
  let mut announce = true;
  'serve: loop {
    let generation = s.up(conn, driver);
    s.outbox
      .push(Completion::Event(if std::mem::take(&mut announce) {
        Event::Ready
      } else {
        Event::Reconnected
      }));
    // Serve until the connection is lost or the client closes.
    loop {
      if let Some(sn) = &sentinels {
        if sn.switched() {
          s.lost(
            generation,
            Error::new(
              ErrorCode::Connection,
              format!("{}: Sentinel announced a new master", cfg.address()),
            ),
          );
        }
      }
      {
        let mut l = s.link.lock();
        if l.closing && l.in_flight == 0 {
          l.conn = None;
          l.driver = None;
          break 'serve;
        }
        if l.phase != Phase::Up {
          break;
        }
      }
      s.wake.notified().await;
    }
    // Reconnect, with backoff; only the first attempt is waited for by callers.
    let mut attempt = 0u32;
    loop {
      if s.link.lock().closing {
        break 'serve;
      }
      let delay = backoff(attempt, cfg.reconnect_min, cfg.reconnect_max);
      if !delay.is_zero() {
        tokio::select! {
          _ = tokio::time::sleep(delay) => {}
          _ = s.wake.notified() => continue,
        }
      }
      let r = timeout(
        cfg.connect_timeout,
        open(&s, connector.as_ref(), sentinels.as_deref()),
      )
      .await;
      match r {
        Ok(Ok((c, d))) => {
          conn = c;
          driver = d;
          continue 'serve;
        }
        failed => {
          let e = match failed {
            Ok(Err(e)) => cfg.redact(e),
            _ => connect_timed_out(&cfg),
          };
          let waiting = {
            let mut l = s.link.lock();
            l.phase = Phase::Down {
              first_attempt: false,
            };
            l.last_error = Some(e.clone());
            std::mem::take(&mut l.waiting)
          };
          let err = not_connected(&cfg, Some(&e));
          for b in waiting {
            reject_all(&s.outbox, &b.entries, &err);
          }
        }
      }
      attempt = attempt.saturating_add(1);
    }
  }
  let waiting = {
    let mut l = s.link.lock();
    l.phase = Phase::Closed;
    l.conn = None;
    l.driver = None;
    std::mem::take(&mut l.waiting)
  };
  for b in waiting {
    reject_all(&s.outbox, &b.entries, &Error::closed());
  }
  s.outbox.push(Completion::Event(Event::Closed));
}

impl Shared {
  fn connect_failed(&self, e: Error) {
    self.link.lock().phase = Phase::Closed;
    self.outbox.push(Completion::Event(Event::ConnectFailed(e)));
  }
}
