//! Connection settings: from a URL, from an options object (as JSON from the
//! TypeScript layer), or from the environment the API already uses.
//!
//! ```
//! use atlas_redis::engine::config::Config;
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

#[cfg(test)]
use crate::error::ErrorCode;
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
  /// Sentinel mode: the master is looked up before every (re)connect and
  /// `host`/`port` are not used.
  pub sentinel: Option<SentinelConfig>,
  /// `memory://name`: the embedded store of that name instead of a server
  /// (host, port, password and TLS do not apply).
  pub memory: Option<String>,
  /// Redis Cluster: the seed nodes (the rest is discovered); credentials and
  /// TLS apply to every node.
  pub cluster: Option<ClusterConfig>,
  /// `CLIENT SETNAME` in every (re)connect's handshake.
  pub connection_name: Option<String>,
  /// The dedicated connections of blocking commands (`engine::dedicated`).
  pub blocking: BlockingConfig,
}

/// How many blocking commands a client runs at once, each on a connection of
/// its own, and how long such a connection may stay unused before it closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockingConfig {
  pub max_connections: usize,
  pub idle: Duration,
}

pub const DEFAULT_BLOCKING_MAX_CONNECTIONS: usize = 64;
pub const DEFAULT_BLOCKING_IDLE_MS: u64 = 30_000;

impl Default for BlockingConfig {
  fn default() -> Self {
    BlockingConfig {
      max_connections: DEFAULT_BLOCKING_MAX_CONNECTIONS,
      idle: Duration::from_millis(DEFAULT_BLOCKING_IDLE_MS),
    }
  }
}

/// Where a Redis Cluster can be reached first, and how often a call may be
/// redirected (MOVED, ASK, TRYAGAIN) before it fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
  /// `(host, port)` of the seeds, in the order given.
  pub nodes: Vec<(String, u16)>,
  pub max_redirections: u32,
}

pub const DEFAULT_MAX_REDIRECTIONS: u32 = 16;

/// Where to ask for the master's address. `username`/`password` are the
/// sentinels' own credentials; the data connection uses `Config::password`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentinelConfig {
  pub master_name: String,
  /// `(host, port)`, in the order given.
  pub sentinels: Vec<(String, u16)>,
  pub username: Option<String>,
  pub password: Option<Secret>,
}

/// `host:port` or `[v6]:port` as a sentinel address.
fn parse_host_port(what: &str, s: &str) -> Result<(String, u16)> {
  let s = s.trim();
  let bad = || {
    if s.contains('@') {
      // Credentials in an address: never echoed; they go in the options.
      return Error::invalid(format!(
        "{what}: an address must be host:port (e.g. \"10.0.0.5:26379\"); this one holds '@' (credentials go in the password/username options, not in the address)"
      ));
    }
    Error::invalid(format!(
      "{what}: {s:?} is not a host:port address (e.g. \"10.0.0.5:26379\")"
    ))
  };
  let (host, port) = if let Some(rest) = s.strip_prefix('[') {
    let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
    (h, p)
  } else {
    let (h, p) = s.rsplit_once(':').ok_or_else(bad)?;
    if h.contains(':') {
      return Err(bad());
    }
    (h, p)
  };
  if host.is_empty()
    || host
      .chars()
      .any(|c| c.is_whitespace() || c == '/' || c == '@')
  {
    return Err(bad());
  }
  let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
  Ok((host.to_string(), port))
}

fn sentinel_config(
  what: &str,
  master_name: Option<String>,
  sentinels: Vec<String>,
  username: Option<String>,
  password: Option<String>,
) -> Result<SentinelConfig> {
  let master_name = master_name
    .map(|m| m.trim().to_string())
    .unwrap_or_default();
  if master_name.is_empty() {
    return Err(Error::invalid(format!(
      "{what}: the master name (as in `sentinel monitor <name> ...`) is missing"
    )));
  }
  if master_name.chars().any(|c| c.is_whitespace()) {
    return Err(Error::invalid(format!(
      "{what}: master name {master_name:?} must not contain spaces"
    )));
  }
  if sentinels.is_empty() {
    return Err(Error::invalid(format!(
      "{what}: list at least one sentinel as host:port"
    )));
  }
  let sentinels = sentinels
    .iter()
    .map(|s| parse_host_port(what, s))
    .collect::<Result<Vec<_>>>()?;
  Ok(SentinelConfig {
    master_name,
    sentinels,
    username: username.filter(|u| !u.is_empty()),
    password: password.filter(|p| !p.is_empty()).map(Secret),
  })
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
      sentinel: None,
      memory: None,
      cluster: None,
      connection_name: None,
      blocking: BlockingConfig::default(),
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
  sentinel: Option<RawSentinel>,
  connection_name: Option<String>,
  cluster: Option<RawCluster>,
  blocking: Option<RawBlocking>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBlocking {
  max_connections: Option<f64>,
  idle_ms: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCluster {
  nodes: Option<Vec<String>>,
  max_redirections: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSentinel {
  master_name: Option<String>,
  sentinels: Option<Vec<String>>,
  username: Option<String>,
  password: Option<String>,
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
    if let Some(after_host) = input.split_once("://").map(|(_, rest)| rest) {
      let authority_end = after_host.find(['/', '?', '#']).unwrap_or(after_host.len());
      if after_host[authority_end..].contains('@') {
        return Err(Error::invalid(
          "url has an '@' after its host: a password holding '?', '#' or '/' must be percent-encoded (encodeURIComponent)",
        ));
      }
    }
    let url = url::Url::parse(input).map_err(|e| {
      Error::invalid(format!(
        "url is not a valid redis:// or rediss:// URL ({e})"
      ))
    })?;
    match url.scheme() {
      "memory" => return self.apply_memory_url(&url),
      "redis" => self.tls = None,
      "rediss" => self.tls = Some(self.tls.clone().unwrap_or_default()),
      other => {
        return Err(Error::invalid(format!(
          "url scheme {other}:// is not supported (use redis://, rediss:// or memory://)"
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
      if p == 0 {
        return Err(Error::invalid("url port must be from 1 to 65535"));
      }
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
        // Not quoted: in a mistyped URL the "path" can hold the credentials.
        .map_err(|_| Error::invalid("url database (the path after host:port) must be a number"))?;
    }
    for (k, v) in url.query_pairs() {
      match &*k {
        "db" => {
          self.db = v
            .parse()
            .map_err(|_| Error::invalid("url query option db= is not a number"))?
        }
        _ => {
          // Not quoted: a password with an unencoded '?' lands here.
          return Err(Error::invalid(
            "url query options other than db= are not supported (a password holding '?', '#' or '/' must be percent-encoded)",
          ));
        }
      }
    }
    Ok(())
  }

  /// `memory://[name][/db]`: the embedded store `name` ("" when omitted).
  fn apply_memory_url(&mut self, url: &url::Url) -> Result<()> {
    if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
      return Err(Error::invalid(
        "a memory:// url takes a store name and a database only (memory://name/db)",
      ));
    }
    let name = url.host_str().unwrap_or("");
    let name = percent_encoding::percent_decode_str(name)
      .decode_utf8()
      .map_err(|_| Error::invalid("url store name is not valid UTF-8"))?;
    self.memory = Some(name.into_owned());
    self.tls = None;
    let path = url.path().trim_start_matches('/');
    if !path.is_empty() {
      self.db =
        path.parse().ok().filter(|d| *d < 16).ok_or_else(|| {
          Error::invalid("url database of memory:// must be a number from 0 to 15")
        })?;
    }
    if url.query().is_some() {
      return Err(Error::invalid("a memory:// url takes no query options"));
    }
    Ok(())
  }

  /// Parses the options object the TypeScript layer sends as JSON. A `url`
  /// is applied first; explicit fields override what it said.
  pub fn from_options_json(json: &str) -> Result<Config> {
    let raw: RawOptions = serde_json::from_str(json).map_err(|e| {
      // serde names the field, never the value, for these errors.
      // serde quotes a mistyped value (`4711081512`): it could be the password.
      let text = e.to_string();
      let text = if text.starts_with("invalid type") || text.starts_with("invalid value") {
        let mut out = String::new();
        for (i, part) in text.split('`').enumerate() {
          out.push_str(if i % 2 == 1 { "…" } else { part });
        }
        out
      } else {
        text
      };
      Error::invalid(format!("invalid connect options: {text}"))
    })?;
    let explicit_addr = raw.host.is_some() || raw.port.is_some();
    let mut c = Config::default();
    if let Some(u) = &raw.url {
      c.apply_url(u)?;
    }
    if let Some(h) = raw.host {
      if h.is_empty() {
        return Err(Error::invalid("option host must not be empty"));
      }
      if h.contains(['@', '/']) {
        return Err(Error::invalid(
          "option host must be a host name or address (it holds '@' or '/': credentials go in username/password, a URL in url)",
        ));
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
    if let Some(cl) = raw.cluster {
      if raw.sentinel.is_some() {
        return Err(Error::invalid(
          "options cluster and sentinel cannot be combined",
        ));
      }
      let nodes = cl.nodes.unwrap_or_default();
      c.cluster = Some(ClusterConfig {
        nodes: if nodes.is_empty() {
          vec![(c.host.clone(), c.port)]
        } else {
          nodes
            .iter()
            .map(|n| parse_host_port("cluster.nodes", n))
            .collect::<Result<_>>()?
        },
        max_redirections: match cl.max_redirections {
          Some(v) => whole("cluster.maxRedirections", v, 0.0, 1000.0)? as u32,
          None => DEFAULT_MAX_REDIRECTIONS,
        },
      });
    }
    if let Some(s) = raw.sentinel {
      if explicit_addr {
        return Err(Error::invalid(
          "options host/port and sentinel exclude each other: with sentinel the master's address comes from the sentinels",
        ));
      }
      let what = "option sentinel";
      let sentinels = s.sentinels.ok_or_else(|| {
        Error::invalid("option sentinel.sentinels is missing: list the sentinels as host:port")
      })?;
      c.sentinel = Some(sentinel_config(
        what,
        s.master_name,
        sentinels,
        s.username,
        s.password,
      )?);
    }
    if c.memory.is_some() && c.tls.is_some() {
      return Err(Error::invalid(
        "option tls does not apply to a memory:// url (the store is in this process)",
      ));
    }
    if c.memory.is_some() && c.sentinel.is_some() {
      return Err(Error::invalid(
        "option sentinel does not apply to a memory:// url (the store is in this process)",
      ));
    }
    if let Some(name) = raw.connection_name {
      // Redis refuses spaces, newlines and other special characters in a name.
      if name.is_empty() || !name.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        return Err(Error::invalid(
          "option connectionName must be a non-empty string of printable ASCII characters without spaces",
        ));
      }
      c.connection_name = Some(name);
    }
    if c.cluster.is_some() && c.db != 0 {
      return Err(Error::invalid(
        "Redis Cluster has database 0 only (option db)",
      ));
    }
    if let Some(b) = raw.blocking {
      if let Some(n) = b.max_connections {
        c.blocking.max_connections = whole("blocking.maxConnections", n, 1.0, 10_000.0)? as usize;
      }
      if let Some(v) = b.idle_ms {
        c.blocking.idle = millis("blocking.idleMs", v)?;
      }
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
          if h.contains(['@', '/']) {
            return Err(Error::invalid(
              "REDIS_HOST must be a host name or address (it holds '@' or '/': use REDIS_URL or REDIS_PASSWORD)",
            ));
          }
          c.host = h.trim().to_string();
        }
        if let Some(p) = get("REDIS_PORT") {
          c.port = p
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::invalid("REDIS_PORT is not a port number"))?;
        }
        c.username = get("REDIS_USERNAME");
        c.password = var("REDIS_PASSWORD").filter(|p| !p.is_empty()).map(Secret);
        if let Some(d) = get("REDIS_DB") {
          c.db = d
            .trim()
            .parse()
            .map_err(|_| Error::invalid("REDIS_DB is not a number"))?;
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
    if let Some(list) = get("REDIS_CLUSTER_NODES") {
      let nodes = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|n| parse_host_port("REDIS_CLUSTER_NODES", n))
        .collect::<Result<Vec<_>>>()?;
      c.cluster = Some(ClusterConfig {
        nodes,
        max_redirections: DEFAULT_MAX_REDIRECTIONS,
      });
      if c.db != 0 {
        return Err(Error::invalid(
          "Redis Cluster has database 0 only (REDIS_DB / the URL's database)",
        ));
      }
    }
    match (get("REDIS_SENTINELS"), get("REDIS_SENTINEL_MASTER")) {
      (None, None) => {}
      (None, Some(_)) => {
        return Err(Error::invalid(
          "REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS (host:port,host:port) is not",
        ))
      }
      (Some(list), master) => {
        c.sentinel = Some(sentinel_config(
          "REDIS_SENTINELS/REDIS_SENTINEL_MASTER",
          master,
          list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
          get("REDIS_SENTINEL_USERNAME"),
          var("REDIS_SENTINEL_PASSWORD"),
        )?)
      }
    }
    Ok(c)
  }

  /// `host:port` as shown in messages (IPv6 in brackets); in sentinel mode,
  /// the master's name.
  pub fn address(&self) -> String {
    if let Some(s) = &self.sentinel {
      return format!("master {:?} (via Sentinel)", s.master_name);
    }
    if let Some(name) = &self.memory {
      return format!("memory://{name}");
    }
    if self.host.contains(':') {
      format!("[{}]:{}", self.host, self.port)
    } else {
      format!("{}:{}", self.host, self.port)
    }
  }

  pub fn password_str(&self) -> Option<&str> {
    self.password.as_ref().map(|s| s.0.as_str())
  }

  /// Removes both the data password and the sentinels' password from `e`.
  pub fn redact(&self, e: Error) -> Error {
    let e = e.redact(self.password_str());
    match self.sentinel.as_ref().and_then(|s| s.password.as_ref()) {
      Some(p) => e.redact(Some(&p.0)),
      None => e,
    }
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
  fn connection_name_is_checked() {
    let c = Config::from_options_json(r#"{"connectionName":"orders-api:1"}"#).unwrap();
    assert_eq!(c.connection_name.as_deref(), Some("orders-api:1"));
    for bad in [
      r#""""#,
      r#""two words""#,
      r#""line\nbreak""#,
      r#""caf\u00e9""#,
      "7",
    ] {
      let e = Config::from_options_json(&format!(r#"{{"connectionName":{bad}}}"#)).unwrap_err();
      assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad}");
    }
    assert_eq!(Config::default().connection_name, None);
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
  fn sentinel_options() {
    let c = Config::from_options_json(
      r#"{"password":"datapw","sentinel":{"masterName":"mymaster","sentinels":["10.0.0.1:26379"," s2.internal:26380","[::1]:5000"],"password":"sentinelpw","username":"sen"}}"#,
    )
    .unwrap();
    let s = c.sentinel.as_ref().unwrap();
    assert_eq!(s.master_name, "mymaster");
    assert_eq!(
      s.sentinels,
      vec![
        ("10.0.0.1".to_string(), 26379),
        ("s2.internal".to_string(), 26380),
        ("::1".to_string(), 5000)
      ]
    );
    assert_eq!(s.username.as_deref(), Some("sen"));
    assert_eq!(c.password_str(), Some("datapw"));
    let dbg = format!("{c:?}");
    assert!(
      !dbg.contains("sentinelpw") && !dbg.contains("datapw"),
      "{dbg}"
    );
    assert_eq!(c.address(), "master \"mymaster\" (via Sentinel)");
    let e = c.redact(Error::new(
      ErrorCode::Connection,
      "echo sentinelpw and datapw",
    ));
    assert_eq!(e.message, "echo *** and ***");

    // The URL still gives the data connection's password, db and TLS.
    let c = Config::from_options_json(
      r#"{"url":"rediss://:pw@ignored:1/3","sentinel":{"masterName":"m","sentinels":["a:1"]}}"#,
    )
    .unwrap();
    assert_eq!(
      (c.db, c.tls.is_some(), c.password_str()),
      (3, true, Some("pw"))
    );
    assert!(c.sentinel.unwrap().password.is_none());

    for (bad, says) in [
      (
        r#"{"sentinel":{"masterName":"m","sentinels":[]}}"#,
        "at least one",
      ),
      (r#"{"sentinel":{"masterName":"m"}}"#, "sentinels is missing"),
      (r#"{"sentinel":{"sentinels":["a:1"]}}"#, "master name"),
      (
        r#"{"sentinel":{"masterName":" ","sentinels":["a:1"]}}"#,
        "master name",
      ),
      (
        r#"{"sentinel":{"masterName":"m","sentinels":["a"]}}"#,
        "\"a\" is not a host:port",
      ),
      (
        r#"{"sentinel":{"masterName":"m","sentinels":["a:0"]}}"#,
        "host:port",
      ),
      (
        r#"{"sentinel":{"masterName":"m","sentinels":["a:70000"]}}"#,
        "host:port",
      ),
      (
        r#"{"sentinel":{"masterName":"m","sentinels":[":1"]}}"#,
        "host:port",
      ),
      (
        r#"{"sentinel":{"masterName":"m","sentinels":["::1:5"]}}"#,
        "host:port",
      ),
      (
        r#"{"sentinel":{"masterName":"m","sentinels":["a:1"],"pasword":"x"}}"#,
        "pasword",
      ),
      (
        r#"{"host":"h","sentinel":{"masterName":"m","sentinels":["a:1"]}}"#,
        "exclude",
      ),
      (
        r#"{"sentinel":{"masterName":"m","sentinels":"a:1"}}"#,
        "invalid type",
      ),
    ] {
      let e = Config::from_options_json(bad).unwrap_err();
      assert_eq!(e.code.as_str(), "ERR_INVALID_ARGUMENT", "{bad}");
      assert!(e.message.contains(says), "{bad}: {}", e.message);
    }
    // A sentinel password of the wrong type is not echoed.
    let e = Config::from_options_json(
      r#"{"sentinel":{"masterName":"m","sentinels":["a:1"],"password":4711081512}}"#,
    )
    .unwrap_err();
    assert!(!e.message.contains("4711081512"), "{}", e.message);
  }

  #[test]
  fn sentinel_env() {
    let c = Config::from_env(env(&[
      ("REDIS_SENTINELS", "10.0.0.1:26379, 10.0.0.2:26379,"),
      ("REDIS_SENTINEL_MASTER", "atlas"),
      ("REDIS_SENTINEL_PASSWORD", "spw"),
      ("REDIS_PASSWORD", "dpw"),
    ]))
    .unwrap();
    let s = c.sentinel.as_ref().unwrap();
    assert_eq!(s.master_name, "atlas");
    assert_eq!(s.sentinels.len(), 2);
    assert_eq!(s.password, Some(Secret("spw".into())));
    assert_eq!(c.password_str(), Some("dpw"));
    assert!(Config::from_env(env(&[("REDIS_SENTINELS", "a:1")])).is_err());
    assert!(Config::from_env(env(&[("REDIS_SENTINEL_MASTER", "m")])).is_err());
    assert!(Config::from_env(env(&[
      ("REDIS_SENTINELS", "nope"),
      ("REDIS_SENTINEL_MASTER", "m")
    ]))
    .is_err());
    assert!(Config::from_env(env(&[])).unwrap().sentinel.is_none());
  }

  #[test]
  fn memory_urls() {
    let c = Config::from_url("memory://").unwrap();
    assert_eq!(c.memory.as_deref(), Some(""));
    assert_eq!(c.address(), "memory://");
    let c = Config::from_url("memory://tests-1/3").unwrap();
    assert_eq!((c.memory.as_deref(), c.db), (Some("tests-1"), 3));
    assert!(Config::from_url("memory://x/16").is_err());
    assert!(Config::from_url("memory://u:p@x").is_err());
    let e = Config::from_options_json(r#"{"url":"memory://","tls":true}"#).unwrap_err();
    assert_eq!(e.code.as_str(), "ERR_INVALID_ARGUMENT");
    let c = Config::from_options_json(r#"{"url":"memory://a","keyPrefix":"p:","db":2}"#).unwrap();
    assert_eq!((c.memory.as_deref(), c.db), (Some("a"), 2));
    let c = Config::from_env(env(&[("REDIS_URL", "memory://")])).unwrap();
    assert!(c.memory.is_some());
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

/// Stable-Rust stand-in for `fuzz/fuzz_targets/config_url.rs` and
/// `config_options.rs` (cargo fuzz needs nightly): about 100,000 seeded URLs,
/// option objects and environments through the three parsers, checking that
/// none panics, that an accepted config is usable, and that no error and no
/// `Debug` output carries the password.
#[cfg(test)]
mod fuzz_smoke {
  use super::*;
  use crate::test_rng::Rng;

  /// A password that cannot appear in a message by chance.
  fn secret(rng: &mut Rng) -> String {
    format!(
      "Zq{}",
      rng.text(12, "abcdefghijkLMNOPQRS0123456789!$&*+,;=~-_.@:/?#[]% ")
    )
  }

  const URL_NOISE: &str = "redis:/s@[]:?#=&%25 .-_0123456789abcxyzé\u{0}\n";

  fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
  }

  fn assert_usable(c: &Config, input: &str) {
    assert!(!c.host.is_empty(), "empty host from {input:?}");
    assert!(c.reconnect_min <= c.reconnect_max, "{input:?}");
    assert!(
      c.connect_timeout >= Duration::from_millis(1)
        && c.command_timeout >= Duration::from_millis(1),
      "{input:?}"
    );
    if let Some(cc) = &c.client_cache {
      assert!(!cc.prefixes.is_empty() && cc.max_entries >= 1, "{input:?}");
    }
  }

  fn assert_hidden(secret: &str, text: &str, what: &str) {
    assert!(
      !text.contains(secret),
      "{what} shows the password {secret:?}: {text}"
    );
    let enc = encode(secret);
    assert!(
      !text.contains(&enc),
      "{what} shows the encoded password {enc:?}: {text}"
    );
  }

  /// A URL with a password and parts that are sometimes wrong.
  fn url(rng: &mut Rng, secret: &str) -> String {
    let scheme = rng.pick(&["redis", "rediss", "redis", "http", "REDIS", "unix", ""]);
    let user = rng.pick(&["", "app", "default", "a%20b", "%ff"]);
    let host = rng.pick(&[
      "127.0.0.1",
      "localhost",
      "[::1]",
      "cache.internal",
      "",
      "bad host",
      "[::1",
      "h%00st",
      "xn--nxasmq6b",
    ]);
    let port = rng.pick(&[
      "", ":6379", ":0", ":65535", ":65536", ":99999", ":-1", ":abc", ":",
    ]);
    let path = rng.pick(&["", "/", "/0", "/15", "/4294967296", "/x", "/0/1", "/%30"]);
    let query = rng.pick(&[
      "",
      "?db=2",
      "?db=x",
      "?foo=bar",
      "?db=1&db=2",
      "?",
      "#frag",
      "?password=Zq",
    ]);
    format!(
      "{scheme}://{user}:{}@{host}{port}{path}{query}",
      encode(secret)
    )
  }

  #[test]
  fn urls_never_panic_never_echo_the_password() {
    let mut rng = Rng(0x0c0f_1a20);
    let mut ok = 0;
    for i in 0..40_000 {
      let secret = secret(&mut rng);
      let input = if i % 3 == 0 {
        // noise around a URL shape
        format!(
          "{}{}",
          rng.pick(&["redis://", "rediss://", "", "redis:"]),
          rng.text(30, URL_NOISE)
        )
      } else {
        url(&mut rng, &secret)
      };
      match std::panic::catch_unwind(|| Config::from_url(&input)) {
        Err(_) => panic!("from_url panicked on {input:?}"),
        Ok(Ok(c)) => {
          ok += 1;
          assert_usable(&c, &input);
          assert_hidden(&secret, &format!("{c:?}"), "Debug of a Config");
          if i % 3 != 0 {
            assert_eq!(c.password_str(), Some(secret.as_str()), "{input:?}");
          }
        }
        Ok(Err(e)) => {
          assert_eq!(e.code.as_str(), "ERR_INVALID_ARGUMENT", "{input:?}");
          assert_hidden(&secret, &e.to_string(), &format!("the error for {input:?}"));
        }
      }
    }
    assert!(ok > 1000, "only {ok} URLs parsed: the generator is off");
  }

  /// A random JSON value, sometimes of the right type for `field`.
  fn json_value(rng: &mut Rng, depth: u32) -> serde_json::Value {
    use serde_json::Value as V;
    match rng.below(if depth > 1 { 7 } else { 9 }) {
      0 => V::Null,
      1 => V::Bool(rng.below(2) == 0),
      2 => V::from(
        rng
          .pick(&[
            "0", "1", "6379", "65535", "65536", "-1", "1.5", "1e300", "-0", "86400000", "86400001",
          ])
          .parse::<f64>()
          .unwrap(),
      ),
      3 => V::from((rng.next() as i64) >> rng.below(64)),
      4 => V::from(rng.next() as f64 / 7.0),
      5 | 6 => V::String(rng.text(10, URL_NOISE)),
      7 => V::Array(
        (0..rng.below(3))
          .map(|_| json_value(rng, depth + 1))
          .collect(),
      ),
      _ => V::Object(
        (0..rng.below(3))
          .map(|_| {
            (
              rng
                .pick(&[
                  "ca",
                  "cert",
                  "key",
                  "servername",
                  "rejectUnauthorized",
                  "minDelayMs",
                  "maxDelayMs",
                  "prefixes",
                  "maxEntries",
                  "ttlMs",
                  "masterName",
                  "sentinels",
                  "x",
                ])
                .to_string(),
              json_value(rng, depth + 1),
            )
          })
          .collect(),
      ),
    }
  }

  const FIELDS: &[&str] = &[
    "url",
    "host",
    "port",
    "username",
    "password",
    "db",
    "tls",
    "keyPrefix",
    "connectTimeoutMs",
    "commandTimeoutMs",
    "reconnect",
    "clientCache",
    "sentinel",
    "hots",
  ];

  #[test]
  fn options_never_panic_accepted_ones_are_usable_and_the_password_stays_hidden() {
    let mut rng = Rng(0x0b7e_c7ed);
    let mut ok = 0;
    for i in 0..40_000 {
      let secret = secret(&mut rng);
      let mut obj = serde_json::Map::new();
      for _ in 0..rng.below(5) {
        let f = rng.pick(FIELDS);
        obj.insert(f.to_string(), json_value(&mut rng, 0));
      }
      // the password, as a string: never echoed, whatever else is wrong
      if i % 2 == 0 {
        obj.insert("password".into(), serde_json::Value::String(secret.clone()));
      } else if i % 4 == 1 {
        obj.insert(
          "url".into(),
          serde_json::Value::String(url(&mut rng, &secret)),
        );
      }
      let json = if i % 50 == 0 {
        // broken JSON too
        let mut s = serde_json::to_string(&obj).unwrap();
        let mut cut = rng.below(s.len() as u64) as usize;
        while !s.is_char_boundary(cut) {
          cut -= 1;
        }
        s.truncate(cut);
        s
      } else {
        serde_json::to_string(&obj).unwrap()
      };
      match std::panic::catch_unwind(|| Config::from_options_json(&json)) {
        Err(_) => panic!("from_options_json panicked on {json}"),
        Ok(Ok(c)) => {
          ok += 1;
          assert_usable(&c, &json); // (port 0 through a URL: see a_url_cannot_configure_port_zero)
          assert_hidden(&secret, &format!("{c:?}"), "Debug of a Config");
        }
        Ok(Err(e)) => {
          assert_eq!(e.code.as_str(), "ERR_INVALID_ARGUMENT", "{json}");
          if i % 4 != 3 {
            assert_hidden(&secret, &e.to_string(), &format!("the error for {json}"));
          }
        }
      }
    }
    assert!(
      ok > 1000,
      "only {ok} option objects parsed: the generator is off"
    );
  }

  #[test]
  fn environments_never_panic_never_echo_the_password() {
    let mut rng = Rng(0x00e1_7e17);
    for _ in 0..20_000 {
      let secret = secret(&mut rng);
      let mut vars: Vec<(&str, String)> = Vec::new();
      for name in [
        "REDIS_URL",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_USERNAME",
        "REDIS_DB",
        "REDIS_TLS",
        "REDIS_KEY_PREFIX",
      ] {
        if rng.below(3) == 0 {
          let v = if name == "REDIS_URL" {
            url(&mut rng, &secret)
          } else {
            rng.text(8, URL_NOISE)
          };
          vars.push((name, v));
        }
      }
      vars.push(("REDIS_PASSWORD", secret.clone()));
      let get = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
      match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Config::from_env(get))) {
        Err(_) => panic!("from_env panicked on {vars:?}"),
        Ok(Ok(c)) => assert_hidden(&secret, &format!("{c:?}"), "Debug of a Config"),
        Ok(Err(e)) => assert_hidden(&secret, &e.to_string(), &format!("the error for {vars:?}")),
      }
    }
  }

  /// Options (port 0 refused) and the environment (REDIS_PORT=0 refused) agree;
  /// a URL should not be the one way to configure port 0.
  #[test]
  fn a_url_cannot_configure_port_zero() {
    for u in ["redis://127.0.0.1:0", "redis://:pw@localhost:0/1"] {
      let r = Config::from_url(u);
      assert!(
        r.is_err(),
        "{u} was accepted with port {:?}",
        r.map(|c| c.port)
      );
    }
  }

  /// A URL with one slash too few (`redis:/user:pw@host`) or none is read as a
  /// path; the "not a number" error must not quote the credentials in it.
  #[test]
  fn a_mistyped_url_does_not_echo_its_password() {
    for u in [
      "redis:/app:Zq-secret-3@cache:6379",
      "redis:app:Zq-secret-3@cache:6379/0",
      "rediss:redis://app:Zq-secret-3@cache",
    ] {
      match Config::from_url(u) {
        Ok(c) => assert!(!format!("{c:?}").contains("Zq-secret-3"), "{u}"),
        Err(e) => assert!(!e.message.contains("Zq-secret-3"), "{u}: {}", e.message),
      }
    }
  }

  /// A password of the wrong type (a config loader that made `password: 12345678`
  /// a number) is refused; the refusal must not quote it either.
  #[test]
  fn a_password_of_the_wrong_type_is_not_echoed() {
    for (json, secret) in [
      (r#"{"password":4711081512}"#, "4711081512"),
      (r#"{"password":-98765432.5}"#, "98765432.5"),
      (r#"{"password":["Zq-secret-1"]}"#, "Zq-secret-1"),
      (r#"{"password":{"value":"Zq-secret-2"}}"#, "Zq-secret-2"),
      (r#"{"tls":{"key":31415926535}}"#, "31415926535"),
    ] {
      let e = Config::from_options_json(json).unwrap_err();
      assert_eq!(e.code.as_str(), "ERR_INVALID_ARGUMENT");
      assert!(!e.message.contains(secret), "{json}: {}", e.message);
    }
  }
}
