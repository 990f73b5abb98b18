//! Redis Cluster on redis-rs' cluster connection (`cluster-async`).
//!
//! redis-rs keeps the slot map, one multiplexed connection per node and the
//! topology refresh. Routing is ours, from the command table
//! (`commands::table`), because redis-rs routes an unknown command by its
//! first argument and would send `XREAD … STREAMS k` or `BITOP AND dest a b`
//! to the slot of a keyword. redis-rs' own retries are off (`retries(0)`): a
//! redirection comes back to us, is counted (`stats().cluster`), and is
//! followed here — MOVED to the address named (redis-rs rebuilds its slot map
//! on seeing it), ASK with `ASKING` in front, TRYAGAIN and CLUSTERDOWN after a
//! pause — up to `maxRedirections` times. A tick's batch of single-slot
//! commands goes out as one pipeline per node, grouped by the slot owners
//! CLUSTER SLOTS and the MOVEDs named; a redirected reply is followed for its
//! command alone (`cluster_node` keeps redis-rs from failing the whole
//! pipeline on it). Keys of several slots in
//! MGET/MSET/DEL/EXISTS/TOUCH/UNLINK are split by slot and the replies put
//! back in the caller's order; SCAN walks the masters one after the other.
//! A call has `commandTimeoutMs` in all, from when it was made: its
//! redirections and pauses included (redis-rs' own timeout starts again with
//! each request sent).
//!
//! Tokio below 1.54 (Cargo.toml): while redis-rs reloads its slot map (on a
//! MOVED, a READONLY, a node it cannot find) it takes its node map's lock for
//! writing and stops polling the requests in flight. That is safe only if no
//! suspended request holds the lock's read side. From tokio 1.54 a read that
//! lands when the task's coop budget is spent (a burst of redirected calls is
//! enough) takes the lock and then yields, keeping it: the reload waits for a
//! request that waits for the reload, and every call on that cluster
//! connection hangs until its timeout. A unit test below fails on such a tokio.
//!
//! ```
//! use atlas_redis::engine::cluster::slot;
//! assert_eq!(slot(b"foo"), 12182);
//! assert_eq!(slot(b"{user:1}:a"), slot(b"user:1"));
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use parking_lot::Mutex;
use redis::aio::ConnectionLike;
use redis::cluster::{ClusterClientBuilder, TlsMode};
use redis::cluster_routing::{
  MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{Cmd, ErrorKind, ServerErrorKind, Value};
use tokio::sync::Notify;

use crate::bridge::outbox::{Completion, Event, Outbox};
use crate::commands::table;
use crate::engine::cluster_node::{needs_action, reveal, NodeConnection};
use crate::engine::config::Config;
use crate::engine::{reject_all, runtime, Batch, Entry};
use crate::error::{Error, ErrorCode, Result};
use crate::stats::Stats;

/// redis-rs' cluster connection over our node connections (see `cluster_node`).
type ClusterConnection = redis::cluster_async::ClusterConnection<NodeConnection>;

/// The hash slot of `key` (its `{tag}` when it has one), as Redis computes it.
pub fn slot(key: &[u8]) -> u16 {
  let tagged = key
    .iter()
    .position(|&b| b == b'{')
    .and_then(|open| {
      let rest = &key[open + 1..];
      rest
        .iter()
        .position(|&b| b == b'}')
        .filter(|&close| close > 0)
        .map(|close| &rest[..close])
    })
    .unwrap_or(key);
  crc16::State::<crc16::XMODEM>::calculate(tagged) % 16384
}

/// A short hash tag for every slot: `{tag}` puts a key in that slot (for keys
/// a script must find next to another key).
pub fn tag_for_slot(s: u16) -> &'static str {
  static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
  let tags = TAGS.get_or_init(|| {
    let mut tags = vec![String::new(); 16384];
    let mut missing = 16384;
    let mut n = 0u64;
    while missing > 0 {
      let t = format!("{n:x}");
      let s = slot(t.as_bytes()) as usize;
      if tags[s].is_empty() {
        tags[s] = t;
        missing -= 1;
      }
      n += 1;
    }
    tags
  });
  &tags[s as usize]
}

/// Redirections and refreshes seen, for `stats().cluster`.
#[derive(Default)]
pub struct Counters {
  pub moved: AtomicU64,
  pub ask: AtomicU64,
  pub retries: AtomicU64,
  pub refreshes: AtomicU64,
  pub masters: AtomicU64,
}

/// Which master serves each slot, from CLUSTER SLOTS and then each MOVED. A
/// stale entry costs one redirection, followed as any other.
#[derive(Default)]
struct SlotOwners {
  /// The masters in CLUSTER SLOTS order, then any node a MOVED named (appended,
  /// so that a SCAN cursor's index stays valid).
  nodes: Vec<(String, u16)>,
  /// An index into `nodes` per slot; `u16::MAX`: not known.
  of_slot: Vec<u16>,
}

impl SlotOwners {
  fn from_map(map: &SlotMap) -> SlotOwners {
    let mut owners = SlotOwners {
      nodes: Vec::new(),
      of_slot: vec![u16::MAX; 16384],
    };
    for (first, last, node) in map {
      let i = owners.index(node);
      for slot in *first..=(*last).min(16383) {
        owners.of_slot[slot as usize] = i;
      }
    }
    owners
  }

  fn index(&mut self, node: &(String, u16)) -> u16 {
    match self.nodes.iter().position(|n| n == node) {
      Some(i) => i as u16,
      None => {
        self.nodes.push(node.clone());
        (self.nodes.len() - 1) as u16
      }
    }
  }

  fn node(&self, slot: u16) -> Option<u16> {
    self
      .of_slot
      .get(slot as usize)
      .copied()
      .filter(|&i| i != u16::MAX)
  }

  fn moved(&mut self, slot: u16, node: &(String, u16)) {
    if self.of_slot.len() == 16384 {
      let i = self.index(node);
      self.of_slot[slot as usize] = i;
    }
  }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
  Connecting,
  Up,
  Closed,
}

struct State {
  phase: Phase,
  conn: Option<ClusterConnection>,
  in_flight: usize,
  closing: bool,
}

struct Shared {
  cfg: Arc<Config>,
  outbox: Arc<Outbox>,
  stats: Arc<Stats>,
  state: Mutex<State>,
  wake: Notify,
  cache_epoch: Arc<AtomicU32>,
  counters: Counters,
  /// Which node serves each slot, as last seen: groups a batch by node; its
  /// nodes are what SCAN walks.
  owners: Mutex<SlotOwners>,
  /// A replacement cluster connection is being made (see `rebuild_soon`).
  rebuilding: std::sync::atomic::AtomicBool,
  /// Numbers the cluster connections made; `live` is the one in use. A
  /// Disconnection from an older one (dropped after a rebuild) is no news.
  made: AtomicU64,
  live: AtomicU64,
}

/// The JS thread's handle on a cluster client.
pub struct Cluster {
  pub cache_epoch: Arc<AtomicU32>,
  shared: Arc<Shared>,
}

impl Cluster {
  pub fn start(config: Config, outbox: Arc<Outbox>, stats: Arc<Stats>) -> Cluster {
    let cache_epoch = Arc::new(AtomicU32::new(0));
    let shared = Arc::new(Shared {
      cfg: Arc::new(config),
      outbox,
      stats,
      state: Mutex::new(State {
        phase: Phase::Connecting,
        conn: None,
        in_flight: 0,
        closing: false,
      }),
      wake: Notify::new(),
      cache_epoch: cache_epoch.clone(),
      counters: Counters::default(),
      owners: Mutex::new(SlotOwners::default()),
      rebuilding: std::sync::atomic::AtomicBool::new(false),
      made: AtomicU64::new(0),
      live: AtomicU64::new(0),
    });
    runtime().spawn(supervise(shared.clone()));
    Cluster {
      cache_epoch,
      shared,
    }
  }

  pub fn send(&self, batch: Batch) {
    let s = &self.shared;
    let mut st = s.state.lock();
    let error = match st.phase {
      _ if st.closing => Error::closed(),
      Phase::Up => {
        let conn = st.conn.clone().expect("a connection while up");
        st.in_flight += 1;
        drop(st);
        runtime().spawn(run_batch(s.clone(), conn, batch));
        return;
      }
      Phase::Connecting => Error::new(ErrorCode::Connection, "the client is still connecting"),
      Phase::Closed => Error::closed(),
    };
    drop(st);
    reject_all(&s.outbox, &batch.entries, &error);
  }

  pub fn close(&self) {
    let mut st = self.shared.state.lock();
    st.closing = true;
    let ended = st.phase == Phase::Closed;
    drop(st);
    if ended {
      self.shared.outbox.push(Completion::Event(Event::Closed));
    } else {
      self.shared.wake.notify_one();
    }
  }

  /// `[masters, moved, ask, retries, refreshes]`.
  pub fn counters(&self) -> [u64; 5] {
    let c = &self.shared.counters;
    [
      c.masters.load(Relaxed),
      c.moved.load(Relaxed),
      c.ask.load(Relaxed),
      c.retries.load(Relaxed),
      c.refreshes.load(Relaxed),
    ]
  }
}

impl Drop for Cluster {
  fn drop(&mut self) {
    self.shared.state.lock().closing = true;
    self.shared.wake.notify_one();
  }
}

fn seeds(cfg: &Config) -> String {
  let cl = cfg.cluster.as_ref().expect("cluster mode");
  cl.nodes
    .iter()
    .map(|(h, p)| crate::engine::sentinel::addr(h, *p))
    .collect::<Vec<_>>()
    .join(", ")
}

/// Turns a redis-rs error into ours; `what` names what failed.
fn classify(cfg: &Config, e: &redis::RedisError, what: &str) -> Error {
  if let (Some(code), detail) = (e.code(), e.detail()) {
    let text = match detail {
      Some(d) => format!("{code} {d}"),
      None => code.to_string(),
    };
    return cfg.redact(Error::from_server(&text));
  }
  if e.is_timeout() {
    return Error::new(
      ErrorCode::Timeout,
      format!(
        "{what}: no reply within {} ms",
        cfg.command_timeout.as_millis()
      ),
    );
  }
  if e.kind() == ErrorKind::AuthenticationFailed {
    return cfg.redact(Error::new(
      ErrorCode::Auth,
      format!("{what}: authentication failed ({e})"),
    ));
  }
  // redis-rs reports a failed first connection to every seed as one Io error
  // whose text carries the cause's kind: the one place its words are read.
  let text = e.to_string();
  if ["AuthenticationFailed", "WRONGPASS", "NOAUTH", "NOPERM"]
    .iter()
    .any(|w| text.contains(w))
  {
    return cfg.redact(Error::new(
      ErrorCode::Auth,
      format!("{what}: authentication failed ({text})"),
    ));
  }
  if text.contains("invalid peer certificate") || text.contains("CertificateRequired") {
    return Error::new(
      ErrorCode::Tls,
      format!("{what}: TLS session refused ({text})"),
    );
  }
  let mut source = std::error::Error::source(e);
  while let Some(s) = source {
    if let Some(tls) = s.downcast_ref::<rustls::Error>() {
      return Error::new(
        ErrorCode::Tls,
        format!("{what}: TLS session refused ({tls})"),
      );
    }
    if let Some(io) = s.downcast_ref::<std::io::Error>() {
      if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return Error::new(
          ErrorCode::Tls,
          format!("{what}: TLS session refused ({tls})"),
        );
      }
    }
    source = s.source();
  }
  cfg.redact(Error::new(ErrorCode::Connection, format!("{what} ({e})")))
}

async fn open(s: &Arc<Shared>) -> Result<(ClusterConnection, u64)> {
  let number = s.made.fetch_add(1, Relaxed) + 1;
  let cfg = &s.cfg;
  let cl = cfg.cluster.as_ref().expect("cluster mode");
  let scheme = if cfg.tls.is_some() { "rediss" } else { "redis" };
  let urls: Vec<String> = cl
    .nodes
    .iter()
    .map(|(h, p)| format!("{scheme}://{}", crate::engine::sentinel::addr(h, *p)))
    .collect();
  let mut b = ClusterClientBuilder::new(urls)
    .connection_timeout(cfg.connect_timeout)
    .response_timeout(cfg.command_timeout)
    .retries(0);
  if let Some(p) = &cfg.password {
    b = b.password(&p.0);
  }
  if let Some(u) = &cfg.username {
    b = b.username(u);
  }
  if let Some(t) = &cfg.tls {
    // redis-rs' rustls wants a crypto provider installed once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    b = b.tls(if t.reject_unauthorized {
      TlsMode::Secure
    } else {
      TlsMode::Insecure
    });
    if t.ca.is_some() || t.cert.is_some() {
      b = b.certs(redis::TlsCertificates {
        client_tls: match (&t.cert, &t.key) {
          (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
            client_cert: c.as_bytes().to_vec(),
            client_key: k.0.as_bytes().to_vec(),
          }),
          _ => None,
        },
        root_cert: t.ca.as_ref().map(|c| c.as_bytes().to_vec()),
      });
    }
  }
  // RESP3 always: a node connection that closes while idle announces itself
  // (a Disconnection push) and is replaced before a call meets it; over RESP2
  // redis-rs would find out only by failing the next call sent there.
  let weak = Arc::downgrade(s);
  b = b
    .use_protocol(redis::ProtocolVersion::RESP3)
    .push_sender(move |p: redis::PushInfo| {
      if let Some(s) = weak.upgrade() {
        s.on_push(p, number);
      }
      Ok::<(), ()>(())
    });
  let what = format!("cannot connect to the cluster at {}", seeds(cfg));
  let client = b.build().map_err(|e| classify(cfg, &e, &what))?;
  let mut conn = tokio::time::timeout(
    cfg.connect_timeout,
    client.get_async_generic_connection::<NodeConnection>(),
  )
  .await
  .map_err(|_| {
    Error::new(
      ErrorCode::Connection,
      format!(
        "{what} (timed out after {} ms)",
        cfg.connect_timeout.as_millis()
      ),
    )
  })?
  .map_err(|e| classify(cfg, &e, &what))?;
  s.load_masters(&mut conn).await?;
  if cfg.client_cache.is_some() {
    s.track(&mut conn).await?;
  }
  Ok((conn, number))
}

async fn supervise(s: Arc<Shared>) {
  let conn = match open(&s).await {
    Ok((c, number)) => {
      s.live.store(number, Relaxed);
      c
    }
    Err(e) => {
      s.state.lock().phase = Phase::Closed;
      s.outbox.push(Completion::Event(Event::ConnectFailed(e)));
      return;
    }
  };
  {
    let mut st = s.state.lock();
    st.conn = Some(conn);
    st.phase = Phase::Up;
  }
  s.outbox.push(Completion::Event(Event::Ready));
  loop {
    {
      let mut st = s.state.lock();
      if st.closing && st.in_flight == 0 {
        st.conn = None;
        st.phase = Phase::Closed;
        break;
      }
    }
    s.wake.notified().await;
  }
  s.outbox.push(Completion::Event(Event::Closed));
}

async fn run_batch(s: Arc<Shared>, conn: ClusterConnection, batch: Batch) {
  let Batch {
    cmds,
    entries,
    created,
  } = batch;
  // redis-rs' response timeout covers one request and starts again with the
  // next redirection; this deadline bounds the whole call, from when it was made.
  let deadline = created + s.cfg.command_timeout;
  // One call per entry: a command, or a transaction's MULTI … EXEC (its keys
  // share a slot: lib/core/transaction.ts checks) sent as one pipeline.
  let mut cmds = cmds.into_iter();
  let calls: Vec<Vec<Cmd>> = entries
    .iter()
    .map(|e| cmds.by_ref().take(e.shape.replies()).collect())
    .collect();
  match s.nodes_of(&calls) {
    Some(nodes) => s.pipelined(conn, calls, nodes, &entries, deadline).await,
    None => {
      let results = s.one_by_one(conn, calls, deadline).await;
      s.complete(&entries, results.into_iter().enumerate());
    }
  }
  s.stats
    .record_replies(created.elapsed().as_micros() as u64, entries.len() as u64);
  let mut st = s.state.lock();
  st.in_flight -= 1;
  if st.closing && st.in_flight == 0 {
    drop(st);
    s.wake.notify_one();
  }
}

/// The error of a call not answered by `deadline`.
fn timed_out(timeout: Duration) -> Error {
  Error::new(
    ErrorCode::Timeout,
    format!(
      "no reply from the cluster within {} ms; the command may or may not have run",
      timeout.as_millis()
    ),
  )
}

/// Where the keys of a command are among its arguments (after the name), by the
/// command table; an unknown command's first argument, as redis-rs takes it.
fn key_positions(name: &[u8], rest: &[&[u8]]) -> Vec<usize> {
  match table::lookup(name, rest) {
    Some(c) => table::routing_positions(c, rest),
    None if rest.is_empty() => vec![],
    None => vec![0],
  }
}

/// The slot of the keys of `cmd` when they share one (and it is no SCAN).
fn key_slot(cmd: &Cmd) -> Option<u16> {
  let args: Vec<&[u8]> = cmd
    .args_iter()
    .map(|a| match a {
      redis::Arg::Simple(b) => b,
      _ => b"0",
    })
    .collect();
  let (name, rest) = args.split_first()?;
  if name.eq_ignore_ascii_case(b"SCAN") {
    return None;
  }
  let positions = key_positions(name, rest);
  let mut slots = positions.iter().map(|&i| slot(rest[i]));
  let first = slots.next()?;
  slots.all(|s| s == first).then_some(first)
}

impl Shared {
  /// For a batch of single commands whose keys each share a slot: the node
  /// and slot of each, by `owners`. `None` when any call is something else
  /// (a transaction, a keyless or cross-slot command, an unmapped slot), so
  /// that a batch's calls to one slot are never sent out of order.
  fn nodes_of(&self, calls: &[Vec<Cmd>]) -> Option<Vec<(u16, u16)>> {
    let owners = self.owners.lock();
    calls
      .iter()
      .map(|call| match call.as_slice() {
        [cmd] => {
          let slot = key_slot(cmd)?;
          Some((owners.node(slot)?, slot))
        }
        _ => None,
      })
      .collect()
  }

  /// A batch as one pipeline per node. A redirection in a reply is followed
  /// for that command alone; a node redis-rs has no connection to (nothing
  /// was sent) sends its commands one by one.
  async fn pipelined(
    self: &Arc<Self>,
    conn: ClusterConnection,
    calls: Vec<Vec<Cmd>>,
    nodes: Vec<(u16, u16)>,
    entries: &[Entry],
    deadline: tokio::time::Instant,
  ) {
    let cmds: Vec<Cmd> = calls.into_iter().flatten().collect();
    let node_count = nodes
      .iter()
      .map(|&(n, _)| n as usize + 1)
      .max()
      .unwrap_or(0);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); node_count];
    for (i, &(node, _)) in nodes.iter().enumerate() {
      members[node as usize].push(i);
    }
    let addrs = self.owners.lock().nodes.clone();
    join_all(
      members
        .into_iter()
        .enumerate()
        .filter(|(_, m)| !m.is_empty())
        .map(|(node, members)| {
          let (s, mut conn, cmds, nodes) = (self.clone(), conn.clone(), &cmds, &nodes);
          let (host, port) = addrs[node].clone();
          async move {
            let mut pipe = redis::Pipeline::with_capacity(members.len());
            for &i in &members {
              pipe.add_command(cmds[i].clone());
            }
            let route = SingleNodeRoutingInfo::ByAddress { host, port };
            let call = async {
              let replies = conn.route_pipeline(pipe, 0, members.len(), route).await;
              let mut out = Vec::with_capacity(members.len());
              match replies {
                Ok(replies) => {
                  for (&i, reply) in members.iter().zip(reveal(replies)) {
                    let r = match reply {
                      Value::ServerError(e) if needs_action(&e) => {
                        s.follow(&mut conn, cmds[i].clone(), nodes[i].1, Some(e.into()))
                          .await
                      }
                      reply => Ok(reply),
                    };
                    out.push((i, r.map(|v| s.laid_out(&cmds[i], v))));
                  }
                }
                Err(e) if e.kind() == ErrorKind::ClusterConnectionNotFound => {
                  for &i in &members {
                    let r = s.routed(&mut conn, cmds[i].clone(), nodes[i].1).await;
                    out.push((i, r.map(|v| s.laid_out(&cmds[i], v))));
                  }
                }
                Err(e) => {
                  let error = s.failed(&e);
                  out.extend(members.iter().map(|&i| (i, Err(error.clone()))));
                }
              }
              out
            };
            // Each node's replies go to JS as they come: its callers' next
            // calls can leave while the other nodes still answer.
            match tokio::time::timeout_at(deadline, call).await {
              Ok(out) => s.complete(entries, out.into_iter()),
              Err(_) => {
                s.rebuild_soon();
                let error = timed_out(s.cfg.command_timeout);
                s.complete(entries, members.iter().map(|&i| (i, Err(error.clone()))));
              }
            }
          }
        }),
    )
    .await;
  }

  /// Hands the results of a batch's entries (by index) to JS.
  fn complete(&self, entries: &[Entry], results: impl Iterator<Item = (usize, Result<Value>)>) {
    let mut done: Vec<Completion> = results
      .map(|(i, r)| {
        let Entry { id, shape } = entries[i];
        match r {
          Ok(reply) => Completion::Reply { id, shape, reply },
          Err(error) => Completion::Error { id, error },
        }
      })
      .collect();
    self.outbox.push_all(&mut done);
  }

  /// A batch call by call: each routed and followed on its own.
  async fn one_by_one(
    self: &Arc<Self>,
    conn: ClusterConnection,
    calls: Vec<Vec<Cmd>>,
    deadline: tokio::time::Instant,
  ) -> Vec<Result<Value>> {
    join_all(calls.into_iter().map(|group| {
      let s = self.clone();
      let conn = conn.clone();
      async move {
        let call = async {
          if group.len() == 1 {
            s.execute(conn, group.into_iter().next().expect("one command"))
              .await
          } else {
            s.execute_group(conn, group).await
          }
        };
        match tokio::time::timeout_at(deadline, call).await {
          Ok(r) => r,
          Err(_) => {
            s.rebuild_soon();
            Err(timed_out(s.cfg.command_timeout))
          }
        }
      }
    }))
    .await
  }
}

/// Commands whose keys may be split by slot, and how their replies combine.
#[derive(Clone, Copy, PartialEq)]
enum Split {
  /// MGET: values in the keys' order.
  Values,
  /// DEL, UNLINK, EXISTS, TOUCH: a sum.
  Sum,
  /// MSET: key/value pairs, `OK`.
  Pairs,
}

fn split_kind(name: &[u8]) -> Option<Split> {
  match name.to_ascii_uppercase().as_slice() {
    b"MGET" => Some(Split::Values),
    b"DEL" | b"UNLINK" | b"EXISTS" | b"TOUCH" => Some(Split::Sum),
    b"MSET" => Some(Split::Pairs),
    _ => None,
  }
}

/// The command's name (its first argument).
fn command_name(cmd: &Cmd) -> Vec<u8> {
  match cmd.args_iter().next() {
    Some(redis::Arg::Simple(b)) => b.to_vec(),
    _ => Vec::new(),
  }
}

/// A reply of the commands whose RESP3 reply nests pairs (`[[member, score], …]`)
/// where RESP2 gives one flat list (`[member, score, …]`), flattened: ZRANGE and
/// friends WITHSCORES, ZRANDMEMBER and HRANDFIELD with their values, ZPOPMIN and
/// ZPOPMAX with a count. (ZMPOP and BZMPOP nest in both protocols.) In RESP2 these
/// lists hold only strings, so a list of pairs can only be the RESP3 layout. The
/// cluster connection speaks RESP3 for its own reasons (see `open`); `command()`
/// answers as a standalone client does. Other RESP3 types: `resp2_view` in
/// src/napi/mod.rs.
fn flat_pairs(name: &[u8], reply: Value) -> Value {
  let nests = matches!(
    name.to_ascii_lowercase().as_slice(),
    b"zrange"
      | b"zrangebyscore"
      | b"zrevrange"
      | b"zrevrangebyscore"
      | b"zunion"
      | b"zinter"
      | b"zdiff"
      | b"zrandmember"
      | b"zpopmin"
      | b"zpopmax"
      | b"hrandfield"
  );
  match reply {
    Value::Array(items)
      if nests
        && !items.is_empty()
        && items
          .iter()
          .all(|i| matches!(i, Value::Array(pair) if pair.len() == 2)) =>
    {
      Value::Array(
        items
          .into_iter()
          .flat_map(|i| match i {
            Value::Array(pair) => pair,
            other => vec![other],
          })
          .collect(),
      )
    }
    other => other,
  }
}

fn text(v: &Value) -> Option<String> {
  match v {
    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
    Value::SimpleString(s) => Some(s.clone()),
    _ => None,
  }
}

fn parse_addr(addr: &str) -> Option<(String, u16)> {
  let (h, p) = addr.rsplit_once(':')?;
  let h = h.trim_start_matches('[').trim_end_matches(']');
  Some((h.to_string(), p.parse().ok()?))
}

impl Shared {
  /// CLUSTER SLOTS: the masters (for SCAN and `stats().cluster.masters`) and
  /// the slots each one serves.
  async fn load_masters(&self, conn: &mut ClusterConnection) -> Result<()> {
    let reply = conn
      .route_command(
        redis::cmd("CLUSTER").arg("SLOTS").clone(),
        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
      )
      .await
      .map_err(|e| classify(&self.cfg, &e, "CLUSTER SLOTS"))?;
    // A node announced without an address means "the one you reached me at".
    let seed = self.cfg.cluster.as_ref().and_then(|c| c.nodes.first());
    let Some(map) = parse_slot_map(reply, seed.map_or("", |(h, _)| h.as_str())) else {
      return Err(Error::new(
        ErrorCode::Reply,
        format!(
          "CLUSTERDOWN {} serves no slots (is the cluster created?)",
          seeds(&self.cfg)
        ),
      ));
    };
    let owners = SlotOwners::from_map(&map);
    self
      .counters
      .masters
      .store(owners.nodes.len() as u64, Relaxed);
    *self.owners.lock() = owners;
    Ok(())
  }

  /// Replaces the cluster connection with a fresh one from the seeds.
  ///
  /// With its own retries off, redis-rs does not reload the slot map after a
  /// node stops answering (only after a MOVED), so the slots of a master
  /// that died stay pointed at it; and a request can stay unanswered when a
  /// node's connection is rebuilt under load. A new connection starts from a
  /// fresh CLUSTER SLOTS. Calls in flight finish (or time out) on the old one.
  fn rebuild_soon(self: &Arc<Self>) {
    use std::sync::atomic::Ordering::AcqRel;
    if self.rebuilding.swap(true, AcqRel) {
      return;
    }
    let s = self.clone();
    runtime().spawn(async move {
      let mut attempt = 0u32;
      loop {
        if attempt > 0 {
          tokio::time::sleep(Duration::from_millis(100).saturating_mul(1 << attempt.min(3))).await;
        }
        if s.state.lock().closing {
          break;
        }
        if let Ok((conn, number)) = open(&s).await {
          let mut st = s.state.lock();
          if st.phase == Phase::Up && !st.closing {
            st.conn = Some(conn);
            s.live.store(number, Relaxed);
          }
          drop(st);
          s.counters.refreshes.fetch_add(1, Relaxed);
          if s.cfg.client_cache.is_some() {
            // Invalidations sent to the old connections are lost.
            s.outbox.push(Completion::Event(Event::CacheReset));
            s.cache_epoch.fetch_add(1, Relaxed);
          }
          break;
        }
        attempt += 1;
      }
      s.rebuilding
        .store(false, std::sync::atomic::Ordering::Release);
    });
  }

  /// Client-side caching: tracking on every node connection.
  async fn track(&self, conn: &mut ClusterConnection) -> Result<()> {
    let Some(cc) = &self.cfg.client_cache else {
      return Ok(());
    };
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("TRACKING").arg("ON").arg("BCAST");
    for p in &cc.prefixes {
      cmd
        .arg("PREFIX")
        .arg([self.cfg.key_prefix.as_slice(), p.as_bytes()].concat());
    }
    conn
      .route_command(
        cmd,
        RoutingInfo::MultiNode((
          MultipleNodeRoutingInfo::AllNodes,
          Some(ResponsePolicy::AllSucceeded),
        )),
      )
      .await
      .map(|_| ())
      .map_err(|e| classify(&self.cfg, &e, "clientCache: CLIENT TRACKING"))
  }

  fn on_push(self: &Arc<Self>, push: redis::PushInfo, number: u64) {
    match push.kind {
      redis::PushKind::Invalidate => {
        crate::engine::deliver_invalidation(&self.outbox, &self.cache_epoch, push.data);
      }
      redis::PushKind::Disconnection => {
        // A node connection went (its invalidations with it): a new cluster
        // connection replaces it, tracking again.
        if self.cfg.client_cache.is_some() {
          self.outbox.push(Completion::Event(Event::CacheReset));
          self.cache_epoch.fetch_add(1, Relaxed);
        }
        if number == self.live.load(Relaxed) && self.state.lock().phase == Phase::Up {
          self.rebuild_soon();
        }
      }
      _ => {}
    }
  }

  /// One command of a batch: routed by its keys, redirections followed.
  async fn execute(self: &Arc<Self>, mut conn: ClusterConnection, cmd: Cmd) -> Result<Value> {
    let args: Vec<Vec<u8>> = cmd
      .args_iter()
      .map(|a| match a {
        redis::Arg::Simple(b) => b.to_vec(),
        _ => b"0".to_vec(),
      })
      .collect();
    let Some((name, rest)) = args.split_first() else {
      return Err(Error::invalid("empty command"));
    };
    let rest: Vec<&[u8]> = rest.iter().map(|a| a.as_slice()).collect();
    if name.eq_ignore_ascii_case(b"SCAN") {
      return self.scan(conn, name, &rest).await;
    }
    if name.eq_ignore_ascii_case(b"CLIENT")
      && rest.len() == 1
      && rest[0].eq_ignore_ascii_case(b"LIST")
    {
      return self.client_lists(conn, cmd).await;
    }
    let positions = key_positions(name, &rest);
    if positions.is_empty() {
      // No key: redis-rs routes it (a random node, or every master with the
      // reply combined, as for DBSIZE).
      return conn
        .req_packed_command(&cmd)
        .await
        .map_err(|e| self.failed(&e));
    }
    let slots: Vec<u16> = positions.iter().map(|&i| slot(rest[i])).collect();
    if slots.iter().all(|&s| s == slots[0]) {
      let reply = self.routed(&mut conn, cmd, slots[0]).await?;
      return Ok(self.as_resp2_lays_out(name, reply));
    }
    match split_kind(name) {
      Some(kind) => {
        self
          .split(&mut conn, name, &rest, &positions, &slots, kind)
          .await
      }
      // Keys of several slots: the server answers CROSSSLOT.
      None => self.routed(&mut conn, cmd, slots[0]).await,
    }
  }

  /// CLIENT LIST: every master's clients, one list after the other. redis-rs
  /// would ask one node at random, and a listing such as BullMQ's
  /// `getWorkers()` (the connections named after a queue) would miss those
  /// connected elsewhere.
  async fn client_lists(self: &Arc<Self>, mut conn: ClusterConnection, cmd: Cmd) -> Result<Value> {
    let every_master = RoutingInfo::MultiNode((
      MultipleNodeRoutingInfo::AllMasters,
      Some(ResponsePolicy::Special),
    ));
    let reply = conn
      .route_command(cmd, every_master)
      .await
      .map_err(|e| self.failed(&e))?;
    // Special: a map of each node's address to its reply.
    let Value::Map(per_node) = reply else {
      return Ok(reply);
    };
    let mut all = Vec::new();
    for (_, list) in per_node {
      match list {
        Value::BulkString(b) => all.extend(b),
        Value::VerbatimString { text, .. } => all.extend(text.into_bytes()),
        error @ Value::ServerError(_) => return Ok(error),
        _ => {}
      }
    }
    Ok(Value::BulkString(all))
  }

  /// A transaction (MULTI, commands, EXEC) to the master of its keys' slot,
  /// as one pipeline; its replies come back as one array.
  async fn execute_group(
    self: &Arc<Self>,
    mut conn: ClusterConnection,
    group: Vec<Cmd>,
  ) -> Result<Value> {
    let mut slot_of_keys = None;
    for cmd in &group {
      let args: Vec<Vec<u8>> = cmd
        .args_iter()
        .map(|a| match a {
          redis::Arg::Simple(b) => b.to_vec(),
          _ => Vec::new(),
        })
        .collect();
      if let Some((name, rest)) = args.split_first() {
        let rest: Vec<&[u8]> = rest.iter().map(|a| a.as_slice()).collect();
        if let Some(c) = table::lookup(name, &rest) {
          if let Some(&i) = table::routing_positions(c, &rest).first() {
            slot_of_keys = Some(slot(rest[i]));
            break;
          }
        }
      }
    }
    let route = match slot_of_keys {
      Some(s) => SingleNodeRoutingInfo::SpecificNode(Route::new(s, SlotAddr::Master)),
      None => SingleNodeRoutingInfo::RandomPrimary,
    };
    let n = group.len();
    let names: Vec<Vec<u8>> = group.iter().map(command_name).collect();
    let mut pipe = redis::Pipeline::with_capacity(n);
    for c in group {
      pipe.add_command(c);
    }
    let mut replies = reveal(
      conn
        .route_pipeline(pipe, 0, n, route)
        .await
        .map_err(|e| self.failed(&e))?,
    );
    // As redis-rs' cluster layer answers a redirected pipeline (see `cluster_node`).
    if let Some(Value::ServerError(e)) = replies
      .iter()
      .find(|r| matches!(r, Value::ServerError(e) if needs_action(e)))
    {
      return Err(self.failed(&e.clone().into()));
    }
    // A transaction's commands answer inside EXEC's reply (the last one).
    let atomic = names
      .first()
      .is_some_and(|c| c.eq_ignore_ascii_case(b"MULTI"));
    let (replies_of, names) = match (atomic, replies.last_mut()) {
      (true, Some(Value::Array(exec))) => (exec, names.get(1..n - 1).unwrap_or_default()),
      (true, _) => return Ok(Value::Array(replies)),
      (false, _) => (&mut replies, &names[..]),
    };
    for (reply, name) in replies_of.iter_mut().zip(names) {
      *reply = self.as_resp2_lays_out(name, std::mem::replace(reply, Value::Nil));
    }
    Ok(Value::Array(replies))
  }

  /// `reply` laid out as RESP2 would (see [`flat_pairs`]) when the client shows
  /// RESP2 replies: as `JsSide::resp2` (src/napi/mod.rs), unless client-side
  /// caching asked for RESP3 replies.
  fn as_resp2_lays_out(&self, name: &[u8], reply: Value) -> Value {
    if self.cfg.client_cache.is_none() {
      flat_pairs(name, reply)
    } else {
      reply
    }
  }

  /// `as_resp2_lays_out` for `cmd`'s reply; only an array may need it.
  fn laid_out(&self, cmd: &Cmd, reply: Value) -> Value {
    match reply {
      Value::Array(_) => self.as_resp2_lays_out(&command_name(cmd), reply),
      other => other,
    }
  }

  fn failed(self: &Arc<Self>, e: &redis::RedisError) -> Error {
    let err = classify(&self.cfg, e, &format!("cluster at {}", seeds(&self.cfg)));
    if matches!(err.code, ErrorCode::Connection | ErrorCode::Timeout) {
      self.rebuild_soon();
    }
    if err.code == ErrorCode::Connection {
      Error::new(
        err.code,
        format!("{}; the command may or may not have run", err.message),
      )
    } else {
      err
    }
  }

  /// Sends `cmd` to the master of `slot`, following redirections.
  async fn routed(
    self: &Arc<Self>,
    conn: &mut ClusterConnection,
    cmd: Cmd,
    slot: u16,
  ) -> Result<Value> {
    self.follow(conn, cmd, slot, None).await
  }

  /// As `routed`, from the redirection `first` when the command already got one.
  async fn follow(
    self: &Arc<Self>,
    conn: &mut ClusterConnection,
    cmd: Cmd,
    slot: u16,
    mut first: Option<redis::RedisError>,
  ) -> Result<Value> {
    let max = self.cfg.cluster.as_ref().map_or(16, |c| c.max_redirections);
    let mut route = SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
    let mut asking = false;
    let mut attempt = 0u32;
    loop {
      let r = if let Some(e) = first.take() {
        Err(e)
      } else if asking {
        let mut pipe = redis::pipe();
        pipe.cmd("ASKING").add_command(cmd.clone());
        conn
          .route_pipeline(pipe, 1, 1, route.clone())
          .await
          .and_then(|v| match reveal(v).pop() {
            Some(Value::ServerError(e)) => Err(e.into()),
            Some(v) => Ok(v),
            None => Ok(Value::Nil),
          })
      } else {
        conn
          .route_command(cmd.clone(), RoutingInfo::SingleNode(route.clone()))
          .await
      };
      // A redirection may come back as an error or as an error reply.
      let e: redis::RedisError = match r {
        Ok(Value::ServerError(se)) => {
          if !needs_action(&se) {
            return Ok(Value::ServerError(se));
          }
          se.into()
        }
        Ok(v) => return Ok(v),
        Err(e) => e,
      };
      let redirect = e.redirect_node().and_then(|(addr, _)| parse_addr(addr));
      let kind = e.kind();
      if attempt >= max {
        return Err(self.failed(&e));
      }
      attempt += 1;
      // Follow up on the newest cluster connection (it may have been rebuilt).
      if let Some(newest) = self.state.lock().conn.clone() {
        *conn = newest;
      }
      match (kind, redirect) {
        (ErrorKind::Server(ServerErrorKind::Moved), Some((host, port))) => {
          self.owners.lock().moved(slot, &(host.clone(), port));
          self.counters.moved.fetch_add(1, Relaxed);
          self.counters.refreshes.fetch_add(1, Relaxed);
          route = SingleNodeRoutingInfo::ByAddress { host, port };
          asking = false;
        }
        (ErrorKind::Server(ServerErrorKind::Ask), Some((host, port))) => {
          self.counters.ask.fetch_add(1, Relaxed);
          route = SingleNodeRoutingInfo::ByAddress { host, port };
          asking = true;
        }
        (ErrorKind::Server(ServerErrorKind::TryAgain | ServerErrorKind::ClusterDown), _) => {
          self.counters.retries.fetch_add(1, Relaxed);
          tokio::time::sleep(
            Duration::from_millis(20 * attempt as u64).min(Duration::from_millis(500)),
          )
          .await;
          route = SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
          asking = false;
        }
        (ErrorKind::ClusterConnectionNotFound, _) => {
          // Nothing was sent: no connection to that node (a failover named a
          // node redis-rs has not connected to). A fresh cluster connection
          // learns the new topology.
          self.rebuild_soon();
          self.counters.retries.fetch_add(1, Relaxed);
          self.counters.refreshes.fetch_add(1, Relaxed);
          tokio::time::sleep(
            Duration::from_millis(50 * attempt as u64).min(Duration::from_millis(500)),
          )
          .await;
          route = SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
          asking = false;
        }
        _ => {
          if e.is_io_error() || e.is_connection_dropped() {
            self.counters.refreshes.fetch_add(1, Relaxed);
          }
          return Err(self.failed(&e));
        }
      }
    }
  }

  /// MGET/MSET/DEL/EXISTS/TOUCH/UNLINK over keys of several slots: one call
  /// per slot, replies combined in the caller's order.
  async fn split(
    self: &Arc<Self>,
    conn: &mut ClusterConnection,
    name: &[u8],
    rest: &[&[u8]],
    positions: &[usize],
    slots: &[u16],
    kind: Split,
  ) -> Result<Value> {
    let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
    for (k, &s) in slots.iter().enumerate() {
      match groups.iter_mut().find(|(g, _)| *g == s) {
        Some((_, ks)) => ks.push(k),
        None => groups.push((s, vec![k])),
      }
    }
    let calls = groups.iter().map(|(s, ks)| {
      let mut cmd = redis::cmd(std::str::from_utf8(name).unwrap_or("MGET"));
      for &k in ks {
        let i = positions[k];
        cmd.arg(rest[i]);
        if kind == Split::Pairs {
          cmd.arg(rest.get(i + 1).copied().unwrap_or(b""));
        }
      }
      let mut conn = conn.clone();
      let s = *s;
      async move { self.routed(&mut conn, cmd, s).await }
    });
    let replies = join_all(calls).await;
    match kind {
      Split::Values => {
        let mut out = vec![Value::Nil; slots.len()];
        for ((_, ks), r) in groups.iter().zip(replies) {
          let Value::Array(vals) = r? else {
            return Err(Error::new(
              ErrorCode::Reply,
              "MGET answered something else than an array",
            ));
          };
          for (k, v) in ks.iter().zip(vals) {
            out[*k] = v;
          }
        }
        Ok(Value::Array(out))
      }
      Split::Sum => {
        let mut n = 0i64;
        for r in replies {
          if let Value::Int(i) = r? {
            n += i;
          }
        }
        Ok(Value::Int(n))
      }
      Split::Pairs => {
        for r in replies {
          r?;
        }
        Ok(Value::Okay)
      }
    }
  }

  /// SCAN over every master in turn; the cursor is `<master>-<cursor>`.
  async fn scan(
    self: &Arc<Self>,
    mut conn: ClusterConnection,
    name: &[u8],
    rest: &[&[u8]],
  ) -> Result<Value> {
    let cursor = rest.first().copied().unwrap_or(b"0");
    let cursor = std::str::from_utf8(cursor).unwrap_or("0");
    let (mut index, mut node_cursor) = match cursor.split_once('-') {
      Some((i, c)) => (i.parse::<usize>().unwrap_or(0), c.to_string()),
      None => (0, cursor.to_string()),
    };
    if index == 0 && node_cursor == "0" {
      self.load_masters(&mut conn).await?;
    }
    let masters = self.owners.lock().nodes.clone();
    loop {
      let Some((host, port)) = masters.get(index).cloned() else {
        return Ok(Value::Array(vec![
          Value::BulkString(b"0".to_vec()),
          Value::Array(vec![]),
        ]));
      };
      let mut cmd = redis::cmd(std::str::from_utf8(name).unwrap_or("SCAN"));
      cmd.arg(&node_cursor);
      for a in &rest[1.min(rest.len())..] {
        cmd.arg(*a);
      }
      let reply = conn
        .route_command(
          cmd,
          RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
        )
        .await
        .map_err(|e| self.failed(&e))?;
      let Value::Array(mut parts) = reply else {
        return Err(Error::new(
          ErrorCode::Reply,
          "SCAN answered something else than an array",
        ));
      };
      let keys = parts.pop().unwrap_or(Value::Array(vec![]));
      let next = parts.first().and_then(text).unwrap_or_else(|| "0".into());
      let (next_index, next_cursor) = if next == "0" {
        (index + 1, "0".to_string())
      } else {
        (index, next)
      };
      let done = next_index >= masters.len();
      let empty = matches!(&keys, Value::Array(k) if k.is_empty());
      if empty && !done && next_cursor == "0" {
        // Nothing on this master: go on to the next without a round trip to JS.
        index = next_index;
        node_cursor = next_cursor;
        continue;
      }
      let cursor = if done {
        "0".to_string()
      } else {
        format!("{next_index}-{next_cursor}")
      };
      return Ok(Value::Array(vec![
        Value::BulkString(cursor.into_bytes()),
        keys,
      ]));
    }
  }
}

/// A cluster's slot map: `(first, last, master)` for each range.
pub type SlotMap = Vec<(u16, u16, (String, u16))>;

/// The masters' ranges in a CLUSTER SLOTS reply; a node announced without an
/// address is the one asked (`host`). `None` when no slot is served.
pub fn parse_slot_map(reply: Value, host: &str) -> Option<SlotMap> {
  let Value::Array(ranges) = reply else {
    return None;
  };
  let text = |v: &Value| match v {
    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
    Value::SimpleString(s) => Some(s.clone()),
    _ => None,
  };
  let int = |v: Option<&Value>| match v {
    Some(Value::Int(i)) => u16::try_from(*i).ok(),
    _ => None,
  };
  let mut map = SlotMap::new();
  for r in ranges {
    let Value::Array(parts) = r else { continue };
    let (Some(first), Some(last)) = (int(parts.first()), int(parts.get(1))) else {
      continue;
    };
    let Some(Value::Array(master)) = parts.get(2) else {
      continue;
    };
    let Some(port) = int(master.get(1)) else {
      continue;
    };
    let h = master.first().and_then(text).unwrap_or_default();
    let h = if h.is_empty() || h == "?" {
      host.to_string()
    } else {
      h
    };
    map.push((first, last, (h, port)));
  }
  (!map.is_empty()).then_some(map)
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::future::Future;
  use std::task::Poll;

  /// See the module's docs: redis-rs' slot map reload waits for every read of
  /// its node map, and stops polling the requests that would finish theirs.
  #[test]
  fn a_lock_wait_cut_short_by_the_coop_budget_holds_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
      .build()
      .expect("a runtime");
    rt.block_on(async {
      let lock = tokio::sync::RwLock::new(());
      let mut read = std::pin::pin!(lock.read());
      std::future::poll_fn(|cx| {
        // Spend the task's budget, then start a read: it yields.
        while std::pin::pin!(tokio::task::coop::consume_budget())
          .poll(cx)
          .is_ready()
        {}
        assert!(read.as_mut().poll(cx).is_pending());
        Poll::Ready(())
      })
      .await;
      assert!(
        lock.try_write().is_ok(),
        "this tokio keeps a lock for a read that yielded: redis-rs' cluster connection can hang"
      );
    });
  }

  fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
  }

  #[test]
  fn pairs_are_flattened_only_for_the_commands_that_nest_them() {
    let nested = || {
      Value::Array(vec![
        Value::Array(vec![bulk("a"), Value::Double(1.0)]),
        Value::Array(vec![bulk("b"), Value::Double(2.5)]),
      ])
    };
    let flat = Value::Array(vec![
      bulk("a"),
      Value::Double(1.0),
      bulk("b"),
      Value::Double(2.5),
    ]);
    assert_eq!(flat_pairs(b"ZRANGE", nested()), flat);
    assert_eq!(flat_pairs(b"hrandfield", nested()), flat);
    // ZMPOP nests in RESP2 too; XRANGE's entries are [id, fields] in both.
    assert_eq!(flat_pairs(b"ZMPOP", nested()), nested());
    assert_eq!(flat_pairs(b"XRANGE", nested()), nested());
    // ZRANGE without WITHSCORES: already flat.
    let members = Value::Array(vec![bulk("a"), bulk("b")]);
    assert_eq!(flat_pairs(b"zrange", members.clone()), members);
  }
}
