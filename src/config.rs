//! Connection settings: from a URL, from an options object (as JSON from the
//! TypeScript layer), or from the environment the API already uses.
//!
//! ```
//! use atlas_redis::config::Config;
//! let c = Config::from_url("rediss://app:s3cret@cache.internal:6380/2").unwrap();
//! assert_eq!(c.port, 6380);
//! assert_eq!(c.db, 2);
//! assert!(c.tls.is_some());
//! assert_eq!(c.username.as_deref(), Some("app"));
//! // Debug output never shows the password.
//! assert!(!format!("{c:?}").contains("s3cret"));
//! ```

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Default per-command timeout.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 5_000;
/// Default connect timeout (TCP + TLS + handshake).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_RECONNECT_MIN_MS: u64 = 50;
pub const DEFAULT_RECONNECT_MAX_MS: u64 = 2_000;

/// A password that never shows up in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("Secret(***)")
  }
}

/// TLS settings. Certificates are verified unless `reject_unauthorized` is false.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
  /// PEM: trust these CAs instead of the bundled Mozilla roots.
  pub ca: Option<String>,
  /// PEM client certificate (chain) and key, for servers that want one.
  pub cert: Option<String>,
  pub key: Option<Secret>,
  /// Name to verify the certificate against (defaults to the host).
  pub servername: Option<String>,
  pub reject_unauthorized: bool,
}

impl Default for TlsConfig {
  fn default() -> Self {
    TlsConfig {
      ca: None,
      cert: None,
      key: None,
      servername: None,
      reject_unauthorized: true,
    }
  }
}

/// Everything a client needs to connect.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
  pub host: String,
  pub port: u16,
  pub username: Option<String>,
  pub password: Option<Secret>,
  pub db: u32,
  pub tls: Option<TlsConfig>,
  pub key_prefix: Vec<u8>,
  pub connect_timeout: Duration,
  pub command_timeout: Duration,
  pub reconnect_min: Duration,
  pub reconnect_max: Duration,
  /// Server-assisted client-side caching (RESP3 tracking), when configured.
  pub client_cache: Option<ClientCacheConfig>,
}

/// Keys under `prefixes` (relative to the key prefix) are cached in process
/// memory and invalidated by the server (`CLIENT TRACKING … BCAST`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCacheConfig {
  pub prefixes: Vec<String>,
  pub max_entries: u32,
  pub ttl: Duration,
}

pub const DEFAULT_CLIENT_CACHE_ENTRIES: u32 = 10_000;
pub const DEFAULT_CLIENT_CACHE_TTL_MS: u64 = 60_000;

impl Default for Config {
  fn default() -> Self {
    Config {
      host: "127.0.0.1".into(),
      port: 6379,
      username: None,
      password: None,
      db: 0,
      tls: None,
      key_prefix: Vec::new(),
      connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
      command_timeout: Duration::from_millis(DEFAULT_COMMAND_TIMEOUT_MS),
      reconnect_min: Duration::from_millis(DEFAULT_RECONNECT_MIN_MS),
      reconnect_max: Duration::from_millis(DEFAULT_RECONNECT_MAX_MS),
      client_cache: None,
    }
  }
}

/// `ConnectOptions` as the TypeScript layer serialises it. Unknown fields are
/// refused so that a typo (`hots`) is an error, not a silent default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOptions {
  url: Option<String>,
  host: Option<String>,
  port: Option<f64>,
  username: Option<String>,
  password: Option<String>,
  db: Option<f64>,
  tls: Option<RawTls>,
  key_prefix: Option<String>,
  connect_timeout_ms: Option<f64>,
  command_timeout_ms: Option<f64>,
  reconnect: Option<RawReconnect>,
  client_cache: Option<RawClientCache>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawClientCache {
  prefixes: Vec<String>,
  max_entries: Option<f64>,
  ttl_ms: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTls {
  Flag(bool),
  Options(RawTlsOptions),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTlsOptions {
  ca: Option<String>,
  cert: Option<String>,
  key: Option<String>,
  servername: Option<String>,
  reject_unauthorized: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawReconnect {
  min_delay_ms: Option<f64>,
  max_delay_ms: Option<f64>,
}

fn whole(name: &str, v: f64, min: f64, max: f64) -> Result<f64> {
  if !v.is_finite() || v.fract() != 0.0 || v < min || v > max {
    return Err(Error::invalid(format!(
      "option {name} must be an integer from {min} to {max}, got {v}"
    )));
  }
  Ok(v)
}

fn millis(name: &str, v: f64) -> Result<Duration> {
  Ok(Duration::from_millis(
    whole(name, v, 1.0, 24.0 * 3600.0 * 1000.0)? as u64,
  ))
}

impl Config {
  /// Parses `redis://[[user]:password@]host[:port][/db]` or `rediss://…` (TLS).
  pub fn from_url(input: &str) -> Result<Config> {
    let mut c = Config::default();
    c.apply_url(input)?;
    Ok(c)
  }

  fn apply_url(&mut self, input: &str) -> Result<()> {
    // The URL may hold a password: error messages never quote it.
    let url = url::Url::parse(input).map_err(|e| {
      Error::invalid(format!(
        "url is not a valid redis:// or rediss:// URL ({e})"
      ))
    })?;
    match url.scheme() {
      "redis" => self.tls = None,
      "rediss" => self.tls = Some(self.tls.clone().unwrap_or_default()),
      other => {
        return Err(Error::invalid(format!(
          "url scheme {other}:// is not supported (use redis:// or rediss://)"
        )))
      }
    }
    match url.host() {
      Some(url::Host::Domain(d)) => self.host = d.to_string(),
      Some(url::Host::Ipv4(a)) => self.host = a.to_string(),
      Some(url::Host::Ipv6(a)) => self.host = a.to_string(),
      None => {}
    }
    if let Some(p) = url.port() {
      self.port = p;
    }
    let decode = |s: &str| {
      percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::invalid("url credentials are not valid UTF-8"))
    };
    if !url.username().is_empty() {
      self.username = Some(decode(url.username())?);
    }
    if let Some(p) = url.password() {
      self.password = Some(Secret(decode(p)?));
    }
    let path = url.path().trim_start_matches('/');
    if !path.is_empty() {
      self.db = path
        .parse()
        .map_err(|_| Error::invalid(format!("url database {path:?} is not a number")))?;
    }
    for (k, v) in url.query_pairs() {
      match &*k {
        "db" => {
          self.db = v
            .parse()
            .map_err(|_| Error::invalid(format!("url db={v:?} is not a number")))?
        }
        other => {
          return Err(Error::invalid(format!(
            "url query option {other:?} is not supported"
          )))
        }
      }
    }
    Ok(())
  }

  /// Parses the options object the TypeScript layer sends as JSON. A `url`
  /// is applied first; explicit fields override what it said.
  pub fn from_options_json(json: &str) -> Result<Config> {
    let raw: RawOptions = serde_json::from_str(json).map_err(|e| {
      // serde names the field, never the value, for these errors.
      Error::invalid(format!("invalid connect options: {e}"))
    })?;
    let mut c = Config::default();
    if let Some(u) = &raw.url {
      c.apply_url(u)?;
    }
    if let Some(h) = raw.host {
      if h.is_empty() {
        return Err(Error::invalid("option host must not be empty"));
      }
      c.host = h;
    }
    if let Some(p) = raw.port {
      c.port = whole("port", p, 1.0, 65535.0)? as u16;
    }
    if raw.username.is_some() {
      c.username = raw.username.filter(|u| !u.is_empty());
    }
    if let Some(p) = raw.password {
      c.password = Some(Secret(p)).filter(|p| !p.0.is_empty());
    }
    if let Some(d) = raw.db {
      c.db = whole("db", d, 0.0, 65535.0)? as u32;
    }
    match raw.tls {
      None => {}
      Some(RawTls::Flag(false)) => c.tls = None,
      Some(RawTls::Flag(true)) => c.tls = Some(c.tls.unwrap_or_default()),
      Some(RawTls::Options(t)) => {
        if t.key.is_some() != t.cert.is_some() {
          return Err(Error::invalid(
            "options tls.cert and tls.key must be given together",
          ));
        }
        c.tls = Some(TlsConfig {
          ca: t.ca,
          cert: t.cert,
          key: t.key.map(Secret),
          servername: t.servername,
          reject_unauthorized: t.reject_unauthorized.unwrap_or(true),
        })
      }
    }
    if let Some(p) = raw.key_prefix {
      c.key_prefix = p.into_bytes();
    }
    if let Some(v) = raw.connect_timeout_ms {
      c.connect_timeout = millis("connectTimeoutMs", v)?;
    }
    if let Some(v) = raw.command_timeout_ms {
      c.command_timeout = millis("commandTimeoutMs", v)?;
    }
    if let Some(cc) = raw.client_cache {
      if cc.prefixes.is_empty() || cc.prefixes.iter().any(|p| p.is_empty()) {
        return Err(Error::invalid(
          "option clientCache.prefixes must list at least one non-empty prefix",
        ));
      }
      c.client_cache = Some(ClientCacheConfig {
        prefixes: cc.prefixes,
        max_entries: match cc.max_entries {
          Some(n) => whole("clientCache.maxEntries", n, 1.0, 10_000_000.0)? as u32,
          None => DEFAULT_CLIENT_CACHE_ENTRIES,
        },
        ttl: match cc.ttl_ms {
          Some(v) => millis("clientCache.ttlMs", v)?,
          None => Duration::from_millis(DEFAULT_CLIENT_CACHE_TTL_MS),
        },
      });
    }
    if let Some(r) = raw.reconnect {
      if let Some(v) = r.min_delay_ms {
        c.reconnect_min = millis("reconnect.minDelayMs", v)?;
      }
      if let Some(v) = r.max_delay_ms {
        c.reconnect_max = millis("reconnect.maxDelayMs", v)?;
      }
      if c.reconnect_min > c.reconnect_max {
        return Err(Error::invalid(
          "option reconnect.minDelayMs must not exceed reconnect.maxDelayMs",
        ));
      }
    }
    Ok(c)
  }

  /// Reads `REDIS_URL`, else `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`,
  /// `REDIS_USERNAME`, `REDIS_DB`, `REDIS_TLS`; `REDIS_KEY_PREFIX` applies to both.
  pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Config> {
    let get = |k: &str| var(k).filter(|v| !v.trim().is_empty());
    let mut c = match get("REDIS_URL") {
      Some(u) => Config::from_url(u.trim())
        .map_err(|e| Error::invalid(format!("REDIS_URL: {}", e.message)))?,
      None => {
        let mut c = Config::default();
        if let Some(h) = get("REDIS_HOST") {
          c.host = h.trim().to_string();
        }
        if let Some(p) = get("REDIS_PORT") {
          c.port = p
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::invalid(format!("REDIS_PORT {p:?} is not a port number")))?;
        }
        c.username = get("REDIS_USERNAME");
        c.password = var("REDIS_PASSWORD").filter(|p| !p.is_empty()).map(Secret);
        if let Some(d) = get("REDIS_DB") {
          c.db = d
            .trim()
            .parse()
            .map_err(|_| Error::invalid(format!("REDIS_DB {d:?} is not a number")))?;
        }
        if let Some(t) = get("REDIS_TLS") {
          match t.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => c.tls = Some(TlsConfig::default()),
            "0" | "false" | "no" | "off" => c.tls = None,
            _ => {
              return Err(Error::invalid(format!(
                "REDIS_TLS {t:?} must be true or false"
              )))
            }
          }
        }
        c
      }
    };
    if let Some(p) = var("REDIS_KEY_PREFIX") {
      c.key_prefix = p.into_bytes();
    }
    Ok(c)
  }

  /// `host:port` as shown in messages (IPv6 in brackets).
  pub fn address(&self) -> String {
    if self.host.contains(':') {
      format!("[{}]:{}", self.host, self.port)
    } else {
      format!("{}:{}", self.host, self.port)
    }
  }

  pub fn password_str(&self) -> Option<&str> {
    self.password.as_ref().map(|s| s.0.as_str())
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::collections::HashMap;

  fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
      .iter()
      .map(|(k, v)| (k.to_string(), v.to_string()))
      .collect();
    move |k| m.get(k).cloned()
  }

  #[test]
  fn url_forms() {
    let c = Config::from_url("redis://localhost").unwrap();
    assert_eq!((c.host.as_str(), c.port, c.db), ("localhost", 6379, 0));
    assert!(c.tls.is_none() && c.password.is_none());

    let c = Config::from_url("redis://:p%40ss@10.0.0.1:7000/3").unwrap();
    assert_eq!(c.password, Some(Secret("p@ss".into())));
    assert_eq!(c.username, None);
    assert_eq!((c.port, c.db), (7000, 3));

    let c = Config::from_url("rediss://default:pw@[::1]:6380?db=4").unwrap();
    assert_eq!(c.host, "::1");
    assert_eq!(c.address(), "[::1]:6380");
    assert_eq!(c.db, 4);
    assert!(c.tls.as_ref().unwrap().reject_unauthorized);
  }

  #[test]
  fn bad_urls_never_echo_the_password() {
    for u in [
      "http://user:hunter2@host",
      "redis://user:hunter2@host/notadb",
      "redis://user:hunter2@host:99999",
      "redis://user:hunter2@host?foo=bar",
    ] {
      let e = Config::from_url(u).unwrap_err();
      assert_eq!(e.code.as_str(), "ERR_INVALID_ARGUMENT", "{u}");
      assert!(!e.message.contains("hunter2"), "{u}: {}", e.message);
    }
  }

  #[test]
  fn env_host_port_password() {
    let c = Config::from_env(env(&[
      ("REDIS_HOST", "redis.internal"),
      ("REDIS_PORT", "6380"),
      ("REDIS_PASSWORD", "pw"),
      ("REDIS_USERNAME", "api"),
      ("REDIS_DB", "2"),
      ("REDIS_TLS", "true"),
      ("REDIS_KEY_PREFIX", "atlas:"),
    ]))
    .unwrap();
    assert_eq!(c.address(), "redis.internal:6380");
    assert_eq!(c.password_str(), Some("pw"));
    assert_eq!(c.username.as_deref(), Some("api"));
    assert_eq!(c.db, 2);
    assert!(c.tls.is_some());
    assert_eq!(c.key_prefix, b"atlas:");
  }

  #[test]
  fn env_url_wins_and_defaults_apply() {
    let c = Config::from_env(env(&[
      ("REDIS_URL", "redis://u:p@h:1/1"),
      ("REDIS_HOST", "ignored"),
    ]))
    .unwrap();
    assert_eq!(c.address(), "h:1");
    let c = Config::from_env(env(&[])).unwrap();
    assert_eq!(c.address(), "127.0.0.1:6379");
    assert!(Config::from_env(env(&[("REDIS_PORT", "abc")])).is_err());
    assert!(Config::from_env(env(&[("REDIS_TLS", "maybe")])).is_err());
  }

  #[test]
  fn options_override_url_and_validate() {
    let c = Config::from_options_json(
      r#"{"url":"redis://a:1/0","port":2,"keyPrefix":"p:","commandTimeoutMs":250,"tls":{"ca":"PEM","servername":"x"}}"#,
    )
    .unwrap();
    assert_eq!(c.address(), "a:2");
    assert_eq!(c.key_prefix, b"p:");
    assert_eq!(c.command_timeout, Duration::from_millis(250));
    assert_eq!(c.tls.unwrap().servername.as_deref(), Some("x"));

    let c = Config::from_options_json(r#"{"clientCache":{"prefixes":["coa:"],"maxEntries":50}}"#)
      .unwrap();
    let cc = c.client_cache.unwrap();
    assert_eq!(
      (cc.prefixes, cc.max_entries),
      (vec!["coa:".to_string()], 50)
    );
    assert_eq!(cc.ttl, Duration::from_millis(DEFAULT_CLIENT_CACHE_TTL_MS));

    for bad in [
      r#"{"hots":"x"}"#,
      r#"{"port":0}"#,
      r#"{"port":1.5}"#,
      r#"{"commandTimeoutMs":-1}"#,
      r#"{"db":"1"}"#,
      r#"{"tls":{"cert":"x"}}"#,
      r#"{"reconnect":{"minDelayMs":500,"maxDelayMs":100}}"#,
      r#"{"clientCache":{"prefixes":[]}}"#,
      r#"{"clientCache":{"prefixes":["a"],"maxEntries":0}}"#,
    ] {
      let e = Config::from_options_json(bad).unwrap_err();
      assert_eq!(e.code.as_str(), "ERR_INVALID_ARGUMENT", "{bad}");
    }
  }

  #[test]
  fn password_is_not_in_debug_or_errors() {
    let c = Config::from_options_json(r#"{"password":"topsecret","tls":{"key":"KEY","cert":"C"}}"#)
      .unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("topsecret") && !dbg.contains("KEY"));
    let e = Config::from_options_json(r#"{"password":"topsecret","port":"x"}"#).unwrap_err();
    assert!(!e.message.contains("topsecret"));
  }
}
