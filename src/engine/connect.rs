//! Opening one connection: the byte stream (TCP, TLS or memory://'s pipe),
//! then a redis-rs `MultiplexedConnection` over it and the handshake.
//!
//! The handshake is ours (AUTH, SELECT, CLIENT TRACKING, PING as one
//! pipeline) so that a refusal keeps the server's own words and names the step
//! that failed. With client-side caching (and on a subscriber's connection)
//! the connection speaks RESP3, and redis-rs authenticates in its `HELLO 3`:
//! its push sender is how invalidations and pub/sub messages reach us.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{AsyncPushSender, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ProtocolVersion, RedisConnectionInfo, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::engine::config::Config;
use crate::engine::tls;
use crate::error::{io_reason, Error, ErrorCode, Result};

/// Any byte stream a connection can run over.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The future that drives a connection's socket; it ends when the connection does.
pub type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The first I/O error a connection's stream met, kept because redis-rs
/// reports a failed request as "connection dropped", without the cause (a
/// TLS alert, say).
#[derive(Default)]
pub struct IoSeen(parking_lot::Mutex<Option<std::io::Error>>);

impl IoSeen {
  fn record(&self, e: &std::io::Error) {
    let mut slot = self.0.lock();
    if slot.is_none() {
      let copy = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => std::io::Error::new(e.kind(), tls.clone()),
        None => std::io::Error::new(e.kind(), e.to_string()),
      };
      *slot = Some(copy);
    }
  }

  /// The recorded error as ours: `ERR_TLS` for a TLS alert, else `ERR_CONNECTION`.
  pub fn error(&self, cfg: &Config) -> Option<Error> {
    let slot = self.0.lock();
    let e = slot.as_ref()?;
    let addr = cfg.address();
    Some(
      if e
        .get_ref()
        .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some())
      {
        Error::new(
          ErrorCode::Tls,
          format!("TLS session with {addr} refused ({})", io_reason(e)),
        )
      } else {
        Error::new(
          ErrorCode::Connection,
          format!("connection to {addr} lost ({})", io_reason(e)),
        )
      },
    )
  }
}

/// A stream that records its first I/O error in an [`IoSeen`].
struct Watched<S> {
  inner: S,
  seen: Arc<IoSeen>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
  fn poll_read(
    mut self: Pin<&mut Self>,
    cx: &mut std::task::Context<'_>,
    buf: &mut tokio::io::ReadBuf<'_>,
  ) -> std::task::Poll<std::io::Result<()>> {
    let r = Pin::new(&mut self.inner).poll_read(cx, buf);
    if let std::task::Poll::Ready(Err(e)) = &r {
      self.seen.record(e);
    }
    r
  }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
  fn poll_write(
    mut self: Pin<&mut Self>,
    cx: &mut std::task::Context<'_>,
    buf: &[u8],
  ) -> std::task::Poll<std::io::Result<usize>> {
    let r = Pin::new(&mut self.inner).poll_write(cx, buf);
    if let std::task::Poll::Ready(Err(e)) = &r {
      self.seen.record(e);
    }
    r
  }

  fn poll_flush(
    mut self: Pin<&mut Self>,
    cx: &mut std::task::Context<'_>,
  ) -> std::task::Poll<std::io::Result<()>> {
    Pin::new(&mut self.inner).poll_flush(cx)
  }

  fn poll_shutdown(
    mut self: Pin<&mut Self>,
    cx: &mut std::task::Context<'_>,
  ) -> std::task::Poll<std::io::Result<()>> {
    Pin::new(&mut self.inner).poll_shutdown(cx)
  }
}

/// TCP (+TLS), or memory://'s in-process pipe.
pub async fn stream(cfg: &Config, tls: Option<&tls::Connector>) -> Result<Box<dyn Stream>> {
  if let Some(name) = &cfg.memory {
    return Ok(Box::new(crate::memory::connect(name)));
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
  // Read on the JS thread once its driver is polled there (`uv_socket`).
  let tcp = crate::engine::uv_socket::UvSocket::new(tcp);
  Ok(match tls {
    Some(t) => Box::new(t.connect(cfg, tcp).await?),
    None => Box::new(tcp),
  })
}

/// What a redis-rs error means for us. Under TLS, a refusal during the
/// handshake (the server wants a client certificate) arrives as an alert on
/// the first read.
pub fn classify(cfg: &Config, e: &redis::RedisError) -> Error {
  let addr = cfg.address();
  if e.is_timeout() {
    return Error::new(
      ErrorCode::Timeout,
      format!(
        "no reply from {addr} within {} ms",
        cfg.command_timeout.as_millis()
      ),
    );
  }
  if e.kind() == redis::ErrorKind::Parse {
    return Error::new(
      ErrorCode::Connection,
      format!("{addr} did not answer as a Redis server ({e})"),
    );
  }
  if e.kind() == redis::ErrorKind::AuthenticationFailed {
    return Error::new(
      ErrorCode::Auth,
      format!("authentication at {addr} failed ({e})"),
    );
  }
  let tls_alert = cfg.tls.is_some()
    && std::error::Error::source(e)
      .and_then(|s| s.downcast_ref::<std::io::Error>())
      .and_then(|io| io.get_ref())
      .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
  if tls_alert {
    return Error::new(
      ErrorCode::Tls,
      format!("TLS session with {addr} refused ({e})"),
    );
  }
  if let Some(io) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>()) {
    return Error::new(
      ErrorCode::Connection,
      format!("connection to {addr} lost ({})", io_reason(io)),
    );
  }
  if e.is_connection_dropped() || e.is_io_error() {
    return Error::new(
      ErrorCode::Connection,
      format!("connection to {addr} lost (connection closed by the server)"),
    );
  }
  Error::new(ErrorCode::Connection, format!("{addr}: {e}"))
}

/// The text of an error reply, as the server wrote it.
pub fn server_text(e: &redis::ServerError) -> String {
  match e.details() {
    Some(d) => format!("{} {d}", e.code()),
    None => e.code().to_string(),
  }
}

/// Opens a connection and runs the handshake. The returned driver must be
/// polled (spawned) for the connection to work; it is already running the
/// handshake when this returns, on the caller's task. The connection speaks
/// RESP3 with client-side caching or when given `push` (a subscriber); it
/// turns tracking on only with both (somewhere to deliver invalidations): a
/// dedicated connection (`engine::dedicated`) speaks its client's protocol
/// without tracking.
pub async fn open(
  cfg: &Config,
  tls: Option<&tls::Connector>,
  push: Option<Arc<dyn Fn(redis::PushInfo) + Send + Sync>>,
) -> Result<(MultiplexedConnection, Driver)> {
  let addr = cfg.address();
  let seen = Arc::new(IoSeen::default());
  let io = Watched {
    inner: stream(cfg, tls).await?,
    seen: seen.clone(),
  };
  // Push frames (invalidations, pub/sub messages) need RESP3.
  let resp3 = cfg.client_cache.is_some() || push.is_some();
  let tracking = cfg.client_cache.is_some() && push.is_some();
  let mut info = RedisConnectionInfo::default().set_skip_set_lib_name();
  if resp3 {
    info = info.set_protocol(ProtocolVersion::RESP3);
    if let Some(p) = &cfg.password {
      info = info.set_password(&p.0);
      if let Some(u) = &cfg.username {
        info = info.set_username(u);
      }
    }
  }
  let mut config = AsyncConnectionConfig::new()
    .set_connection_timeout(None)
    .set_response_timeout(Some(cfg.command_timeout));
  if let Some(push) = push {
    config = config.set_push_sender(PushFn(push));
  }
  // redis-rs sends HELLO 3 (RESP3 only) over the stream before returning: the
  // driver is not running yet, so that exchange runs inside this call.
  let (conn, driver) = MultiplexedConnection::new_with_config(&info, io, config)
    .await
    .map_err(|e| match e.kind() {
      redis::ErrorKind::AuthenticationFailed => Error::new(
        ErrorCode::Auth,
        match &cfg.username {
          Some(u) => format!("authentication as {u:?} at {addr} failed ({e})"),
          None => format!("authentication at {addr} failed ({e})"),
        },
      ),
      _ => match e.detail() {
        Some(d) if e.code().is_some() => {
          Error::from_server(&format!("{} {d}", e.code().unwrap_or_default()))
        }
        _ => seen.error(cfg).unwrap_or_else(|| classify(cfg, &e)),
      },
    })
    .map_err(|e| e.redact(cfg.password_str()))?;
  let driver: Driver = Box::pin(driver);
  let mut handshake = Box::pin(handshake(cfg, conn.clone(), resp3, tracking));
  // Run the driver while the handshake waits for its replies. A driver that
  // ends first (the peer closed, or wrote something that is not RESP) fails
  // the handshake's requests: their error says which.
  let mut driver = driver;
  let closed = || {
    Error::new(
      ErrorCode::Connection,
      format!("{addr} closed the connection during the handshake"),
    )
  };
  let r = tokio::select! {
    r = &mut handshake => r,
    _ = &mut driver => match tokio::time::timeout(Duration::from_millis(200), handshake).await {
      Ok(Err(e)) => Err(e),
      _ => Err(closed()),
    },
  };
  // A TLS alert (the server wants a client certificate) beats what the request saw.
  let r = r.map_err(|e| match seen.error(cfg) {
    Some(tls) if tls.code == ErrorCode::Tls => tls,
    _ => e,
  });
  r.map_err(|e| e.redact(cfg.password_str()))?;
  Ok((conn, driver))
}

/// A push sender that hands every push to a closure (client tracking).
struct PushFn(Arc<dyn Fn(redis::PushInfo) + Send + Sync>);

impl AsyncPushSender for PushFn {
  fn send(&self, info: redis::PushInfo) -> std::result::Result<(), redis::aio::SendError> {
    (self.0)(info);
    Ok(())
  }
}

async fn handshake(
  cfg: &Config,
  mut conn: MultiplexedConnection,
  resp3: bool,
  tracking: bool,
) -> Result<()> {
  let addr = cfg.address();
  let mut pipe = redis::pipe();
  let mut steps = Vec::new();
  if !resp3 {
    if let Some(p) = &cfg.password {
      let c = pipe.cmd("AUTH");
      if let Some(u) = &cfg.username {
        c.arg(u);
      }
      c.arg(&p.0);
      steps.push("AUTH");
    }
  }
  if cfg.db != 0 {
    pipe.cmd("SELECT").arg(cfg.db);
    steps.push("SELECT");
  }
  if let Some(name) = &cfg.connection_name {
    pipe.cmd("CLIENT").arg("SETNAME").arg(name);
    steps.push("SETNAME");
  }
  if let Some(cc) = cfg.client_cache.as_ref().filter(|_| tracking) {
    let c = pipe.cmd("CLIENT").arg("TRACKING").arg("ON").arg("BCAST");
    for p in &cc.prefixes {
      c.arg("PREFIX")
        .arg([cfg.key_prefix.as_slice(), p.as_bytes()].concat());
    }
    steps.push("TRACKING");
  }
  pipe.cmd("PING");
  steps.push("PING");
  let replies = conn
    .send_packed_commands(&pipe, 0, steps.len())
    .await
    .map_err(|e| match classify(cfg, &e) {
      e if e.code == ErrorCode::Timeout => Error::new(
        ErrorCode::Connection,
        format!(
          "cannot reach {addr} (no answer to the handshake within {} ms)",
          cfg.command_timeout.as_millis()
        ),
      ),
      // redis-rs drops a connection whose bytes are not RESP; the request
      // sees the drop. A Redis server answers a handshake before closing.
      e if e.code == ErrorCode::Connection => Error::new(
        ErrorCode::Connection,
        format!(
          "{addr} did not answer as a Redis server (it closed the connection during the handshake)"
        ),
      ),
      e => e,
    })?;
  for (step, reply) in steps.iter().zip(replies) {
    let Value::ServerError(err) = reply else {
      continue;
    };
    let text = server_text(&err);
    let e = Error::from_server(&text);
    return Err(match (*step, e.code) {
      ("AUTH", _) | (_, ErrorCode::Auth) => Error::new(
        ErrorCode::Auth,
        match (*step, &cfg.username) {
          ("AUTH", Some(u)) => format!("authentication as {u:?} at {addr} failed: {text}"),
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
    });
  }
  Ok(())
}
