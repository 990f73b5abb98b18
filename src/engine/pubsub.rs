//! Pub/sub: a client's subscriptions, on connections of their own.
//!
//! A subscribed connection cannot carry a client's other calls, so the first
//! `subscribe` of a client starts a subscriber: its own connection, opened
//! with the client's settings (TLS, ACL user, Sentinel master, memory://),
//! speaking RESP3, where messages arrive as push frames that redis-rs hands
//! to us (its push sender) while the connection still answers commands.
//!
//! The subscriber keeps the set of subscriptions asked for. redis-rs'
//! `MultiplexedConnection` never reconnects; this module does, with the
//! client's backoff, and subscribes to the whole set again on every new
//! connection, telling JS (`Lost`, then `Resubscribed`) that messages may
//! have been missed in between.
//!
//! On a cluster, channels and patterns live on one node (the master of slot 0:
//! a cluster's PUBLISH reaches every node) and shard channels on the master of
//! their slot, one connection per node. When a reshard moves a slot, its old
//! owner unsubscribes us from that slot's shard channels (an unasked
//! `sunsubscribe` push; redis-rs' own cluster subscriptions forget the
//! channel then, see docs/adr/0002-pubsub.md): the slot map is read again and
//! the channel subscribed at its new owner.
//!
//! Every channel goes in a command of its own, so that each gets its own
//! confirmation or refusal (an ACL may allow one channel and not another).
//!
//! ```
//! use atlas_redis::engine::pubsub::{slot_owner, Kind};
//! let map = vec![(0, 8191, ("a".to_string(), 1)), (8192, 16383, ("b".to_string(), 2))];
//! // "foo" hashes to slot 12182; plain channels live on the master of slot 0.
//! assert_eq!(slot_owner(&map, Kind::Shard, b"foo"), Some(&("b".to_string(), 2)));
//! assert_eq!(slot_owner(&map, Kind::Channel, b"foo"), Some(&("a".to_string(), 1)));
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;
use tokio::time::timeout;

use crate::bridge::outbox::Outbox;
use crate::engine::cluster::SlotMap;
use crate::engine::config::Config;
use crate::engine::connect::{self, Driver};
use crate::engine::sentinel::{self, Sentinels};
use crate::engine::{backoff, cluster, runtime, tls};
use crate::error::{Error, ErrorCode, Result};

/// The three kinds of subscription.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Kind {
  /// SUBSCRIBE: one channel.
  Channel,
  /// PSUBSCRIBE: the channels matching a glob pattern.
  Pattern,
  /// SSUBSCRIBE: a shard channel (Redis 7), which lives in its slot's shard.
  Shard,
}

impl Kind {
  /// The code TypeScript uses (lib/core/pubsub.ts).
  pub fn from_code(code: u32) -> Option<Kind> {
    [Kind::Channel, Kind::Pattern, Kind::Shard]
      .get(code as usize)
      .copied()
  }

  fn command(self, subscribe: bool) -> &'static str {
    match (self, subscribe) {
      (Kind::Channel, true) => "SUBSCRIBE",
      (Kind::Channel, false) => "UNSUBSCRIBE",
      (Kind::Pattern, true) => "PSUBSCRIBE",
      (Kind::Pattern, false) => "PUNSUBSCRIBE",
      (Kind::Shard, true) => "SSUBSCRIBE",
      (Kind::Shard, false) => "SUNSUBSCRIBE",
    }
  }
}

/// A subscription: its kind and its channel (or pattern).
pub type Key = (Kind, Vec<u8>);

/// The master a subscription belongs on: its slot's for a shard channel, slot
/// 0's for the others.
pub fn slot_owner<'m>(map: &'m SlotMap, kind: Kind, name: &[u8]) -> Option<&'m (String, u16)> {
  let slot = match kind {
    Kind::Shard => cluster::slot(name),
    Kind::Channel | Kind::Pattern => 0,
  };
  map
    .iter()
    .find(|(first, last, _)| (*first..=*last).contains(&slot))
    .map(|(_, _, node)| node)
}

/// What the JS thread gets.
#[derive(Debug)]
pub enum Delivery {
  /// A message for subscription `id`, with the channel it was published on
  /// when that is not the subscription's own name (a pattern's match).
  Message {
    id: u32,
    buffers: bool,
    channel: Option<Vec<u8>>,
    payload: Vec<u8>,
  },
  /// Request `op` is finished, or failed.
  Done { op: u32, error: Option<Error> },
  /// Subscription `id` is gone: the server refused it, or it could not be
  /// made within the connect timeout.
  Dropped { id: u32, error: Error },
  /// A connection that held subscriptions was lost: messages may be missed
  /// until `Resubscribed`.
  Lost(Error),
  /// Every subscription is in place again after `Lost`.
  Resubscribed,
  /// `close()` is done.
  Closed,
}

/// A cluster node's address, or `None` for the one server of a client that is
/// not a cluster client (standalone, Sentinel's master, memory://).
type NodeId = Option<(String, u16)>;

struct Sub {
  /// JS' id for it.
  id: u32,
  /// Messages as Buffers (some listener asked for them).
  buffers: bool,
  /// Requests waiting for it to be confirmed.
  waiters: Vec<u32>,
}

/// One connection of the subscriber.
#[derive(Default)]
struct Node {
  /// Numbers this node's connection attempts: news of an older one is stale.
  generation: u64,
  conn: Option<MultiplexedConnection>,
  connecting: bool,
  driver: Option<AbortHandle>,
  /// What this connection is subscribed to (`true`) or being subscribed to.
  has: HashMap<Key, bool>,
  /// Failed connects in a row (the backoff's exponent).
  attempt: u32,
}

/// A request of JS still running: the subscriptions (or the unsubscribe
/// commands) it waits for.
struct Op {
  left: usize,
  keys: Vec<Key>,
  error: Option<Error>,
}

#[derive(Default)]
struct State {
  subs: HashMap<Key, Sub>,
  ops: HashMap<u32, Op>,
  nodes: HashMap<NodeId, Node>,
  /// Cluster only: the slot map, once read.
  slots: Option<SlotMap>,
  refreshing: bool,
  refresh_again: bool,
  /// Slot map reads in a row that failed or left a subscription's slot
  /// unserved, and MOVED answers since the last good read (the backoff's exponent).
  refresh_attempt: u32,
  generations: u64,
  /// Shard channels that met a MOVED or were moved away: they wait for the
  /// next slot map rather than ask the node that no longer has their slot.
  parked: std::collections::HashSet<Key>,
  /// `Lost` was sent and `Resubscribed` not yet.
  lost: bool,
  last_error: Option<Error>,
  closing: bool,
}

struct Shared {
  cfg: Arc<Config>,
  out: Arc<Outbox<Delivery>>,
  tls: std::result::Result<Option<tls::Connector>, Error>,
  sentinels: Option<Arc<Sentinels>>,
  /// Wakes the Sentinel switch watcher.
  wake: Arc<Notify>,
  state: Mutex<State>,
  /// Dropped at close: the `+switch-master` watchers stop.
  stop_watchers: Mutex<Option<watch::Sender<()>>>,
}

/// The JS thread's handle on a subscriber.
pub struct Subscriber {
  shared: Arc<Shared>,
}

impl Subscriber {
  /// Starts a subscriber with a client's settings; it connects on the first
  /// subscription.
  pub fn start(mut config: Config, out: Arc<Outbox<Delivery>>) -> Subscriber {
    // Client tracking belongs to the command connection.
    config.client_cache = None;
    let tls = config.tls.as_ref().map(tls::connector).transpose();
    let shared = Arc::new(Shared {
      sentinels: config.sentinel.as_ref().map(Sentinels::new),
      cfg: Arc::new(config),
      out,
      tls,
      wake: Arc::new(Notify::new()),
      state: Mutex::new(State::default()),
      stop_watchers: Mutex::new(None),
    });
    if shared.sentinels.is_some() {
      let weak = Arc::downgrade(&shared);
      runtime().spawn(watch_sentinels(weak));
    }
    Subscriber { shared }
  }

  /// Request `op`: subscribe to `names` (each with JS' id for it); `Done`
  /// follows once the server confirmed every one. Handled on the I/O thread,
  /// in the order asked: the JS thread never waits for the subscriber's lock.
  pub fn subscribe(&self, op: u32, kind: Kind, names: Vec<(Vec<u8>, u32)>, buffers: bool) {
    let s = self.shared.clone();
    runtime().spawn(async move { s.subscribe(op, kind, names, buffers) });
  }

  /// Request `op`: unsubscribe from `names`; `Done` follows once the servers
  /// confirmed (JS stops delivering at once).
  pub fn unsubscribe(&self, op: u32, kind: Kind, names: Vec<Vec<u8>>) {
    let s = self.shared.clone();
    runtime().spawn(async move { s.unsubscribe(op, kind, names) });
  }

  /// Drops every subscription and connection; `Closed` follows.
  pub fn close(&self) {
    self.shared.close();
  }
}

impl Drop for Subscriber {
  /// A client dropped without `close()` (garbage-collected) still winds down.
  fn drop(&mut self) {
    self.shared.close();
  }
}

impl State {
  fn cluster(cfg: &Config) -> bool {
    cfg.cluster.is_some()
  }

  /// Where `key` belongs now; `None` while a cluster's slot map is unknown.
  fn target(&self, cfg: &Config, key: &Key) -> Option<NodeId> {
    if !Self::cluster(cfg) {
      return Some(None);
    }
    slot_owner(self.slots.as_ref()?, key.0, &key.1).map(|n| Some(n.clone()))
  }

  /// Whether `key` is subscribed where it belongs.
  fn confirmed(&self, cfg: &Config, key: &Key) -> bool {
    self
      .target(cfg, key)
      .and_then(|t| self.nodes.get(&t))
      .is_some_and(|n| n.has.get(key) == Some(&true))
  }

  /// One of the things `ops` wait for is done (with `error`, it failed).
  fn settle(&mut self, out: &Outbox<Delivery>, ops: &[u32], error: Option<&Error>) {
    for op in ops {
      let Some(o) = self.ops.get_mut(op) else {
        continue;
      };
      if let (None, Some(e)) = (&o.error, error) {
        o.error = Some(e.clone());
      }
      o.left = o.left.saturating_sub(1);
      if o.left == 0 {
        let o = self.ops.remove(op).expect("present");
        out.push(Delivery::Done {
          op: *op,
          error: o.error,
        });
      }
    }
  }

  /// Forgets subscription `key`, which the server refused or which could not
  /// be made: JS drops its listeners, and its waiters fail.
  fn drop_sub(&mut self, out: &Outbox<Delivery>, key: &Key, error: &Error) {
    if let Some(sub) = self.subs.remove(key) {
      out.push(Delivery::Dropped {
        id: sub.id,
        error: error.clone(),
      });
      self.settle(out, &sub.waiters, Some(error));
    }
  }
}

impl Shared {
  /// See [`Subscriber::subscribe`].
  fn subscribe(self: &Arc<Self>, op: u32, kind: Kind, names: Vec<(Vec<u8>, u32)>, buffers: bool) {
    let s = self;
    if let Some(store) = &s.cfg.memory {
      let error = Error::invalid(format!(
        "pub/sub is not available on memory://{store}: the embedded store has no SUBSCRIBE or PUBLISH (use a Redis server)"
      ));
      for (_, id) in names {
        s.out.push(Delivery::Dropped {
          id,
          error: error.clone(),
        });
      }
      s.out.push(Delivery::Done {
        op,
        error: Some(error),
      });
      return;
    }
    let mut st = s.state.lock();
    if st.closing {
      s.out.push(Delivery::Done {
        op,
        error: Some(Error::closed()),
      });
      return;
    }
    let mut waiting = Vec::new();
    for (name, id) in names {
      let key = (kind, name);
      let confirmed = st.confirmed(&s.cfg, &key);
      let sub = st.subs.entry(key.clone()).or_insert(Sub {
        id,
        buffers,
        waiters: Vec::new(),
      });
      sub.id = id;
      sub.buffers |= buffers;
      if !confirmed {
        sub.waiters.push(op);
        waiting.push(key);
      }
    }
    if waiting.is_empty() {
      s.out.push(Delivery::Done { op, error: None });
    } else {
      st.ops.insert(
        op,
        Op {
          left: waiting.len(),
          keys: waiting,
          error: None,
        },
      );
      // Waits for a connection at most as long as a call waits for one.
      let weak = Arc::downgrade(s);
      let wait = s.cfg.connect_timeout + s.cfg.command_timeout;
      runtime().spawn(async move {
        tokio::time::sleep(wait).await;
        if let Some(s) = weak.upgrade() {
          s.expire(op, wait);
        }
      });
    }
    s.reconcile(&mut st);
  }

  /// See [`Subscriber::unsubscribe`].
  fn unsubscribe(self: &Arc<Self>, op: u32, kind: Kind, names: Vec<Vec<u8>>) {
    let s = self;
    let mut st = s.state.lock();
    let mut by_node: HashMap<NodeId, Vec<Key>> = HashMap::new();
    for name in names {
      let key = (kind, name);
      if let Some(sub) = st.subs.remove(&key) {
        // A subscribe still waiting for it is answered: nothing to wait for now.
        st.settle(&s.out, &sub.waiters, None);
      }
      for (id, n) in st.nodes.iter_mut() {
        if n.has.remove(&key).is_some() && n.conn.is_some() {
          by_node.entry(id.clone()).or_default().push(key.clone());
        }
      }
    }
    if by_node.is_empty() {
      s.out.push(Delivery::Done { op, error: None });
      return;
    }
    st.ops.insert(
      op,
      Op {
        left: by_node.len(),
        keys: Vec::new(),
        error: None,
      },
    );
    for (id, keys) in by_node {
      s.send(&st, id, keys, false, Some(op));
    }
  }

  fn close(&self) {
    let mut st = self.state.lock();
    if st.closing {
      return;
    }
    st.closing = true;
    st.subs.clear();
    for (op, o) in st.ops.drain() {
      // An unsubscribe is done when the connection is.
      let error = (!o.keys.is_empty()).then(Error::closed);
      self.out.push(Delivery::Done { op, error });
    }
    for (_, n) in st.nodes.drain() {
      if let Some(d) = n.driver {
        d.abort();
      }
    }
    drop(st);
    self.stop_watchers.lock().take();
    self.wake.notify_one();
    self.out.push(Delivery::Closed);
  }

  /// Brings the connections in line with the subscriptions: connects the
  /// nodes that are needed, subscribes what a connection lacks, unsubscribes
  /// what no longer belongs there.
  fn reconcile(self: &Arc<Self>, st: &mut State) {
    if st.closing {
      return;
    }
    let cfg = &self.cfg;
    let mut add: HashMap<NodeId, Vec<Key>> = HashMap::new();
    let mut unknown = false;
    if !State::cluster(cfg) {
      // The one server: connected while the subscriber lives.
      st.nodes.entry(None).or_default();
    }
    let targets: HashMap<Key, Option<NodeId>> = st
      .subs
      .keys()
      .map(|k| (k.clone(), st.target(cfg, k)))
      .collect();
    for (key, target) in &targets {
      let Some(t) = target else {
        unknown = true;
        continue;
      };
      if st.parked.contains(key) {
        continue;
      }
      let n = st.nodes.entry(t.clone()).or_default();
      if n.conn.is_some() && !n.has.contains_key(key) {
        n.has.insert(key.clone(), false);
        add.entry(t.clone()).or_default().push(key.clone());
      }
    }
    // What a node holds and no longer should (the slot-0 master changed, or a
    // subscription timed out while its SUBSCRIBE was on the way).
    let mut remove: HashMap<NodeId, Vec<Key>> = HashMap::new();
    for (id, n) in st.nodes.iter_mut() {
      if n.conn.is_none() {
        continue;
      }
      let stale: Vec<Key> = n
        .has
        .keys()
        .filter(|k| match targets.get(*k) {
          None => true,
          // Unknown (no slot map yet): left where it is.
          Some(None) => false,
          Some(Some(t)) => t != id,
        })
        .cloned()
        .collect();
      for k in &stale {
        n.has.remove(k);
      }
      if !stale.is_empty() {
        remove.insert(id.clone(), stale);
      }
    }
    for (id, keys) in remove {
      self.send(st, id, keys, false, None);
    }
    for (id, keys) in add {
      self.send(st, id, keys, true, None);
    }
    // Connect what is needed; forget cluster nodes nothing belongs on.
    let wanted: std::collections::HashSet<&NodeId> = targets.values().flatten().collect();
    let needed: Vec<NodeId> = st
      .nodes
      .iter()
      .filter(|(id, n)| id.is_none() || !n.has.is_empty() || wanted.contains(id))
      .map(|(id, _)| id.clone())
      .collect();
    st.nodes.retain(|id, n| {
      let keep = needed.contains(id);
      if !keep {
        if let Some(d) = n.driver.take() {
          d.abort();
        }
      }
      keep
    });
    for id in needed {
      let n = st.nodes.get(&id).expect("kept");
      if n.conn.is_none() && !n.connecting {
        self.connect(st, id);
      }
    }
    if unknown {
      self.refresh(st);
    }
    self.check_restored(st);
  }

  /// Sends one (un)subscribe command per key on `node`'s connection.
  fn send(
    self: &Arc<Self>,
    st: &State,
    node: NodeId,
    keys: Vec<Key>,
    subscribe: bool,
    op: Option<u32>,
  ) {
    let Some(n) = st.nodes.get(&node) else { return };
    let Some(mut conn) = n.conn.clone() else {
      return;
    };
    let generation = n.generation;
    let s = self.clone();
    runtime().spawn(async move {
      let mut pipe = redis::Pipeline::with_capacity(keys.len());
      for (kind, name) in &keys {
        pipe.cmd(kind.command(subscribe)).arg(name);
      }
      let r = conn.send_packed_commands(&pipe, 0, keys.len()).await;
      s.sent(node, generation, keys, subscribe, op, r);
    });
  }

  /// The replies to [`Shared::send`]'s commands.
  fn sent(
    self: &Arc<Self>,
    node: NodeId,
    generation: u64,
    keys: Vec<Key>,
    subscribe: bool,
    op: Option<u32>,
    r: redis::RedisResult<Vec<Value>>,
  ) {
    let mut st = self.state.lock();
    if st.closing {
      return;
    }
    let current = st
      .nodes
      .get(&node)
      .is_some_and(|n| n.generation == generation && n.conn.is_some());
    match r {
      Err(e) => {
        if current {
          let cfg = self.node_cfg(&node);
          let error = cfg.redact(connect::classify(&cfg, &e));
          self.lost(&mut st, &node, generation, error);
        }
      }
      Ok(replies) if subscribe => {
        let mut moved = false;
        for (key, reply) in keys.iter().zip(replies) {
          match reply {
            Value::ServerError(e) => {
              let text = connect::server_text(&e);
              let redirect = ["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"].contains(&e.code());
              if current {
                if let Some(n) = st.nodes.get_mut(&node) {
                  n.has.remove(key);
                }
              }
              if redirect && State::cluster(&self.cfg) {
                st.parked.insert(key.clone());
                moved = true;
              } else {
                let error = Error::from_server(&text);
                let error = Error {
                  message: format!(
                    "{} {:?} refused: {}",
                    key.0.command(true),
                    String::from_utf8_lossy(&key.1),
                    error.message
                  ),
                  ..error
                };
                st.drop_sub(&self.out, key, &self.cfg.redact(error));
              }
            }
            _ => {
              if !current {
                continue;
              }
              if let Some(n) = st.nodes.get_mut(&node) {
                if let Some(c) = n.has.get_mut(key) {
                  *c = true;
                }
              }
              if st.target(&self.cfg, key).as_ref() == Some(&node) && st.confirmed(&self.cfg, key) {
                let waiters = st
                  .subs
                  .get_mut(key)
                  .map(|s| std::mem::take(&mut s.waiters))
                  .unwrap_or_default();
                st.settle(&self.out, &waiters, None);
              }
            }
          }
        }
        if moved {
          // The slot moved (or is moving): read the map again, after a pause
          // that grows while the cluster keeps answering MOVED.
          st.refresh_attempt = st.refresh_attempt.saturating_add(1);
          self.refresh(&mut st);
        }
      }
      Ok(_) => {}
    }
    if let Some(op) = op {
      st.settle(&self.out, &[op], None);
    }
    self.reconcile(&mut st);
  }

  /// Settings for one node's connection.
  fn node_cfg(&self, node: &NodeId) -> Config {
    let mut c = (*self.cfg).clone();
    if let Some((host, port)) = node {
      c.host = host.clone();
      c.port = *port;
      c.cluster = None;
    }
    c
  }

  fn connect(self: &Arc<Self>, st: &mut State, node: NodeId) {
    st.generations += 1;
    let generation = st.generations;
    let n = st.nodes.get_mut(&node).expect("a node to connect");
    n.connecting = true;
    n.generation = generation;
    let delay = backoff(n.attempt, self.cfg.reconnect_min, self.cfg.reconnect_max);
    let s = self.clone();
    runtime().spawn(async move {
      if !delay.is_zero() {
        tokio::time::sleep(delay).await;
      }
      if s.state.lock().closing {
        return;
      }
      let r = timeout(s.cfg.connect_timeout, s.open(&node, generation)).await;
      let r = match r {
        Ok(r) => r,
        Err(_) => Err(Error::new(
          ErrorCode::Connection,
          format!(
            "cannot reach {} (timed out after {} ms)",
            s.node_cfg(&node).address(),
            s.cfg.connect_timeout.as_millis()
          ),
        )),
      };
      s.connected(node, generation, r);
    });
  }

  async fn open(
    self: &Arc<Self>,
    node: &NodeId,
    generation: u64,
  ) -> Result<(MultiplexedConnection, Driver)> {
    let tls = self.tls.clone()?;
    let weak: Weak<Shared> = Arc::downgrade(self);
    let at = node.clone();
    let push: Arc<dyn Fn(PushInfo) + Send + Sync> = Arc::new(move |p| {
      if let Some(s) = weak.upgrade() {
        s.on_push(&at, generation, p);
      }
    });
    match (node, &self.sentinels) {
      (None, Some(sn)) => sentinel::open_master(&self.cfg, sn, tls.as_ref(), Some(push)).await,
      _ => connect::open(&self.node_cfg(node), tls.as_ref(), Some(push)).await,
    }
    .map_err(|e| self.cfg.redact(e))
  }

  fn connected(
    self: &Arc<Self>,
    node: NodeId,
    generation: u64,
    r: Result<(MultiplexedConnection, Driver)>,
  ) {
    let mut st = self.state.lock();
    if st.closing {
      return;
    }
    let Some(n) = st.nodes.get_mut(&node) else {
      return;
    };
    if n.generation != generation {
      return;
    }
    n.connecting = false;
    match r {
      Ok((conn, driver)) => {
        n.attempt = 0;
        n.conn = Some(conn);
        n.has.clear();
        let s = self.clone();
        let at = node.clone();
        let task = runtime().spawn(async move {
          driver.await;
          let mut st = s.state.lock();
          let e = Error::new(
            ErrorCode::Connection,
            format!(
              "subscriber connection to {} lost (connection closed by the server)",
              s.node_cfg(&at).address()
            ),
          );
          s.lost(&mut st, &at, generation, e);
        });
        n.driver = Some(task.abort_handle());
      }
      Err(e) => {
        n.attempt = n.attempt.saturating_add(1);
        st.last_error = Some(e);
        // The node may be gone (a failover): the slot map says.
        if State::cluster(&self.cfg) {
          self.refresh(&mut st);
        }
      }
    }
    self.reconcile(&mut st);
  }

  /// The connection of `node` (of `generation`) is gone: announce it if it
  /// held subscriptions, then connect again.
  fn lost(self: &Arc<Self>, st: &mut State, node: &NodeId, generation: u64, error: Error) {
    if st.closing {
      return;
    }
    let Some(n) = st.nodes.get_mut(node) else {
      return;
    };
    if n.generation != generation || n.conn.is_none() {
      return;
    }
    n.conn = None;
    if let Some(d) = n.driver.take() {
      d.abort();
    }
    let held = n.has.values().any(|c| *c);
    n.has.clear();
    st.last_error = Some(error.clone());
    if held && !st.lost {
      st.lost = true;
      self.out.push(Delivery::Lost(error));
    }
    if State::cluster(&self.cfg) {
      self.refresh(st);
    }
    self.reconcile(st);
  }

  fn check_restored(&self, st: &mut State) {
    if !st.lost || !st.subs.keys().all(|k| st.confirmed(&self.cfg, k)) {
      return;
    }
    if !State::cluster(&self.cfg) && st.nodes.get(&None).is_none_or(|n| n.conn.is_none()) {
      return;
    }
    st.lost = false;
    self.out.push(Delivery::Resubscribed);
  }

  /// Subscriptions not confirmed in time (no connection): they are dropped,
  /// and request `op` fails.
  fn expire(self: &Arc<Self>, op: u32, waited: Duration) {
    let mut st = self.state.lock();
    let Some(o) = st.ops.remove(&op) else {
      return;
    };
    let why = st
      .last_error
      .as_ref()
      .map(|e| e.message.clone())
      .unwrap_or_else(|| "no confirmation from the server".into());
    let error = Error::new(
      ErrorCode::Connection,
      format!("not subscribed within {} ms ({why})", waited.as_millis()),
    );
    for key in &o.keys {
      if st.subs.get(key).is_some_and(|s| s.waiters.contains(&op)) {
        st.drop_sub(&self.out, key, &error);
      }
    }
    self.out.push(Delivery::Done {
      op,
      error: Some(error),
    });
    self.reconcile(&mut st);
  }

  /// A push frame from `node`'s connection: a message, or a server's
  /// unsubscribe (a reshard moved a shard channel's slot away).
  fn on_push(self: &Arc<Self>, node: &NodeId, generation: u64, p: PushInfo) {
    let mut data = p.data.into_iter().map(|v| match v {
      Value::BulkString(b) => b,
      Value::SimpleString(s) => s.into_bytes(),
      _ => Vec::new(),
    });
    let (kind, message) = match p.kind {
      PushKind::Message => (Kind::Channel, true),
      PushKind::PMessage => (Kind::Pattern, true),
      PushKind::SMessage => (Kind::Shard, true),
      PushKind::Unsubscribe => (Kind::Channel, false),
      PushKind::PUnsubscribe => (Kind::Pattern, false),
      PushKind::SUnsubscribe => (Kind::Shard, false),
      _ => return,
    };
    let Some(name) = data.next() else { return };
    let key = (kind, name);
    let mut st = self.state.lock();
    let Some(n) = st
      .nodes
      .get_mut(node)
      .filter(|n| n.generation == generation)
    else {
      return;
    };
    if message {
      // Only from where the subscription lives: a node it just left may
      // still send a message or two.
      if !n.has.contains_key(&key) {
        return;
      }
      let Some(sub) = st.subs.get(&key) else { return };
      let (channel, payload) = match kind {
        Kind::Pattern => (data.next(), data.next()),
        _ => (None, data.next()),
      };
      self.out.push(Delivery::Message {
        id: sub.id,
        buffers: sub.buffers,
        channel,
        payload: payload.unwrap_or_default(),
      });
      return;
    }
    // Our own unsubscribes take the key out of `has` first: this one came unasked.
    if n.has.remove(&key).is_some() && st.subs.contains_key(&key) {
      if State::cluster(&self.cfg) {
        st.parked.insert(key);
        self.refresh(&mut st);
      }
      self.reconcile(&mut st);
    }
  }

  /// Reads a cluster's slot map again (one read at a time; a failed read is retried).
  fn refresh(self: &Arc<Self>, st: &mut State) {
    if st.closing {
      return;
    }
    if st.refreshing {
      st.refresh_again = true;
      return;
    }
    st.refreshing = true;
    let live: Vec<(NodeId, MultiplexedConnection)> = st
      .nodes
      .iter()
      .filter_map(|(id, n)| n.conn.clone().map(|c| (id.clone(), c)))
      .collect();
    let mut known: Vec<(String, u16)> = st
      .slots
      .iter()
      .flatten()
      .map(|(_, _, n)| n.clone())
      .collect();
    known.extend(self.cfg.cluster.iter().flat_map(|c| c.nodes.clone()));
    known.dedup();
    let delay = backoff(
      st.refresh_attempt,
      self.cfg.reconnect_min,
      self.cfg.reconnect_max,
    );
    let s = self.clone();
    runtime().spawn(async move {
      if !delay.is_zero() {
        tokio::time::sleep(delay).await;
      }
      let r = s.read_slots(live, known).await;
      let mut st = s.state.lock();
      st.refreshing = false;
      if st.closing {
        return;
      }
      let again = std::mem::take(&mut st.refresh_again);
      match r {
        Ok(map) => {
          // A map that leaves a subscription's slot unserved is read again
          // after a pause, as a failed read is.
          let served = st
            .subs
            .keys()
            .all(|(kind, name)| slot_owner(&map, *kind, name).is_some());
          st.refresh_attempt = if served {
            0
          } else {
            st.refresh_attempt.saturating_add(1)
          };
          st.slots = Some(map);
          st.parked.clear();
        }
        Err(e) => {
          st.refresh_attempt = st.refresh_attempt.saturating_add(1);
          st.last_error = Some(e);
        }
      }
      if again || st.slots.is_none() {
        s.refresh(&mut st);
      }
      s.reconcile(&mut st);
    });
  }

  /// CLUSTER SLOTS from a live connection, else from a known node or a seed.
  async fn read_slots(
    &self,
    live: Vec<(NodeId, MultiplexedConnection)>,
    known: Vec<(String, u16)>,
  ) -> Result<SlotMap> {
    let ask = || redis::cmd("CLUSTER").arg("SLOTS").clone();
    for (id, mut conn) in live {
      let host = id.map(|(h, _)| h).unwrap_or_default();
      if let Ok(v) = conn.send_packed_command(&ask()).await {
        if let Some(map) = cluster::parse_slot_map(v, &host) {
          return Ok(map);
        }
      }
    }
    let tls = self.tls.clone()?;
    let mut last = None;
    for (host, port) in known {
      let cfg = self.node_cfg(&Some((host.clone(), port)));
      let attempt = async {
        let (mut conn, mut driver) = connect::open(&cfg, tls.as_ref(), None).await?;
        let cmd = ask();
        tokio::select! {
          r = conn.send_packed_command(&cmd) => r.map_err(|e| connect::classify(&cfg, &e)),
          _ = &mut driver => Err(Error::new(ErrorCode::Connection, format!("{} closed the connection", cfg.address()))),
        }
      };
      match timeout(self.cfg.connect_timeout, attempt).await {
        Ok(Ok(v)) => match cluster::parse_slot_map(v, &host) {
          Some(map) => return Ok(map),
          None => {
            last = Some(Error::new(
              ErrorCode::Reply,
              format!("CLUSTERDOWN {} serves no slots", cfg.address()),
            ))
          }
        },
        Ok(Err(e)) => last = Some(self.cfg.redact(e)),
        Err(_) => {
          last = Some(Error::new(
            ErrorCode::Connection,
            format!("cannot reach {} (timed out)", cfg.address()),
          ))
        }
      }
    }
    Err(last.unwrap_or_else(|| {
      Error::new(
        ErrorCode::Connection,
        "no cluster node to ask for the slot map",
      )
    }))
  }
}

/// Sentinel mode: reconnects to the new master when a sentinel announces one.
async fn watch_sentinels(weak: Weak<Shared>) {
  let Some(s) = weak.upgrade() else { return };
  let (stop_tx, stop) = watch::channel(());
  let sn = s.sentinels.clone().expect("sentinel mode");
  let connector = s.tls.clone().ok().flatten();
  sentinel::watch_all(&sn, &s.cfg, connector, &s.wake, &stop);
  *s.stop_watchers.lock() = Some(stop_tx);
  let wake = s.wake.clone();
  drop(s);
  loop {
    wake.notified().await;
    let Some(s) = weak.upgrade() else { return };
    let mut st = s.state.lock();
    if st.closing {
      return;
    }
    if sn.switched() {
      if let Some(generation) = st.nodes.get(&None).map(|n| n.generation) {
        let e = Error::new(
          ErrorCode::Connection,
          format!("{}: Sentinel announced a new master", s.cfg.address()),
        );
        s.lost(&mut st, &None, generation, e);
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
  }

  #[test]
  fn the_slot_map_is_read_from_cluster_slots() {
    let node = |h: &str, p: i64| Value::Array(vec![bulk(h), Value::Int(p), bulk("id")]);
    let reply = Value::Array(vec![
      Value::Array(vec![
        Value::Int(0),
        Value::Int(5460),
        node("10.0.0.1", 7000),
        node("10.0.0.4", 7003),
      ]),
      Value::Array(vec![Value::Int(5461), Value::Int(16383), node("", 7001)]),
    ]);
    let map = cluster::parse_slot_map(reply, "seed").unwrap();
    assert_eq!(
      map,
      vec![
        (0, 5460, ("10.0.0.1".to_string(), 7000)),
        (5461, 16383, ("seed".to_string(), 7001))
      ]
    );
    assert_eq!(cluster::parse_slot_map(Value::Array(vec![]), "x"), None);
    assert_eq!(
      slot_owner(&map, Kind::Shard, b"foo"),
      Some(&("seed".to_string(), 7001))
    );
    assert_eq!(
      slot_owner(&map, Kind::Pattern, b"foo*"),
      Some(&("10.0.0.1".to_string(), 7000))
    );
  }

  #[test]
  fn kinds_have_their_commands() {
    assert_eq!(Kind::from_code(2), Some(Kind::Shard));
    assert_eq!(Kind::from_code(3), None);
    assert_eq!(Kind::Pattern.command(false), "PUNSUBSCRIBE");
    assert_eq!(Kind::Shard.command(true), "SSUBSCRIBE");
  }
}
