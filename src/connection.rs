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
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

use crate::commands::Shape;
use crate::config::Config;
use crate::error::{io_reason, Error, ErrorCode, Result};
use crate::outbox::{Completion, Event, Outbox};
use crate::resp::{self, Reply};
use crate::stats::Stats;
use crate::tls;

/// Stop taking new batches while this much is still unwritten.
const WRITE_HIGH_WATER: usize = 4 << 20;
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

enum Msg {
  Batch(Batch),
  Close,
}

/// The JS thread's handle on a connection task.
pub struct Connection {
  tx: mpsc::UnboundedSender<Msg>,
  outbox: Arc<Outbox>,
}

impl Connection {
  /// Starts connecting; [`Event::Ready`] or [`Event::ConnectFailed`] follows in the outbox.
  pub fn start(config: Config, outbox: Arc<Outbox>, stats: Arc<Stats>) -> Connection {
    let (tx, rx) = mpsc::unbounded_channel();
    let driver = Driver {
      cfg: Arc::new(config),
      rx,
      outbox: outbox.clone(),
      stats,
      inflight: VecDeque::new(),
      timed_out_front: 0,
      waiting: VecDeque::new(),
      closing: false,
      last_error: None,
    };
    runtime().spawn(driver.run());
    Connection { tx, outbox }
  }

  pub fn send(&self, batch: Batch) {
    if let Err(mpsc::error::SendError(Msg::Batch(b))) = self.tx.send(Msg::Batch(batch)) {
      let mut done = b
        .entries
        .iter()
        .map(|e| Completion::Error {
          id: e.id,
          error: Error::closed(),
        })
        .collect();
      self.outbox.push_all(&mut done);
    }
  }

  /// Asks the task to finish what is in flight and disconnect.
  pub fn close(&self) {
    if self.tx.send(Msg::Close).is_err() {
      self.outbox.push(Completion::Event(Event::Closed));
    }
  }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type BoxStream = Box<dyn Stream>;

struct InFlight {
  entry: Entry,
  created: Instant,
  deadline: Instant,
}

enum Ended {
  /// `close()` completed.
  Closed,
  /// The connection broke.
  Lost(Error),
}

struct Driver {
  cfg: Arc<Config>,
  rx: mpsc::UnboundedReceiver<Msg>,
  outbox: Arc<Outbox>,
  stats: Arc<Stats>,
  inflight: VecDeque<InFlight>,
  /// How many entries at the front of `inflight` already timed out (their
  /// replies are still due and will be dropped).
  timed_out_front: usize,
  /// Batches held while the first reconnect attempt runs.
  waiting: VecDeque<Batch>,
  closing: bool,
  last_error: Option<Error>,
}

impl Driver {
  async fn run(mut self) {
    let connector = match self.cfg.tls.as_ref().map(tls::connector).transpose() {
      Ok(c) => c,
      Err(e) => {
        self.outbox.push(Completion::Event(Event::ConnectFailed(e)));
        return;
      }
    };
    let first = timeout(
      self.cfg.connect_timeout,
      establish(&self.cfg, connector.as_ref()),
    )
    .await;
    let mut stream = match first {
      Ok(Ok(s)) => s,
      Ok(Err(e)) => {
        self.outbox.push(Completion::Event(Event::ConnectFailed(e)));
        return;
      }
      Err(_) => {
        self
          .outbox
          .push(Completion::Event(Event::ConnectFailed(connect_timed_out(
            &self.cfg,
          ))));
        return;
      }
    };
    self.outbox.push(Completion::Event(Event::Ready));
    loop {
      match self.serve(stream).await {
        Ended::Closed => break,
        Ended::Lost(e) => {
          self.stats.reconnects.fetch_add(1, Relaxed);
          self.fail_inflight(&e);
          self.last_error = Some(e);
          match self.reconnect(connector.clone()).await {
            Some(s) => stream = s,
            None => break,
          }
        }
      }
    }
    self.outbox.push(Completion::Event(Event::Closed));
  }

  fn address(&self) -> String {
    self.cfg.address()
  }

  /// Serves one live connection until it breaks or `close()` completes.
  async fn serve(&mut self, stream: BoxStream) -> Ended {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut wbuf: Vec<u8> = Vec::new();
    let mut wpos = 0usize;
    for b in std::mem::take(&mut self.waiting) {
      self.accept(b, &mut wbuf);
    }
    loop {
      if self.closing && self.inflight.is_empty() && wpos == wbuf.len() {
        let _ = writer.shutdown().await;
        return Ended::Closed;
      }
      let deadline = self.inflight.get(self.timed_out_front).map(|f| f.deadline);
      if rbuf.capacity() - rbuf.len() < 16 * 1024 {
        rbuf.reserve(64 * 1024);
      }
      let can_take = !self.closing && wbuf.len() - wpos < WRITE_HIGH_WATER;
      tokio::select! {
        biased;
        r = reader.read_buf(&mut rbuf) => match r {
          Ok(0) => return Ended::Lost(self.lost("connection closed by the server")),
          Ok(_) => {
            if let Err(e) = self.on_read(&mut rbuf) {
              return Ended::Lost(e);
            }
          }
          Err(e) => return Ended::Lost(self.lost(&io_reason(&e))),
        },
        r = writer.write(&wbuf[wpos..]), if wpos < wbuf.len() => match r {
          Ok(n) => {
            wpos += n;
            if wpos == wbuf.len() {
              wbuf.clear();
              wpos = 0;
            }
          }
          Err(e) => return Ended::Lost(self.lost(&io_reason(&e))),
        },
        m = self.rx.recv(), if can_take => match m {
          Some(Msg::Batch(b)) => {
            if wbuf.is_empty() && self.inflight.is_empty() {
              wpos = 0;
            }
            self.accept(b, &mut wbuf);
            // Coalesce whatever else is already queued into the same write.
            while let Ok(m) = self.rx.try_recv() {
              match m {
                Msg::Batch(b) => self.accept(b, &mut wbuf),
                Msg::Close => self.closing = true,
              }
            }
          }
          Some(Msg::Close) | None => self.closing = true,
        },
        _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
          self.expire(Instant::now());
        }
      }
    }
  }

  fn lost(&self, why: &str) -> Error {
    Error::new(
      ErrorCode::Connection,
      format!("connection to {} lost ({why})", self.address()),
    )
  }

  /// Moves a batch into the write buffer and the in-flight queue.
  fn accept(&mut self, b: Batch, wbuf: &mut Vec<u8>) {
    let deadline = b.created + self.cfg.command_timeout;
    for e in &b.entries {
      self.inflight.push_back(InFlight {
        entry: *e,
        created: b.created,
        deadline,
      });
    }
    if wbuf.is_empty() {
      *wbuf = b.bytes;
    } else {
      wbuf.extend_from_slice(&b.bytes);
    }
  }

  fn on_read(&mut self, rbuf: &mut BytesMut) -> Result<()> {
    let mut done = Vec::new();
    let now = Instant::now();
    loop {
      let reply = match resp::parse(rbuf) {
        Ok(Some(r)) => r,
        Ok(None) => break,
        Err(e) => {
          self.outbox.push_all(&mut done);
          return Err(self.lost(&e.to_string()));
        }
      };
      if let Reply::Push(_) = reply {
        continue;
      }
      let Some(f) = self.inflight.pop_front() else {
        self.outbox.push_all(&mut done);
        return Err(self.lost("protocol error: a reply nobody asked for"));
      };
      if self.timed_out_front > 0 {
        self.timed_out_front -= 1;
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
    self.outbox.push_all(&mut done);
    Ok(())
  }

  /// Rejects commands whose deadline passed; their replies are dropped when they come.
  fn expire(&mut self, now: Instant) {
    let mut done = Vec::new();
    while let Some(f) = self.inflight.get(self.timed_out_front) {
      if f.deadline > now {
        break;
      }
      done.push(Completion::Error {
        id: f.entry.id,
        error: Error::new(
          ErrorCode::Timeout,
          format!(
            "no reply from {} within {} ms",
            self.address(),
            self.cfg.command_timeout.as_millis()
          ),
        ),
      });
      self.timed_out_front += 1;
    }
    self.stats.timeouts.fetch_add(done.len() as u64, Relaxed);
    self.outbox.push_all(&mut done);
  }

  fn fail_inflight(&mut self, e: &Error) {
    let skip = std::mem::take(&mut self.timed_out_front);
    let mut done: Vec<Completion> = self
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
    self.outbox.push_all(&mut done);
  }

  fn reject(&self, b: Batch, error: &Error) {
    let mut done = b
      .entries
      .iter()
      .map(|e| Completion::Error {
        id: e.id,
        error: error.clone(),
      })
      .collect();
    self.outbox.push_all(&mut done);
  }

  fn not_connected(&self) -> Error {
    let why = self
      .last_error
      .as_ref()
      .map(|e| e.message.clone())
      .unwrap_or_default();
    Error::new(
      ErrorCode::Connection,
      format!("not connected to {} ({why}); reconnecting", self.address()),
    )
  }

  /// Reconnects with backoff. While the first attempt runs, new commands wait
  /// (up to `connectTimeoutMs`); once it has failed they are refused at once.
  async fn reconnect(&mut self, connector: Option<tls::Connector>) -> Option<BoxStream> {
    let mut attempt: u32 = 0;
    loop {
      let delay = backoff(attempt, self.cfg.reconnect_min, self.cfg.reconnect_max);
      let start_at = Instant::now() + delay;
      let cfg = self.cfg.clone();
      let conn = connector.clone();
      let mut connecting: Option<Pin<Box<dyn Future<Output = Result<BoxStream>> + Send>>> = None;
      loop {
        let wait_deadline = self
          .waiting
          .front()
          .map(|b| b.created + self.cfg.connect_timeout);
        tokio::select! {
          r = async { connecting.as_mut().unwrap().await }, if connecting.is_some() => {
            match r {
              Ok(s) => return Some(s),
              Err(e) => {
                self.last_error = Some(e);
                let err = self.not_connected();
                for b in std::mem::take(&mut self.waiting) {
                  self.reject(b, &err);
                }
                break;
              }
            }
          }
          _ = sleep_until(start_at), if connecting.is_none() => {
            let (cfg, conn) = (cfg.clone(), conn.clone());
            connecting = Some(Box::pin(async move {
              match timeout(cfg.connect_timeout, establish(&cfg, conn.as_ref())).await {
                Ok(r) => r,
                Err(_) => Err(connect_timed_out(&cfg)),
              }
            }));
          }
          m = self.rx.recv() => match m {
            Some(Msg::Batch(b)) => {
              if attempt == 0 && self.waiting.len() < MAX_WAITING {
                self.waiting.push_back(b);
              } else {
                let err = self.not_connected();
                self.reject(b, &err);
              }
            }
            Some(Msg::Close) | None => {
              let err = Error::closed();
              for b in std::mem::take(&mut self.waiting) {
                self.reject(b, &err);
              }
              return None;
            }
          },
          _ = sleep_until(wait_deadline.unwrap_or_else(Instant::now)), if wait_deadline.is_some() => {
            let now = Instant::now();
            let err = self.not_connected();
            while let Some(b) = self.waiting.front() {
              if b.created + self.cfg.connect_timeout > now {
                break;
              }
              let b = self.waiting.pop_front().unwrap();
              self.reject(b, &err);
            }
          }
        }
      }
      attempt = attempt.saturating_add(1);
    }
  }
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

/// TCP (+TLS) connect and the handshake: AUTH, SELECT, then PING to prove
/// the server accepts us.
async fn establish(cfg: &Config, tls: Option<&tls::Connector>) -> Result<BoxStream> {
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
  let mut stream: BoxStream = match tls {
    Some(t) => Box::new(t.connect(cfg, tcp).await?),
    None => Box::new(tcp),
  };
  handshake(cfg, &mut stream)
    .await
    .map_err(|e| e.redact(cfg.password_str()))?;
  Ok(stream)
}

async fn handshake(cfg: &Config, stream: &mut BoxStream) -> Result<()> {
  let addr = cfg.address();
  let mut out = Vec::new();
  let mut steps = Vec::new();
  if let Some(p) = &cfg.password {
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
  let io_err = |e: std::io::Error| {
    Error::new(
      ErrorCode::Connection,
      format!("cannot reach {addr} ({})", io_reason(&e)),
    )
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
