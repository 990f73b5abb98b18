//! Sentinel mode: ask the sentinels where the master is, check that the
//! server there really is the master, and hear about failovers early.
//!
//! The connection driver calls [`Sentinels::resolve`] before every
//! (re)connect, so a connection lost in a failover comes back on whatever
//! the sentinels name as master then. Watchers subscribed to `+switch-master`
//! on every sentinel bump [`Sentinels::generation`]: the driver drops a
//! connection made before the switch, so it does not keep writing to a
//! demoted master (whose writes Redis would discard when it resyncs).

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisConnectionInfo, Value};
use tokio::sync::{watch, Notify};
use tokio::time::{sleep, timeout};

use crate::engine::config::{Config, SentinelConfig};
use crate::engine::connect::{self, Driver};
use crate::engine::{backoff, tls};
use crate::error::{Error, ErrorCode, Result};

/// `host:port`, IPv6 in brackets.
pub fn addr(host: &str, port: u16) -> String {
  if host.contains(':') {
    format!("[{host}]:{port}")
  } else {
    format!("{host}:{port}")
  }
}

/// How long one sentinel may take to answer: a third of `connectTimeoutMs`,
/// between 100 ms and 1 s, so that a dead sentinel leaves time for the others.
pub fn per_sentinel_timeout(connect_timeout: Duration) -> Duration {
  (connect_timeout / 3)
    .clamp(Duration::from_millis(100), Duration::from_secs(1))
    .min(connect_timeout)
}

/// Shared by the driver and the watchers of one client.
pub struct Sentinels {
  /// Sentinels to ask, the last one that answered first.
  order: Mutex<Vec<(String, u16)>>,
  /// Bumped when a sentinel announces a new master address.
  pub generation: AtomicU64,
  /// The generation the live connection was made in.
  pub connected_generation: AtomicU64,
  /// The master the live connection (or the last attempt) went to.
  current: Mutex<Option<(String, u16)>>,
}

impl Sentinels {
  pub fn new(sc: &SentinelConfig) -> Arc<Sentinels> {
    Arc::new(Sentinels {
      order: Mutex::new(sc.sentinels.clone()),
      generation: AtomicU64::new(0),
      connected_generation: AtomicU64::new(0),
      current: Mutex::new(None),
    })
  }

  /// The order sentinels are asked in now (for tests).
  pub fn order(&self) -> Vec<(String, u16)> {
    self.order.lock().clone()
  }

  /// Whether a sentinel announced a new master since the live connection was made.
  pub fn switched(&self) -> bool {
    self.generation.load(SeqCst) != self.connected_generation.load(SeqCst)
  }

  pub fn set_current(&self, host: &str, port: u16) {
    *self.current.lock() = Some((host.to_string(), port));
  }

  /// A `+switch-master` (or a READONLY) named `host:port` as the master.
  fn announced(&self, host: &str, port: u16, wake: &Notify) {
    let differs = self
      .current
      .lock()
      .as_ref()
      .is_none_or(|(h, p)| h != host || *p != port);
    if differs {
      self.generation.fetch_add(1, SeqCst);
      wake.notify_one();
    }
  }

  /// Asks the sentinels in turn for the master's address; the first answer
  /// wins and its sentinel is asked first next time.
  pub async fn resolve(&self, cfg: &Config, tls: Option<&tls::Connector>) -> Result<(String, u16)> {
    let sc = cfg.sentinel.as_ref().expect("sentinel mode");
    let per = per_sentinel_timeout(cfg.connect_timeout);
    let order = self.order();
    let mut tried = Vec::with_capacity(order.len());
    // ERR_AUTH or ERR_TLS when every sentinel failed that way, else ERR_CONNECTION.
    let mut common: Option<ErrorCode> = None;
    let mut agree = |code: ErrorCode| {
      let code = match code {
        ErrorCode::Auth | ErrorCode::Tls => code,
        _ => ErrorCode::Connection,
      };
      common = match common {
        None => Some(code),
        Some(c) if c == code => Some(c),
        Some(_) => Some(ErrorCode::Connection),
      };
    };
    for (host, port) in &order {
      let why = match timeout(per, ask_master(cfg, sc, tls, host, *port)).await {
        Ok(Ok(found)) => {
          let mut o = self.order.lock();
          if let Some(i) = o.iter().position(|(h, p)| h == host && p == port) {
            let s = o.remove(i);
            o.insert(0, s);
          }
          return Ok(found);
        }
        Ok(Err(e)) => {
          agree(e.code);
          e.message
        }
        Err(_) => {
          agree(ErrorCode::Connection);
          format!("no answer within {} ms", per.as_millis())
        }
      };
      tried.push(format!("{} ({why})", addr(host, *port)));
    }
    let code = common.unwrap_or(ErrorCode::Connection);
    Err(cfg.redact(Error::new(
      code,
      format!(
        "no sentinel gave the address of master {:?}; tried {}",
        sc.master_name,
        tried.join(", ")
      ),
    )))
  }
}

/// The settings for talking to one sentinel: its address, the client's TLS.
fn sentinel_side(cfg: &Config, host: &str, port: u16) -> Config {
  let mut c = cfg.clone();
  c.host = host.to_string();
  c.port = port;
  c.sentinel = None;
  c.client_cache = None;
  c
}

/// A redis-rs connection to one sentinel (AUTH when it has a password),
/// with its driver running on this runtime until the connection is dropped.
async fn open(
  cfg: &Config,
  tls: Option<&tls::Connector>,
  host: &str,
  port: u16,
) -> Result<MultiplexedConnection> {
  let side = sentinel_side(cfg, host, port);
  let io = connect::stream(&side, tls).await.map_err(|e| {
    // "cannot reach host:port (why)" → "cannot reach it (why)": the caller names the sentinel.
    let why = e
      .message
      .rsplit_once(" (")
      .map(|(_, w)| w.trim_end_matches(')'))
      .unwrap_or("");
    Error::new(e.code, format!("cannot reach it: {why}"))
  })?;
  let config = AsyncConnectionConfig::new()
    .set_connection_timeout(None)
    .set_response_timeout(Some(per_sentinel_timeout(cfg.connect_timeout)));
  let (conn, driver) = MultiplexedConnection::new_with_config(&info(cfg), io, config)
    .await
    .map_err(|e| match e.kind() {
      redis::ErrorKind::AuthenticationFailed => auth_refused(&e.to_string()),
      _ => Error::new(ErrorCode::Connection, e.to_string()),
    })?;
  tokio::spawn(driver);
  Ok(conn)
}

/// The sentinels' own credentials (the data connection has its own).
fn info(cfg: &Config) -> RedisConnectionInfo {
  let sc = cfg.sentinel.as_ref().expect("sentinel mode");
  let mut info = RedisConnectionInfo::default().set_skip_set_lib_name();
  if let Some(p) = &sc.password {
    info = info.set_password(&p.0);
    if let Some(u) = &sc.username {
      info = info.set_username(u);
    }
  }
  info
}

fn text(v: &Value) -> Option<String> {
  match v {
    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
    Value::SimpleString(s) => Some(s.clone()),
    _ => None,
  }
}

fn auth_refused(text: &str) -> Error {
  Error::new(ErrorCode::Auth, format!("authentication refused: {text}"))
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME` on one sentinel.
async fn ask_master(
  cfg: &Config,
  sc: &SentinelConfig,
  tls: Option<&tls::Connector>,
  host: &str,
  port: u16,
) -> Result<(String, u16)> {
  let mut conn = open(cfg, tls, host, port).await?;
  let reply = conn
    .send_packed_command(
      redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(&sc.master_name),
    )
    .await;
  let reply = match reply {
    Ok(v) => v,
    Err(e) if e.kind() == redis::ErrorKind::AuthenticationFailed => {
      return Err(auth_refused(&e.to_string()))
    }
    Err(e) => return Err(Error::new(ErrorCode::Connection, e.to_string())),
  };
  match reply {
    Value::Array(a) if a.len() == 2 => {
      let h = text(&a[0]);
      let p = text(&a[1]).and_then(|p| p.parse::<u16>().ok());
      match (h, p) {
        (Some(h), Some(p)) if !h.is_empty() && p > 0 => Ok((h, p)),
        _ => Err(Error::new(
          ErrorCode::Reply,
          "answered with a malformed address",
        )),
      }
    }
    Value::Nil | Value::Array(_) => Err(Error::new(
      ErrorCode::Reply,
      format!("does not monitor a master named {:?}", sc.master_name),
    )),
    Value::ServerError(e) => {
      let t = connect::server_text(&e);
      let e = Error::from_server(&t);
      Err(if e.code == ErrorCode::Auth {
        auth_refused(&t)
      } else {
        e
      })
    }
    _ => Err(Error::new(
      ErrorCode::Reply,
      "answered with an unexpected reply",
    )),
  }
}

/// `ROLE` on a fresh data connection: `Ok` when it is the master.
///
/// ROLE is in ACL category `@dangerous`, which restricted users often lack:
/// when it is refused (`NOPERM`, or renamed away), the sentinels' word is
/// taken and a `READONLY` reply remains the signal of a demoted master.
pub async fn check_master(conn: &mut MultiplexedConnection, at: &str) -> Result<()> {
  let reply = conn
    .send_packed_command(&redis::cmd("ROLE"))
    .await
    .map_err(|e| Error::new(ErrorCode::Connection, format!("ROLE at {at} failed ({e})")))?;
  let role = match &reply {
    Value::Array(a) => a.first().and_then(text),
    Value::ServerError(_) => return Ok(()),
    _ => None,
  };
  match role.as_deref() {
    Some("master") => Ok(()),
    Some(r) => Err(Error::new(
      ErrorCode::Connection,
      format!("{at} is not the master (ROLE says {r}); a failover may be under way"),
    )),
    None => Err(Error::new(
      ErrorCode::Reply,
      format!("ROLE at {at} gave an unexpected reply"),
    )),
  }
}

/// Sentinel mode's connect: ask the sentinels for the master, open a
/// connection there and check with `ROLE` that it is the master; a server
/// that is not (a failover under way) or cannot be reached is tried again,
/// after backoff, until `connectTimeoutMs` runs out.
pub async fn open_master(
  cfg: &Config,
  s: &Sentinels,
  tls: Option<&tls::Connector>,
  push: Option<Arc<dyn Fn(redis::PushInfo) + Send + Sync>>,
) -> Result<(MultiplexedConnection, Driver)> {
  let deadline = tokio::time::Instant::now() + cfg.connect_timeout;
  let mut attempt = 0u32;
  loop {
    let generation = s.generation.load(SeqCst);
    let (host, port) = s.resolve(cfg, tls).await?;
    s.set_current(&host, port);
    let mut master = cfg.clone();
    master.host = host;
    master.port = port;
    master.sentinel = None;
    let at = master.address();
    let r = match connect::open(&master, tls, push.clone()).await {
      Ok((mut conn, mut driver)) => {
        let checked = tokio::select! {
          r = check_master(&mut conn, &at) => r,
          _ = &mut driver => Err(Error::new(ErrorCode::Connection, format!("{at} closed the connection"))),
        };
        checked.map(|_| (conn, driver))
      }
      Err(e) => Err(e),
    };
    match r {
      Ok(c) => {
        s.connected_generation.store(generation, SeqCst);
        return Ok(c);
      }
      // Wrong credentials or TLS settings will not get better by retrying.
      Err(e) if e.code != ErrorCode::Connection => return Err(cfg.redact(e)),
      Err(e) => {
        attempt += 1;
        let delay = backoff(attempt, cfg.reconnect_min, cfg.reconnect_max);
        if tokio::time::Instant::now() + delay >= deadline {
          return Err(cfg.redact(e));
        }
        sleep(delay).await;
      }
    }
  }
}

/// Starts one `+switch-master` watcher per sentinel; they end when `stop`'s
/// sender is dropped.
pub fn watch_all(
  sentinels: &Arc<Sentinels>,
  cfg: &Arc<Config>,
  tls: Option<tls::Connector>,
  wake: &Arc<Notify>,
  stop: &watch::Receiver<()>,
) {
  let sc = cfg.sentinel.as_ref().expect("sentinel mode");
  for (host, port) in sc.sentinels.clone() {
    let (s, cfg, tls, wake, mut stop) = (
      sentinels.clone(),
      cfg.clone(),
      tls.clone(),
      wake.clone(),
      stop.clone(),
    );
    tokio::spawn(async move {
      let mut attempt = 0u32;
      loop {
        tokio::select! {
          _ = stop.changed() => return,
          r = watch_one(&s, &cfg, tls.as_ref(), &host, port, &wake) => {
            // Subscribed and later lost: start the backoff over.
            if r { attempt = 0 }
          }
        }
        attempt = attempt.saturating_add(1);
        let delay =
          backoff(attempt, cfg.reconnect_min, cfg.reconnect_max).max(Duration::from_millis(100));
        tokio::select! {
          _ = stop.changed() => return,
          _ = sleep(delay) => {}
        }
      }
    });
  }
}

/// One subscription; returns whether it got as far as subscribing.
async fn watch_one(
  s: &Sentinels,
  cfg: &Config,
  tls: Option<&tls::Connector>,
  host: &str,
  port: u16,
  wake: &Notify,
) -> bool {
  let sc = cfg.sentinel.as_ref().expect("sentinel mode");
  let per = per_sentinel_timeout(cfg.connect_timeout);
  let setup = async {
    let side = sentinel_side(cfg, host, port);
    let io = connect::stream(&side, tls).await.ok()?;
    let mut pubsub = redis::aio::PubSub::new(&info(cfg), io).await.ok()?;
    pubsub.subscribe("+switch-master").await.ok()?;
    Some(pubsub)
  };
  let mut pubsub = match timeout(per, setup).await {
    Ok(Some(p)) => p,
    _ => return false,
  };
  let mut messages = pubsub.on_message();
  while let Some(msg) = messages.next().await {
    // "<name> <old-ip> <old-port> <new-ip> <new-port>"
    let payload = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
    let f: Vec<&str> = payload.split(' ').collect();
    if f.len() == 5 && f[0] == sc.master_name {
      if let Ok(p) = f[4].parse::<u16>() {
        s.announced(f[3], p, wake);
      }
    }
  }
  true
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn per_sentinel_timeout_is_bounded() {
    let ms = Duration::from_millis;
    assert_eq!(per_sentinel_timeout(ms(5000)), ms(1000));
    assert_eq!(per_sentinel_timeout(ms(900)), ms(300));
    assert_eq!(per_sentinel_timeout(ms(150)), ms(100));
    assert_eq!(per_sentinel_timeout(ms(50)), ms(50));
  }

  #[test]
  fn a_switch_to_the_current_master_is_not_a_switch() {
    let cfg =
      Config::from_options_json(r#"{"sentinel":{"masterName":"m","sentinels":["a:1","b:2"]}}"#)
        .unwrap();
    let s = Sentinels::new(cfg.sentinel.as_ref().unwrap());
    let wake = Notify::new();
    s.set_current("10.0.0.1", 6379);
    s.announced("10.0.0.1", 6379, &wake);
    assert_eq!(s.generation.load(SeqCst), 0);
    s.announced("10.0.0.2", 6379, &wake);
    assert_eq!(s.generation.load(SeqCst), 1);
  }

  #[test]
  fn a_sentinel_that_does_not_answer_is_reported_without_the_password() {
    // Nothing listens on port 1 of loopback: connection refused, at once.
    let cfg = Config::from_options_json(
      r#"{"password":"datapw","connectTimeoutMs":300,"sentinel":{"masterName":"m","sentinels":["127.0.0.1:1","127.0.0.1:2"],"password":"senpw"}}"#,
    )
    .unwrap();
    let s = Sentinels::new(cfg.sentinel.as_ref().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
      .enable_all()
      .build()
      .unwrap();
    let e = rt.block_on(s.resolve(&cfg, None)).unwrap_err();
    assert_eq!(e.code, ErrorCode::Connection);
    assert!(
      e.message.contains("127.0.0.1:1 (") && e.message.contains("127.0.0.1:2 ("),
      "{}",
      e.message
    );
    assert!(e.message.contains("\"m\""), "{}", e.message);
    assert!(!e.message.contains("senpw") && !e.message.contains("datapw"));
  }
}
