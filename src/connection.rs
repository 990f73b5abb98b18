//! One Redis connection driven by one task on the I/O thread: it writes the
//! batches the JS thread hands over, reads replies in order, enforces the
//! per-command timeout, and reconnects with capped, jittered backoff.
//!
//! Nothing is ever sent twice: a command whose connection drops before its
//! reply rejects with `ERR_CONNECTION` (it may or may not have run), and
//! commands issued while the server is unreachable are refused rather than
//! queued without bound.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{sleep_until, timeout, Instant};

use crate::commands::Shape;
use crate::config::Config;
use crate::error::{io_reason, Error, ErrorCode, Result};
use crate::outbox::{Completion, Event, Outbox};
use crate::resp::{self, Reply};
use crate::sentinel::{self, Sentinels};
use crate::stats::Stats;
use crate::tls;

/// Commands held while the first reconnect attempt runs; beyond this they fail at once.
const MAX_WAITING: usize = 100_000;

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

/// Commands encoded together on the JS thread.
pub struct Batch {
  pub bytes: Vec<u8>,
  pub entries: Vec<Entry>,
  pub created: Instant,
}

struct InFlight {
  entry: Entry,
  created: Instant,
  deadline: Instant,
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

/// State shared by the JS thread (which writes) and the I/O task (which reads).
struct Link {
  phase: Phase,
  /// The plain TCP socket while up: the JS thread writes to it directly, so a
  /// command reaches the kernel without waking the I/O thread.
  direct: Option<Arc<TcpStream>>,
  inflight: VecDeque<InFlight>,
  /// How many entries at the front of `inflight` already timed out (their
  /// replies are still due and will be dropped).
  timed_out_front: usize,
  /// Bytes accepted but not yet handed to the socket; the task writes them.
  unsent: Vec<u8>,
  /// The task holds bytes it is still writing: direct writes must wait
  /// behind them to keep the order.
  writing: bool,
  /// Batches held while the first reconnect attempt runs.
  waiting: VecDeque<Batch>,
  closing: bool,
  last_error: Option<Error>,
}

impl Link {
  fn next_deadline(&self) -> Option<Instant> {
    self.inflight.get(self.timed_out_front).map(|f| f.deadline)
  }

  fn accept(&mut self, b: Batch, timeout: Duration) {
    let deadline = b.created + timeout;
    for e in &b.entries {
      self.inflight.push_back(InFlight {
        entry: *e,
        created: b.created,
        deadline,
      });
    }
    if !self.unsent.is_empty() || self.writing {
      self.unsent.extend_from_slice(&b.bytes);
      return;
    }
    let written = match &self.direct {
      // WouldBlock or a broken socket: 0 written, the task writes (or finds the error).
      Some(sock) => sock.try_write(&b.bytes).unwrap_or(0),
      None => 0,
    };
    if written < b.bytes.len() {
      if written == 0 {
        self.unsent = b.bytes;
      } else {
        self.unsent.extend_from_slice(&b.bytes[written..]);
      }
    }
  }
}

/// The JS thread's handle on a connection task.
pub struct Connection {
  /// Bumped (after the event is queued) on every invalidation or cache reset,
  /// so the JS thread can tell, without a call, that it must drain first.
  pub cache_epoch: Arc<AtomicU32>,
  link: Arc<Mutex<Link>>,
  wake: Arc<Notify>,
  outbox: Arc<Outbox>,
  cfg: Arc<Config>,
}

fn reject_all(outbox: &Outbox, entries: &[Entry], error: &Error) {
  let mut done = entries
    .iter()
    .map(|e| Completion::Error {
      id: e.id,
      error: error.clone(),
    })
    .collect();
  outbox.push_all(&mut done);
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
  /// Starts connecting; [`Event::Ready`] or [`Event::ConnectFailed`] follows in the outbox.
  pub fn start(config: Config, outbox: Arc<Outbox>, stats: Arc<Stats>) -> Connection {
    let cfg = Arc::new(config);
    let link = Arc::new(Mutex::new(Link {
      phase: Phase::Connecting,
      direct: None,
      inflight: VecDeque::new(),
      timed_out_front: 0,
      unsent: Vec::new(),
      writing: false,
      waiting: VecDeque::new(),
      closing: false,
      last_error: None,
    }));
    let wake = Arc::new(Notify::new());
    let cache_epoch = Arc::new(AtomicU32::new(0));
    let driver = Driver {
      sentinels: cfg.sentinel.as_ref().map(Sentinels::new),
      cfg: cfg.clone(),
      cache_epoch: cache_epoch.clone(),
      link: link.clone(),
      wake: wake.clone(),
      outbox: outbox.clone(),
      stats,
    };
    let task = runtime().spawn(driver.run());
    // If the task panics (a bug), fail what it held instead of leaving callers hanging.
    let (watch_link, watch_outbox) = (link.clone(), outbox.clone());
    runtime().spawn(async move {
      if let Err(e) = task.await {
        if e.is_panic() {
          fail_after_panic(&watch_link, &watch_outbox);
        }
      }
    });
    Connection {
      cache_epoch,
      link,
      wake,
      outbox,
      cfg,
    }
  }

  /// Hands a batch to the connection (on plain TCP, usually straight to the socket).
  pub fn send(&self, batch: Batch) {
    let mut l = self.link.lock();
    let error = match l.phase {
      _ if l.closing => Error::closed(),
      Phase::Closed => Error::closed(),
      Phase::Up => {
        let was_idle = l.next_deadline().is_none();
        l.accept(batch, self.cfg.command_timeout);
        // The task must arm the timeout timer, or finish a partial write.
        let wake = was_idle || !l.unsent.is_empty();
        drop(l);
        if wake {
          self.wake.notify_one();
        }
        return;
      }
      Phase::Down {
        first_attempt: true,
      } if l.waiting.len() < MAX_WAITING => {
        l.waiting.push_back(batch);
        drop(l);
        self.wake.notify_one();
        return;
      }
      Phase::Down { .. } | Phase::Connecting => not_connected(&self.cfg, l.last_error.as_ref()),
    };
    drop(l);
    reject_all(&self.outbox, &batch.entries, &error);
  }

  /// Asks the task to finish what is in flight and disconnect.
  pub fn close(&self) {
    let mut l = self.link.lock();
    l.closing = true;
    let ended = l.phase == Phase::Closed;
    drop(l);
    if ended {
      self.outbox.push(Completion::Event(Event::Closed));
    } else {
      self.wake.notify_one();
    }
  }
}

impl Drop for Connection {
  /// A client dropped without `close()` (garbage-collected) still winds down.
  fn drop(&mut self) {
    self.link.lock().closing = true;
    self.wake.notify_one();
  }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type BoxStream = Box<dyn Stream>;

/// A connected socket: plain TCP (shared with the JS thread for writes) or
/// TLS (or any other boxed stream: the memory:// pipe).
enum Conn {
  Tcp(TcpStream),
  Tls(BoxStream),
}

enum Reader {
  Tcp(Arc<TcpStream>),
  Tls(tokio::io::ReadHalf<BoxStream>),
}

enum Writer {
  Tcp(Arc<TcpStream>),
  Tls(tokio::io::WriteHalf<BoxStream>),
}

impl Reader {
  /// Cancel-safe: either reads into `buf` or leaves it untouched.
  async fn read(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
    match self {
      Reader::Tcp(s) => loop {
        s.readable().await?;
        match s.try_read_buf(buf) {
          Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
          r => return r,
        }
      },
      Reader::Tls(r) => r.read_buf(buf).await,
    }
  }
}

impl Writer {
  /// Cancel-safe: returns how much of `data` was written.
  async fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
    match self {
      Writer::Tcp(s) => loop {
        s.writable().await?;
        match s.try_write(data) {
          Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
          r => return r,
        }
      },
      Writer::Tls(w) => w.write(data).await,
    }
  }

  async fn shutdown(&mut self) {
    match self {
      Writer::Tcp(s) => {
        let _ = socket2::SockRef::from(&**s).shutdown(std::net::Shutdown::Write);
      }
      Writer::Tls(w) => {
        let _ = w.shutdown().await;
      }
    }
  }
}

enum Ended {
  /// `close()` completed.
  Closed,
  /// The connection broke.
  Lost(Error),
}

struct Driver {
  cfg: Arc<Config>,
  cache_epoch: Arc<AtomicU32>,
  link: Arc<Mutex<Link>>,
  wake: Arc<Notify>,
  outbox: Arc<Outbox>,
  stats: Arc<Stats>,
  /// Sentinel mode: where the master is looked up.
  sentinels: Option<Arc<Sentinels>>,
}

impl Driver {
  async fn run(self) {
    let connector = match self.cfg.tls.as_ref().map(tls::connector).transpose() {
      Ok(c) => c,
      Err(e) => return self.connect_failed(e),
    };
    // Dropped when this task ends: the `+switch-master` watchers stop with it.
    let (_stop_watchers, stop) = tokio::sync::watch::channel(());
    if let Some(s) = &self.sentinels {
      sentinel::watch_all(s, &self.cfg, connector.clone(), &self.wake, &stop);
    }
    let first = timeout(
      self.cfg.connect_timeout,
      connect(&self.cfg, connector.as_ref(), self.sentinels.as_deref()),
    )
    .await;
    let mut conn = match first {
      Ok(Ok(s)) => s,
      Ok(Err(e)) => return self.connect_failed(e),
      Err(_) => return self.connect_failed(connect_timed_out(&self.cfg)),
    };
    let mut first = true;
    loop {
      match self.serve(conn, std::mem::take(&mut first)).await {
        Ended::Closed => break,
        Ended::Lost(e) => {
          self.stats.reconnects.fetch_add(1, Relaxed);
          self.lose(e);
          match self.reconnect(connector.clone()).await {
            Some(c) => conn = c,
            None => break,
          }
        }
      }
    }
    self.link.lock().phase = Phase::Closed;
    self.outbox.push(Completion::Event(Event::Closed));
  }

  fn connect_failed(&self, e: Error) {
    self.link.lock().phase = Phase::Closed;
    self.outbox.push(Completion::Event(Event::ConnectFailed(e)));
  }

  fn lost(&self, why: &str) -> Error {
    Error::new(
      ErrorCode::Connection,
      format!("connection to {} lost ({why})", self.cfg.address()),
    )
  }

  /// Serves one live connection until it breaks or `close()` completes.
  /// `announce`: this is the first connection, so `connect()` resolves once
  /// it can take commands.
  async fn serve(&self, conn: Conn, announce: bool) -> Ended {
    let (mut reader, mut writer, direct) = match conn {
      Conn::Tcp(s) => {
        let s = Arc::new(s);
        (Reader::Tcp(s.clone()), Writer::Tcp(s.clone()), Some(s))
      }
      Conn::Tls(s) => {
        let (r, w) = tokio::io::split(s);
        (Reader::Tls(r), Writer::Tls(w), None)
      }
    };
    {
      let mut l = self.link.lock();
      l.phase = Phase::Up;
      l.direct = direct;
      for b in std::mem::take(&mut l.waiting) {
        l.accept(b, self.cfg.command_timeout);
      }
    }
    if announce {
      self.outbox.push(Completion::Event(Event::Ready));
    }
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut wbuf: Vec<u8> = Vec::new();
    let mut wpos = 0usize;
    loop {
      if let Some(s) = &self.sentinels {
        if s.generation.load(Relaxed) != s.connected_generation.load(Relaxed) {
          return Ended::Lost(self.lost("Sentinel announced a new master"));
        }
      }
      let (deadline, done) = {
        let mut l = self.link.lock();
        if wpos == wbuf.len() {
          wbuf.clear();
          wpos = 0;
          std::mem::swap(&mut wbuf, &mut l.unsent);
          l.writing = !wbuf.is_empty();
        }
        // Timed-out commands need not be waited for: their callers have their answer.
        let done = l.closing && l.inflight.len() == l.timed_out_front && !l.writing;
        if done {
          l.direct = None;
        }
        (l.next_deadline(), done)
      };
      if done {
        writer.shutdown().await;
        return Ended::Closed;
      }
      if rbuf.capacity() - rbuf.len() < 16 * 1024 {
        rbuf.reserve(64 * 1024);
      }
      tokio::select! {
        biased;
        r = reader.read(&mut rbuf) => match r {
          Ok(0) => return Ended::Lost(self.lost("connection closed by the server")),
          Ok(_) => {
            if let Err(e) = self.on_read(&mut rbuf) {
              return Ended::Lost(e);
            }
          }
          Err(e) => return Ended::Lost(self.lost(&io_reason(&e))),
        },
        r = writer.write(&wbuf[wpos..]), if wpos < wbuf.len() => match r {
          Ok(n) => wpos += n,
          Err(e) => return Ended::Lost(self.lost(&io_reason(&e))),
        },
        _ = self.wake.notified() => {}
        _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
          self.expire(Instant::now());
        }
      }
    }
  }

  fn on_read(&self, rbuf: &mut BytesMut) -> Result<()> {
    let mut replies = Vec::new();
    let parsed = loop {
      match resp::parse(rbuf) {
        Ok(Some(r)) => replies.push(r),
        Ok(None) => break Ok(()),
        Err(e) => break Err(self.lost(&e.to_string())),
      }
    };
    let now = Instant::now();
    let mut done = Vec::with_capacity(replies.len());
    let mut unexpected = false;
    let mut invalidated = false;
    let mut demoted = false;
    {
      let mut l = self.link.lock();
      for reply in replies {
        // A master demoted while we stayed connected: its replies to writes say
        // so; the caller gets that reply, the connection goes to the new master.
        demoted |= self.sentinels.is_some()
          && matches!(&reply, Reply::Error(t) if t.starts_with("READONLY"));
        if let Reply::Push(items) = reply {
          if let Some(ev) = invalidation(items) {
            invalidated = true;
            done.push(Completion::Event(ev));
          }
          continue;
        }
        let Some(f) = l.inflight.pop_front() else {
          unexpected = true;
          break;
        };
        if l.timed_out_front > 0 {
          l.timed_out_front -= 1;
          continue;
        }
        self
          .stats
          .record_latency_us(now.saturating_duration_since(f.created).as_micros() as u64);
        done.push(Completion::Reply {
          id: f.entry.id,
          shape: f.entry.shape,
          reply,
        });
      }
    }
    self.outbox.push_all(&mut done);
    if invalidated {
      // After the push: a JS thread that sees the new epoch finds the event queued.
      self.cache_epoch.fetch_add(1, Release);
    }
    if unexpected {
      return Err(self.lost("protocol error: a reply nobody asked for"));
    }
    if demoted {
      return Err(self.lost("the server answered READONLY: it is no longer the master"));
    }
    parsed
  }

  /// Rejects commands whose deadline passed; their replies are dropped when they come.
  fn expire(&self, now: Instant) {
    let mut done = Vec::new();
    {
      let mut l = self.link.lock();
      while let Some(f) = l.inflight.get(l.timed_out_front) {
        if f.deadline > now {
          break;
        }
        done.push(Completion::Error {
          id: f.entry.id,
          error: Error::new(
            ErrorCode::Timeout,
            format!(
              "no reply from {} within {} ms",
              self.cfg.address(),
              self.cfg.command_timeout.as_millis()
            ),
          ),
        });
        l.timed_out_front += 1;
      }
    }
    self.stats.timeouts.fetch_add(done.len() as u64, Relaxed);
    self.outbox.push_all(&mut done);
  }

  /// The connection broke: everything in flight fails (it may or may not have run).
  fn lose(&self, e: Error) {
    if self.cfg.client_cache.is_some() {
      // Invalidations may have been missed: nothing cached may be served again.
      self.outbox.push(Completion::Event(Event::CacheReset));
      self.cache_epoch.fetch_add(1, Release);
    }
    let mut done: Vec<Completion> = {
      let mut l = self.link.lock();
      l.phase = Phase::Down {
        first_attempt: true,
      };
      l.direct = None;
      l.writing = false;
      l.unsent.clear();
      let skip = std::mem::take(&mut l.timed_out_front);
      let failed = l
        .inflight
        .drain(..)
        .skip(skip)
        .map(|f| Completion::Error {
          id: f.entry.id,
          error: Error::new(
            e.code,
            format!("{}; the command may or may not have run", e.message),
          ),
        })
        .collect();
      l.last_error = Some(e);
      failed
    };
    self.outbox.push_all(&mut done);
  }

  /// Reconnects with backoff. While the first attempt runs, new commands wait
  /// (up to `connectTimeoutMs`); once it has failed they are refused at once.
  async fn reconnect(&self, connector: Option<tls::Connector>) -> Option<Conn> {
    let mut attempt: u32 = 0;
    loop {
      let delay = backoff(attempt, self.cfg.reconnect_min, self.cfg.reconnect_max);
      let start_at = Instant::now() + delay;
      let mut connecting: Option<Pin<Box<dyn Future<Output = Result<Conn>> + Send>>> = None;
      loop {
        let wait_deadline = {
          let mut l = self.link.lock();
          if l.closing {
            let waiting: Vec<Batch> = l.waiting.drain(..).collect();
            drop(l);
            for b in waiting {
              reject_all(&self.outbox, &b.entries, &Error::closed());
            }
            return None;
          }
          l.waiting
            .front()
            .map(|b| b.created + self.cfg.connect_timeout)
        };
        tokio::select! {
          r = async { connecting.as_mut().unwrap().await }, if connecting.is_some() => {
            match r {
              Ok(c) => return Some(c),
              Err(e) => {
                let (waiting, err) = {
                  let mut l = self.link.lock();
                  l.phase = Phase::Down { first_attempt: false };
                  l.last_error = Some(e);
                  let err = not_connected(&self.cfg, l.last_error.as_ref());
                  (l.waiting.drain(..).collect::<Vec<_>>(), err)
                };
                for b in waiting {
                  reject_all(&self.outbox, &b.entries, &err);
                }
                break;
              }
            }
          }
          _ = sleep_until(start_at), if connecting.is_none() => {
            let (cfg, conn, sen) = (self.cfg.clone(), connector.clone(), self.sentinels.clone());
            connecting = Some(Box::pin(async move {
              match timeout(cfg.connect_timeout, connect(&cfg, conn.as_ref(), sen.as_deref())).await {
                Ok(r) => r,
                Err(_) => Err(connect_timed_out(&cfg)),
              }
            }));
          }
          _ = self.wake.notified() => {}
          _ = sleep_until(wait_deadline.unwrap_or_else(Instant::now)), if wait_deadline.is_some() => {
            let now = Instant::now();
            let (expired, err) = {
              let mut l = self.link.lock();
              let mut expired = Vec::new();
              while l.waiting.front().is_some_and(|b| b.created + self.cfg.connect_timeout <= now) {
                expired.push(l.waiting.pop_front().unwrap());
              }
              (expired, not_connected(&self.cfg, l.last_error.as_ref()))
            };
            for b in expired {
              reject_all(&self.outbox, &b.entries, &err);
            }
          }
        }
      }
      attempt = attempt.saturating_add(1);
    }
  }
}

fn fail_after_panic(link: &Mutex<Link>, outbox: &Outbox) {
  let error = Error::new(
    ErrorCode::Internal,
    "a bug in @atlas-erp/redis stopped this connection; the command may or may not have run",
  );
  let (entries, was_connecting) = {
    let mut l = link.lock();
    let was_connecting = l.phase == Phase::Connecting;
    l.phase = Phase::Closed;
    l.direct = None;
    let skip = std::mem::take(&mut l.timed_out_front);
    let mut entries: Vec<Entry> = l.inflight.drain(..).skip(skip).map(|f| f.entry).collect();
    for b in l.waiting.drain(..) {
      entries.extend(b.entries);
    }
    (entries, was_connecting)
  };
  reject_all(outbox, &entries, &error);
  outbox.push(Completion::Event(if was_connecting {
    Event::ConnectFailed(error)
  } else {
    Event::Closed
  }));
}

/// `>invalidate [keys]` (or `nil`: everything) as an event; other pushes are ignored.
fn invalidation(items: Vec<Reply>) -> Option<Event> {
  let mut it = items.into_iter();
  match it.next() {
    Some(Reply::Bulk(kind)) | Some(Reply::Status(kind)) if &kind[..] == b"invalidate" => {}
    _ => return None,
  }
  Some(Event::Invalidate(match it.next() {
    Some(Reply::Array(keys)) => Some(
      keys
        .into_iter()
        .filter_map(|k| match k {
          Reply::Bulk(b) | Reply::Status(b) => Some(b),
          _ => None,
        })
        .collect(),
    ),
    _ => None,
  }))
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

/// Standalone: [`establish`]. Sentinel mode: ask the sentinels for the
/// master, establish, and check with `ROLE` that it is the master; a server
/// that is not (a failover under way) or cannot be reached is tried again,
/// after backoff, until `connectTimeoutMs` runs out.
async fn connect(
  cfg: &Config,
  tls: Option<&tls::Connector>,
  sentinels: Option<&Sentinels>,
) -> Result<Conn> {
  let Some(s) = sentinels else {
    return establish(cfg, tls).await;
  };
  let deadline = Instant::now() + cfg.connect_timeout;
  let mut attempt = 0u32;
  loop {
    let generation = s.generation.load(Relaxed);
    let (host, port) = s.resolve(cfg, tls).await?;
    s.set_current(&host, port);
    let mut master = cfg.clone();
    master.host = host;
    master.port = port;
    master.sentinel = None;
    let at = master.address();
    let r = match establish(&master, tls).await {
      Ok(mut conn) => {
        let stream: &mut dyn Stream = match &mut conn {
          Conn::Tcp(s) => s,
          Conn::Tls(s) => s,
        };
        sentinel::check_master(stream, &at).await.map(|_| conn)
      }
      Err(e) => Err(e),
    };
    match r {
      Ok(conn) => {
        s.connected_generation.store(generation, Relaxed);
        return Ok(conn);
      }
      // Wrong credentials or TLS settings will not get better by retrying.
      Err(e) if e.code != ErrorCode::Connection => return Err(cfg.redact(e)),
      Err(e) => {
        attempt += 1;
        let delay = backoff(attempt, cfg.reconnect_min, cfg.reconnect_max);
        if Instant::now() + delay >= deadline {
          return Err(cfg.redact(e));
        }
        tokio::time::sleep(delay).await;
      }
    }
  }
}

/// TCP (+TLS) connect and the handshake: AUTH, SELECT, then PING to prove
/// the server accepts us.
async fn establish(cfg: &Config, tls: Option<&tls::Connector>) -> Result<Conn> {
  if let Some(name) = &cfg.memory {
    // memory://: a pipe to a server task on this runtime, driven like TLS
    let mut stream: BoxStream = Box::new(crate::memory::connect(name));
    handshake(cfg, &mut stream).await?;
    return Ok(Conn::Tls(stream));
  }
  let addr = cfg.address();
  let tcp = TcpStream::connect((cfg.host.as_str(), cfg.port))
    .await
    .map_err(|e| {
      Error::new(
        ErrorCode::Connection,
        format!("cannot reach {addr} ({})", io_reason(&e)),
      )
    })?;
  let _ = tcp.set_nodelay(true);
  let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(
    &socket2::TcpKeepalive::new()
      .with_time(Duration::from_secs(30))
      .with_interval(Duration::from_secs(10)),
  );
  let mut conn = match tls {
    Some(t) => Conn::Tls(Box::new(t.connect(cfg, tcp).await?)),
    None => Conn::Tcp(tcp),
  };
  let stream: &mut dyn Stream = match &mut conn {
    Conn::Tcp(s) => s,
    Conn::Tls(s) => s,
  };
  handshake(cfg, stream)
    .await
    .map_err(|e| e.redact(cfg.password_str()))?;
  Ok(conn)
}

async fn handshake(cfg: &Config, stream: &mut dyn Stream) -> Result<()> {
  let addr = cfg.address();
  let mut out = Vec::new();
  let mut steps = Vec::new();
  if let Some(cc) = &cfg.client_cache {
    // RESP3, so that invalidations arrive on this same connection, in order
    // with the replies.
    let user = cfg.username.as_deref().unwrap_or("default");
    match &cfg.password {
      Some(p) => resp::encode_command(
        &mut out,
        &[b"HELLO", b"3", b"AUTH", user.as_bytes(), p.0.as_bytes()],
      ),
      None => resp::encode_command(&mut out, &[b"HELLO", b"3"]),
    }
    steps.push("AUTH");
    let prefixes: Vec<Vec<u8>> = cc
      .prefixes
      .iter()
      .map(|p| [cfg.key_prefix.as_slice(), p.as_bytes()].concat())
      .collect();
    let mut parts: Vec<&[u8]> = vec![b"CLIENT", b"TRACKING", b"ON", b"BCAST"];
    for p in &prefixes {
      parts.push(b"PREFIX");
      parts.push(p);
    }
    resp::encode_command(&mut out, &parts);
    steps.push("TRACKING");
  } else if let Some(p) = &cfg.password {
    match &cfg.username {
      Some(u) => resp::encode_command(&mut out, &[b"AUTH", u.as_bytes(), p.0.as_bytes()]),
      None => resp::encode_command(&mut out, &[b"AUTH", p.0.as_bytes()]),
    }
    steps.push("AUTH");
  }
  if cfg.db != 0 {
    resp::encode_command(&mut out, &[b"SELECT", cfg.db.to_string().as_bytes()]);
    steps.push("SELECT");
  }
  resp::encode_command(&mut out, &[b"PING"]);
  steps.push("PING");
  // Under TLS, a refusal during the handshake (e.g. the server wants a client
  // certificate) arrives as an alert on the first read.
  let io_err = |e: std::io::Error| {
    let tls_alert = cfg.tls.is_some()
      && e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if tls_alert {
      Error::new(
        ErrorCode::Tls,
        format!("TLS session with {addr} refused ({})", io_reason(&e)),
      )
    } else {
      Error::new(
        ErrorCode::Connection,
        format!("cannot reach {addr} ({})", io_reason(&e)),
      )
    }
  };
  stream.write_all(&out).await.map_err(io_err)?;
  let mut buf = BytesMut::with_capacity(1024);
  let mut first_error: Option<Error> = None;
  for step in steps {
    let reply = loop {
      match resp::parse(&mut buf) {
        Ok(Some(r)) => break r,
        Ok(None) => {}
        Err(e) => {
          return Err(Error::new(
            ErrorCode::Connection,
            format!("{addr} did not answer as a Redis server ({e})"),
          ))
        }
      }
      if stream.read_buf(&mut buf).await.map_err(io_err)? == 0 {
        return Err(Error::new(
          ErrorCode::Connection,
          format!("{addr} closed the connection during the handshake"),
        ));
      }
    };
    if let Reply::Error(text) = reply {
      let e = Error::from_server(&text);
      let e = match (step, e.code) {
        ("AUTH", _) | (_, ErrorCode::Auth) => Error::new(
          ErrorCode::Auth,
          match (step, &cfg.username) {
            ("AUTH", Some(u)) => {
              format!("authentication as {u:?} at {addr} failed: {text}")
            }
            ("AUTH", None) => format!("authentication at {addr} failed: {text}"),
            _ => format!("{addr} requires authentication: {text}"),
          },
        ),
        ("TRACKING", _) => Error::new(
          ErrorCode::Reply,
          format!("clientCache: {addr} refused client tracking (needs Redis 6+): {text}"),
        ),
        ("SELECT", _) => Error::new(
          ErrorCode::Reply,
          format!("cannot select database {} at {addr}: {text}", cfg.db),
        ),
        _ => Error::new(e.code, format!("{addr} refused the handshake: {text}")),
      };
      first_error.get_or_insert(e);
    }
  }
  match first_error {
    Some(e) => Err(e),
    None => Ok(()),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

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
