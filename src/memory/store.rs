//! The keyspace of one `memory://` store: 16 databases of typed values with
//! millisecond expiry, the script cache, command statistics, and the
//! connections that track keys (`CLIENT TRACKING … BCAST`).
//!
//! Expired keys go when they are touched (as in Redis) and by a sweep every
//! 100 ms, so memory is reclaimed and tracking clients hear of the expiry.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use indexmap::IndexMap;
use parking_lot::Mutex;
use tokio::sync::mpsc::UnboundedSender;

pub const DATABASES: usize = 16;
/// Keys removed per database and sweep, so one sweep never stalls the store long.
const SWEEP_BATCH: usize = 1000;
/// Unfinished SCAN cursors remembered per database.
const MAX_CURSORS: usize = 10_000;

pub type Key = Vec<u8>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
  SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .map(|d| d.as_millis() as u64)
    .unwrap_or(0)
}

/// Microseconds since the Unix epoch (TIME).
pub fn now_us() -> u64 {
  SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .map(|d| d.as_micros() as u64)
    .unwrap_or(0)
}

/// A score with a total order (scores are never NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score(pub f64);
impl Eq for Score {}
impl PartialOrd for Score {
  fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
    Some(self.cmp(o))
  }
}
impl Ord for Score {
  fn cmp(&self, o: &Self) -> std::cmp::Ordering {
    self.0.total_cmp(&o.0)
  }
}

/// A sorted set: members ordered by (score, member), and each member's score.
#[derive(Clone, Debug, Default)]
pub struct ZSet {
  pub order: BTreeSet<(Score, Key)>,
  pub scores: HashMap<Key, f64>,
}

impl ZSet {
  /// Sets a member's score; true when the member is new.
  pub fn insert(&mut self, member: Key, score: f64) -> bool {
    // -0 and 0 are one score, as in Redis
    let score = if score == 0.0 { 0.0 } else { score };
    match self.scores.insert(member.clone(), score) {
      Some(old) => {
        self.order.remove(&(Score(old), member.clone()));
        self.order.insert((Score(score), member));
        false
      }
      None => {
        self.order.insert((Score(score), member));
        true
      }
    }
  }

  pub fn remove(&mut self, member: &[u8]) -> bool {
    match self.scores.remove(member) {
      Some(s) => {
        self.order.remove(&(Score(s), member.to_vec()));
        true
      }
      None => false,
    }
  }

  pub fn len(&self) -> usize {
    self.scores.len()
  }

  pub fn is_empty(&self) -> bool {
    self.scores.is_empty()
  }
}

#[derive(Clone, Debug)]
pub enum Value {
  Str(Vec<u8>),
  /// In insertion order, as Redis keeps a small hash (a listpack).
  Hash(IndexMap<Key, Vec<u8>>),
  Set(HashSet<Key>),
  ZSet(ZSet),
  List(VecDeque<Vec<u8>>),
}

impl Value {
  pub fn type_name(&self) -> &'static str {
    match self {
      Value::Str(_) => "string",
      Value::Hash(_) => "hash",
      Value::Set(_) => "set",
      Value::ZSet(_) => "zset",
      Value::List(_) => "list",
    }
  }

  /// A container left empty is deleted, as Redis does.
  pub fn is_empty_container(&self) -> bool {
    match self {
      Value::Str(_) => false,
      Value::Hash(h) => h.is_empty(),
      Value::Set(s) => s.is_empty(),
      Value::ZSet(z) => z.is_empty(),
      Value::List(l) => l.is_empty(),
    }
  }
}

#[derive(Clone, Debug)]
pub struct Entry {
  pub value: Value,
  /// Unix ms at which the key expires.
  pub expires: Option<u64>,
}

/// One database. Keys are kept in order so that SCAN can resume after the
/// last key it returned.
#[derive(Default)]
pub struct Db {
  map: BTreeMap<Key, Entry>,
  expiring: BTreeSet<(u64, Key)>,
  /// Keys this db dropped (expired or emptied) that tracking must hear of.
  pub gone: Vec<Key>,
  cursors: HashMap<u64, Key>,
  cursor_order: VecDeque<u64>,
  next_cursor: u64,
}

impl Db {
  pub fn len(&self) -> usize {
    self.map.len()
  }

  pub fn is_empty(&self) -> bool {
    self.map.is_empty()
  }

  fn expired(&mut self, key: &[u8], now: u64) -> bool {
    match self.map.get(key) {
      Some(e) if e.expires.is_some_and(|t| t <= now) => {
        self.remove(key);
        self.gone.push(key.to_vec());
        true
      }
      _ => false,
    }
  }

  pub fn get(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
    if self.expired(key, now) {
      return None;
    }
    self.map.get(key)
  }

  pub fn get_mut(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
    if self.expired(key, now) {
      return None;
    }
    self.map.get_mut(key)
  }

  pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
    self.get(key, now).is_some()
  }

  /// Stores `entry` under `key`, replacing what was there.
  pub fn insert(&mut self, key: Key, entry: Entry) {
    if let Some(old) = self.map.get(&key).and_then(|e| e.expires) {
      self.expiring.remove(&(old, key.clone()));
    }
    if let Some(t) = entry.expires {
      self.expiring.insert((t, key.clone()));
    }
    self.map.insert(key, entry);
  }

  pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
    let e = self.map.remove(key)?;
    if let Some(t) = e.expires {
      self.expiring.remove(&(t, key.to_vec()));
    }
    Some(e)
  }

  /// Sets or clears the expiry of an existing key.
  pub fn set_expires(&mut self, key: &[u8], at: Option<u64>) {
    if let Some(e) = self.map.get_mut(key) {
      if let Some(old) = e.expires {
        self.expiring.remove(&(old, key.to_vec()));
      }
      e.expires = at;
      if let Some(t) = at {
        self.expiring.insert((t, key.to_vec()));
      }
    }
  }

  /// Deletes a container that a command left empty.
  pub fn drop_if_empty(&mut self, key: &[u8]) {
    if self
      .map
      .get(key)
      .is_some_and(|e| e.value.is_empty_container())
    {
      self.remove(key);
    }
  }

  pub fn clear(&mut self) {
    self.map.clear();
    self.expiring.clear();
    self.cursors.clear();
    self.cursor_order.clear();
  }

  /// Removes up to `max` keys whose time has come; they are added to `gone`.
  pub fn sweep(&mut self, now: u64, max: usize) -> usize {
    let mut n = 0;
    while n < max {
      let Some((t, key)) = self.expiring.first().cloned() else {
        break;
      };
      if t > now {
        break;
      }
      self.expiring.pop_first();
      self.map.remove(&key);
      self.gone.push(key);
      n += 1;
    }
    n
  }

  /// One SCAN page: up to `count` keys examined after `after`, the live ones
  /// returned with their types, and where the next page starts (None: done).
  pub fn scan_page(
    &self,
    after: Option<&[u8]>,
    count: usize,
    now: u64,
  ) -> (Vec<(Key, &'static str)>, Option<Key>) {
    use std::ops::Bound;
    let start = match after {
      Some(k) => Bound::Excluded(k.to_vec()),
      None => Bound::Unbounded,
    };
    let mut out = Vec::new();
    let mut last: Option<&Key> = None;
    for (examined, (k, e)) in self.map.range((start, Bound::Unbounded)).enumerate() {
      if examined >= count {
        return (out, last.cloned());
      }
      last = Some(k);
      if e.expires.is_none_or(|t| t > now) {
        out.push((k.clone(), e.value.type_name()));
      }
    }
    (out, None)
  }

  /// Every live key (KEYS, RANDOMKEY).
  pub fn live_keys(&self, now: u64) -> impl Iterator<Item = (&Key, &Entry)> {
    self
      .map
      .iter()
      .filter(move |(_, e)| e.expires.is_none_or(|t| t > now))
  }

  /// A SCAN cursor that resumes after `key`.
  pub fn save_cursor(&mut self, key: Key) -> u64 {
    self.next_cursor += 1;
    let id = self.next_cursor;
    self.cursors.insert(id, key);
    self.cursor_order.push_back(id);
    while self.cursor_order.len() > MAX_CURSORS {
      if let Some(old) = self.cursor_order.pop_front() {
        self.cursors.remove(&old);
      }
    }
    id
  }

  pub fn cursor(&self, id: u64) -> Option<&Key> {
    self.cursors.get(&id)
  }
}

/// What a tracking connection is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Invalidation {
  Keys(Vec<Bytes>),
  /// FLUSHDB/FLUSHALL: everything.
  All,
}

pub struct Tracker {
  pub conn: u64,
  /// Empty: every key.
  pub prefixes: Vec<Vec<u8>>,
  pub tx: UnboundedSender<Invalidation>,
}

/// Per-command counters for `INFO commandstats`.
#[derive(Default, Clone, Copy)]
pub struct CmdStat {
  pub calls: u64,
  pub failed: u64,
  pub usec: u64,
}

/// The keys one connection WATCHes, and whether any of them changed since.
#[derive(Default)]
pub struct Watch {
  pub keys: HashSet<Key>,
  pub dirty: bool,
}

/// Everything a command can touch.
pub struct Data {
  pub dbs: Vec<Db>,
  pub trackers: Vec<Tracker>,
  /// WATCHed keys by connection id (keys of every database: a write to a key
  /// of that name in another database also aborts the transaction).
  pub watches: HashMap<u64, Watch>,
  pub stats: BTreeMap<String, CmdStat>,
  /// sha1 → source, for EVALSHA and SCRIPT EXISTS.
  pub scripts: HashMap<String, String>,
}

impl Default for Data {
  fn default() -> Self {
    Data {
      dbs: (0..DATABASES).map(|_| Db::default()).collect(),
      trackers: Vec::new(),
      watches: HashMap::new(),
      stats: BTreeMap::new(),
      scripts: HashMap::new(),
    }
  }
}

impl Data {
  /// Tells tracking connections (and WATCHes) that `keys` changed.
  pub fn invalidate(&mut self, keys: &[Key]) {
    if keys.is_empty() {
      return;
    }
    for w in self.watches.values_mut() {
      if !w.dirty && keys.iter().any(|k| w.keys.contains(k)) {
        w.dirty = true;
      }
    }
    if self.trackers.is_empty() {
      return;
    }
    self.trackers.retain(|t| {
      let mine: Vec<Bytes> = keys
        .iter()
        .filter(|k| t.prefixes.is_empty() || t.prefixes.iter().any(|p| k.starts_with(p)))
        .map(|k| Bytes::copy_from_slice(k))
        .collect();
      mine.is_empty() || t.tx.send(Invalidation::Keys(mine)).is_ok()
    });
  }

  pub fn invalidate_all(&mut self) {
    for w in self.watches.values_mut() {
      w.dirty = true;
    }
    self
      .trackers
      .retain(|t| t.tx.send(Invalidation::All).is_ok());
  }

  /// Sends what the databases dropped on their own (expired, emptied).
  pub fn flush_gone(&mut self) {
    let mut gone = Vec::new();
    for db in &mut self.dbs {
      gone.append(&mut db.gone);
    }
    self.invalidate(&gone);
  }

  pub fn untrack(&mut self, conn: u64) {
    self.trackers.retain(|t| t.conn != conn);
    self.watches.remove(&conn);
  }
}

/// One store: the data and the Lua state that runs scripts on it.
pub struct Store {
  pub data: Data,
  pub lua: super::lua::Engine,
}

/// A store shared by its connections.
pub struct Shared {
  pub inner: Mutex<Store>,
  /// The running script, readable without `inner` (which it holds).
  pub script: Arc<super::script_run::ScriptRun>,
  script_thread: std::sync::OnceLock<super::script_thread::ScriptThread>,
  next_conn: std::sync::atomic::AtomicU64,
}

impl Default for Shared {
  fn default() -> Self {
    Self::new()
  }
}

impl Shared {
  pub fn new() -> Shared {
    let script = Arc::new(super::script_run::ScriptRun::default());
    Shared {
      inner: Mutex::new(Store {
        data: Data::default(),
        lua: super::lua::Engine::new(script.clone()),
      }),
      script,
      script_thread: std::sync::OnceLock::new(),
      next_conn: std::sync::atomic::AtomicU64::new(1),
    }
  }

  /// The thread that runs this store's scripts, started with the first one.
  pub fn script_thread(&self) -> &super::script_thread::ScriptThread {
    self
      .script_thread
      .get_or_init(super::script_thread::ScriptThread::start)
  }

  /// An id for a new connection (CLIENT ID), without waiting for the store.
  pub fn new_conn_id(&self) -> u64 {
    self
      .next_conn
      .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
  }

  /// Removes expired keys; returns how many. Skipped while a script holds
  /// the store (the sweep runs on the I/O thread, which must never wait).
  pub fn sweep(&self, now: u64) -> usize {
    let Some(mut s) = self.inner.try_lock() else {
      return 0;
    };
    let mut n = 0;
    for db in &mut s.data.dbs {
      n += db.sweep(now, SWEEP_BATCH);
    }
    s.data.flush_gone();
    n
  }
}

/// Sweeps the store every 100 ms for as long as it exists.
pub fn start_sweeper(s: &Arc<Shared>) {
  let weak: Weak<Shared> = Arc::downgrade(s);
  crate::engine::runtime().spawn(async move {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
      tick.tick().await;
      match weak.upgrade() {
        Some(s) => {
          s.sweep(now_ms());
        }
        None => break,
      }
    }
  });
}

#[cfg(test)]
mod tests {
  use super::*;

  fn s(v: &str) -> Entry {
    Entry {
      value: Value::Str(v.as_bytes().to_vec()),
      expires: None,
    }
  }

  #[test]
  fn expiry_is_lazy_and_swept() {
    let mut db = Db::default();
    db.insert(b"a".to_vec(), s("1"));
    db.insert(b"b".to_vec(), s("2"));
    db.set_expires(b"a", Some(100));
    db.set_expires(b"b", Some(200));
    assert!(db.get(b"a", 99).is_some());
    assert!(db.get(b"a", 100).is_none());
    assert_eq!(db.gone, vec![b"a".to_vec()]);
    assert_eq!(db.sweep(150, 10), 0);
    assert_eq!(db.sweep(200, 10), 1);
    assert!(db.is_empty());
    // a key overwritten loses its old expiry
    db.insert(b"c".to_vec(), s("3"));
    db.set_expires(b"c", Some(10));
    db.insert(b"c".to_vec(), s("4"));
    assert_eq!(db.sweep(1000, 10), 0);
    assert!(db.get(b"c", 1000).is_some());
  }

  #[test]
  fn scan_resumes_after_the_last_key() {
    let mut db = Db::default();
    for i in 0..10 {
      db.insert(format!("k{i}").into_bytes(), s("v"));
    }
    let (first, next) = db.scan_page(None, 4, 0);
    assert_eq!(first.len(), 4);
    let (rest, next) = db.scan_page(Some(&next.unwrap()), 100, 0);
    assert!(next.is_none());
    assert_eq!(first.len() + rest.len(), 10);
  }

  #[test]
  fn zset_orders_by_score_then_member() {
    let mut z = ZSet::default();
    assert!(z.insert(b"b".to_vec(), 1.0));
    assert!(z.insert(b"a".to_vec(), 1.0));
    assert!(z.insert(b"c".to_vec(), 0.5));
    assert!(!z.insert(b"c".to_vec(), 2.0));
    let order: Vec<_> = z.order.iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(order, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    assert!(z.remove(b"a"));
    assert_eq!(z.len(), 2);
  }

  #[test]
  fn tracking_hears_of_matching_keys_only() {
    let mut d = Data::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    d.trackers.push(Tracker {
      conn: 1,
      prefixes: vec![b"coa:".to_vec()],
      tx,
    });
    d.invalidate(&[b"other".to_vec(), b"coa:1".to_vec()]);
    assert_eq!(
      rx.try_recv().unwrap(),
      Invalidation::Keys(vec![Bytes::from_static(b"coa:1")])
    );
    d.invalidate(&[b"x".to_vec()]);
    assert!(rx.try_recv().is_err());
  }
}
