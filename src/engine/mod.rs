//! The engine: redis-rs connections under the bridge (DESIGN.md, "Engine").
//!
//! redis-rs does the protocol work — RESP, pipelining, the connection driver,
//! pub/sub. This module adds what a shared Node client needs around it: one
//! I/O thread for every client of the process, a supervisor per client that
//! reconnects without replaying anything, fails fast while the server is
//! unreachable and drops a connection that stopped answering, Sentinel, and
//! pub/sub on connections of its own.
//!
//! ```
//! use std::time::Duration;
//! use atlas_redis::engine::backoff;
//! let d = backoff(3, Duration::from_millis(50), Duration::from_secs(2));
//! assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
//! ```

pub mod cluster;
pub mod cluster_node;
pub mod config;
pub mod connect;
pub mod dedicated;
pub mod driver;
pub mod pubsub;
pub mod sentinel;
pub mod standalone;
pub mod tls;
pub mod uv;
pub mod uv_socket;

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::bridge::outbox::Outbox;
use crate::commands::Shape;
use crate::engine::config::Config;
use crate::stats::Stats;

/// A client's connections: the one its calls share — to one server
/// (standalone, Sentinel, memory://) or a cluster — and the dedicated ones of
/// its blocking commands.
pub struct Connection {
  shared: Shared,
  blocking: dedicated::Pool,
}

enum Shared {
  Standalone(standalone::Connection),
  Cluster(cluster::Cluster),
}

impl Connection {
  /// Starts connecting; `Ready` or `ConnectFailed` follows in the outbox.
  /// `home`: the JS thread's event loop, where a standalone connection's
  /// socket is then read and written (`engine::uv`).
  pub fn start(
    config: Config,
    outbox: Arc<Outbox>,
    stats: Arc<Stats>,
    home: Option<Arc<uv::EventLoop>>,
  ) -> Connection {
    let blocking = dedicated::Pool::new(&config, outbox.clone(), stats.clone());
    let shared = if config.cluster.is_some() {
      Shared::Cluster(cluster::Cluster::start(config, outbox, stats))
    } else {
      Shared::Standalone(standalone::Connection::start(config, outbox, stats, home))
    };
    Connection { shared, blocking }
  }

  /// Sends a batch: its blocking commands each on a dedicated connection, the
  /// rest as one pipeline on the shared one.
  pub fn send(&self, batch: Batch) {
    let (batch, calls) = dedicated::split(batch);
    if !calls.is_empty() {
      self.blocking.send(calls);
      if batch.entries.is_empty() {
        return;
      }
    }
    match &self.shared {
      Shared::Standalone(c) => c.send(batch),
      Shared::Cluster(c) => c.send(batch),
    }
  }

  /// Fails the blocking commands still waiting (`ERR_CLOSED`), then lets the
  /// shared connection finish what is in flight and disconnect.
  pub fn close(&self) {
    self.blocking.close();
    match &self.shared {
      Shared::Standalone(c) => c.close(),
      Shared::Cluster(c) => c.close(),
    }
  }

  /// Moves whenever client-side caching events are queued.
  pub fn cache_epoch(&self) -> &Arc<AtomicU32> {
    match &self.shared {
      Shared::Standalone(c) => &c.cache_epoch,
      Shared::Cluster(c) => &c.cache_epoch,
    }
  }

  /// `[masters, moved, ask, retries, refreshes]` on a cluster.
  pub fn cluster_counters(&self) -> Option<[u64; 5]> {
    match &self.shared {
      Shared::Standalone(_) => None,
      Shared::Cluster(c) => Some(c.counters()),
    }
  }
}

/// The shared I/O runtime: one thread, started on first use.
pub fn runtime() -> &'static tokio::runtime::Handle {
  static RT: OnceLock<tokio::runtime::Handle> = OnceLock::new();
  RT.get_or_init(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
      .enable_all()
      .build()
      .expect("tokio runtime");
    let handle = rt.handle().clone();
    std::thread::Builder::new()
      .name("atlas-redis-io".into())
      .spawn(move || rt.block_on(std::future::pending::<()>()))
      .expect("I/O thread");
    handle
  })
}

/// One command waiting for its reply.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
  pub id: u32,
  pub shape: Shape,
}

/// Commands encoded together on the JS thread; they go out as one pipeline.
pub struct Batch {
  pub cmds: Vec<redis::Cmd>,
  pub entries: Vec<Entry>,
  pub created: Instant,
}

impl Batch {
  /// How many replies the batch's commands get on the wire (a transaction's
  /// entry spans several commands: see `Shape::Group`).
  pub fn wire_replies(&self) -> usize {
    self.entries.iter().map(|e| e.shape.replies()).sum()
  }

  /// `later`'s commands after this one's, as one batch (its age is this one's).
  pub fn append(&mut self, mut later: Batch) {
    self.cmds.append(&mut later.cmds);
    self.entries.append(&mut later.entries);
  }
}

/// Pairs each entry with its reply: `values` (one per wire command, in order)
/// are handed out one per entry, except that an entry of several commands
/// gets all of its replies as one array.
pub fn replies_by_entry(
  entries: &[Entry],
  values: Vec<redis::Value>,
) -> Vec<(Entry, redis::Value)> {
  let mut values = values.into_iter();
  entries
    .iter()
    .map(|e| {
      let n = e.shape.replies();
      let v = if n == 1 && !matches!(e.shape, Shape::Group { .. }) {
        values.next().unwrap_or(redis::Value::Nil)
      } else {
        redis::Value::Array(values.by_ref().take(n).collect())
      };
      (*e, v)
    })
    .collect()
}

/// Fails every command of `entries` with `error`.
pub fn reject_all(outbox: &Outbox, entries: &[Entry], error: &crate::error::Error) {
  let mut done = entries
    .iter()
    .map(|e| crate::bridge::outbox::Completion::Error {
      id: e.id,
      error: error.clone(),
    })
    .collect();
  outbox.push_all(&mut done);
}

/// Hands an `>invalidate` push (client-side caching) to JS: its keys, or
/// `None` for "everything", then moves the cache epoch so the JS thread drains
/// before its next cache hit.
pub fn deliver_invalidation(outbox: &Outbox, epoch: &AtomicU32, data: Vec<redis::Value>) {
  use redis::Value;
  let keys = match data.into_iter().next() {
    Some(Value::Array(keys)) | Some(Value::Set(keys)) => Some(
      keys
        .into_iter()
        .filter_map(|k| match k {
          Value::BulkString(b) => Some(b),
          Value::SimpleString(s) => Some(s.into_bytes()),
          _ => None,
        })
        .collect(),
    ),
    _ => None,
  };
  outbox.push(crate::bridge::outbox::Completion::Event(
    crate::bridge::outbox::Event::Invalidate(keys),
  ));
  epoch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Delay before reconnect attempt `n`: none for the first, then exponential
/// from `min`, capped at `max`, with "equal jitter" (half fixed, half random)
/// so that many instances do not reconnect in lockstep.
pub fn backoff(n: u32, min: Duration, max: Duration) -> Duration {
  if n == 0 {
    return Duration::ZERO;
  }
  let exp = min.saturating_mul(1u32 << (n - 1).min(20)).min(max);
  let half = exp / 2;
  half + half.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_group_entry_gets_all_its_replies() {
    use redis::Value;
    let entries = [
      Entry {
        id: 1,
        shape: Shape::Int,
      },
      Entry {
        id: 2,
        shape: Shape::Group {
          replies: 3,
          atomic: true,
        },
      },
      Entry {
        id: 3,
        shape: Shape::Str,
      },
    ];
    let values = vec![
      Value::Int(7),
      Value::Okay,
      Value::Int(1),
      Value::Nil,
      Value::Nil,
    ];
    let out = replies_by_entry(&entries, values);
    assert_eq!(out[0].1, Value::Int(7));
    assert_eq!(
      out[1].1,
      Value::Array(vec![Value::Okay, Value::Int(1), Value::Nil])
    );
    assert_eq!(out[2].0.id, 3);
  }

  #[test]
  fn backoff_is_capped_and_jittered() {
    let (min, max) = (Duration::from_millis(50), Duration::from_millis(2000));
    assert_eq!(backoff(0, min, max), Duration::ZERO);
    for n in 1..40 {
      let d = backoff(n, min, max);
      let cap = min.saturating_mul(1 << (n - 1).min(20)).min(max);
      assert!(d >= cap / 2 && d <= cap, "attempt {n}: {d:?}");
    }
    let samples: std::collections::HashSet<_> = (0..20).map(|_| backoff(5, min, max)).collect();
    assert!(samples.len() > 1, "jitter varies the delay");
  }
}
