//! `@atlas-erp/redis`: the native layer. This file holds only the `#[napi]`
//! surface; each capability lives in its own module, usable from `cargo test`.

#![deny(clippy::all)]

pub mod commands;
pub mod engine;
pub mod error;
pub mod memory;
// `napi` is also the crate this file's macros expand to: the module takes
// another name here.
#[path = "napi/mod.rs"]
pub mod bridge;
pub mod scripts;
pub mod stats;
#[cfg(test)]
mod test_rng;

use napi::bindgen_prelude::*;
use napi::JsValue;
use napi_derive::napi;

use crate::engine::config::Config;

/// Runs `f`, turning a panic into a JS exception: a bug in this package must
/// never unwind into Node (which would abort the process).
fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
  std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
    Err(napi::Error::from_reason(format!(
      "a bug in @atlas-erp/redis: {}",
      bridge::panic_message(&p)
    )))
  })
}

/// Runs a native constructor under `guard`; a failure is `ERR_INTERNAL`.
fn construct<T>(f: impl FnOnce() -> Result<T>) -> Result<T, String> {
  guard(f).map_err(|e| napi::Error::new("ERR_INTERNAL".to_string(), e.reason))
}

/// A thrown error that carries its `code` as a property (napi-rs sets `code`
/// from the status), so the TypeScript side reads it without parsing text.
fn to_napi(e: error::Error) -> napi::Error<String> {
  napi::Error::new(e.code.as_str().to_string(), e.message)
}

/// A client's settings: `source` is `"options"` (payload: ConnectOptions as
/// JSON), `"url"` or `"env"` (payload: the REDIS_* variables as a JSON object).
fn read_config(source: &str, payload: &str) -> Result<Config, String> {
  match source {
    "url" => Config::from_url(payload),
    "options" => Config::from_options_json(payload),
    "env" => serde_json::from_str::<std::collections::HashMap<String, String>>(payload)
      .map_err(|e| error::Error::invalid(e.to_string()))
      .and_then(|vars| Config::from_env(|k| vars.get(k).cloned())),
    _ => Err(error::Error::invalid("unknown config source")),
  }
  .map_err(to_napi)
}

/// Counters of one client (see `ClientStats` in the TypeScript API).
#[napi(object)]
pub struct NativeStats {
  pub commands: f64,
  pub batches: f64,
  pub replies: f64,
  pub errors: f64,
  pub timeouts: f64,
  pub reconnects: f64,
  pub latency_p50_us: f64,
  pub latency_p99_us: f64,
  pub latency_max_us: f64,
  /// On a cluster: `[masters, moved, ask, retries, refreshes]`.
  pub cluster: Option<Vec<f64>>,
}

/// The native half of `RedisClient`.
#[napi]
pub struct NativeClient {
  inner: bridge::Client,
}

#[napi]
impl NativeClient {
  /// `source` is `"options"` (payload: ConnectOptions as JSON), `"url"` or
  /// `"env"` (payload: the REDIS_* variables as a JSON object).
  #[napi(constructor)]
  pub fn new(
    env: Env,
    source: String,
    payload: String,
    on_events: Unknown<'_>,
  ) -> Result<Self, String> {
    let config = read_config(&source, &payload)?;
    let inner = construct(|| unsafe { bridge::Client::open(env.raw(), config, on_events.raw()) })?;
    Ok(NativeClient { inner })
  }

  /// Sends one batch; see `bridge::Client::submit`.
  #[napi(ts_return_type = "Array<number | string> | undefined")]
  pub fn submit(&self, env: Env, queue: Unknown<'_>, first_id: u32) -> Result<Unknown<'_>> {
    let v = guard(|| unsafe { self.inner.submit(env.raw(), queue.raw(), first_id) })?;
    unsafe { Unknown::from_napi_value(env.raw(), v) }
  }

  #[napi]
  pub fn close(&self, env: Env) {
    let _ = guard(|| {
      self.inner.close(env.raw());
      Ok(())
    });
  }

  /// Delivers queued replies and cache events now (see `cacheEpoch`).
  #[napi]
  pub fn drain(&self, env: Env) -> Result<()> {
    guard(|| unsafe { self.inner.drain_now(env.raw()) })
  }

  /// An ArrayBuffer over a counter that moves whenever cache events are queued.
  #[napi(ts_return_type = "ArrayBuffer")]
  pub fn cache_epoch(&self, env: Env) -> Result<Unknown<'_>> {
    let v = guard(|| unsafe { self.inner.cache_epoch_buffer(env.raw()) })?;
    unsafe { Unknown::from_napi_value(env.raw(), v) }
  }

  #[napi]
  pub fn stats(&self) -> NativeStats {
    let s = self.inner.stats();
    NativeStats {
      commands: s.commands as f64,
      batches: s.batches as f64,
      replies: s.replies as f64,
      errors: s.errors as f64,
      timeouts: s.timeouts as f64,
      reconnects: s.reconnects as f64,
      latency_p50_us: s.p50_us as f64,
      latency_p99_us: s.p99_us as f64,
      latency_max_us: s.max_us as f64,
      cluster: self
        .inner
        .cluster_counters()
        .map(|c| c.iter().map(|n| *n as f64).collect()),
    }
  }
}

/// The native half of a client's pub/sub (lib/core/pubsub.ts): a subscriber
/// connection of its own, made with the client's settings.
#[napi]
pub struct NativeSubscriber {
  inner: bridge::pubsub::Subscriber,
}

#[napi]
impl NativeSubscriber {
  /// `source` and `payload` as for `NativeClient`; `on_events(messages, events)`
  /// receives what arrives (see `bridge::pubsub`).
  #[napi(constructor)]
  pub fn new(
    env: Env,
    source: String,
    payload: String,
    on_events: Unknown<'_>,
  ) -> Result<Self, String> {
    let config = read_config(&source, &payload)?;
    let inner = construct(|| unsafe {
      bridge::pubsub::Subscriber::open(env.raw(), config, on_events.raw())
    })?;
    Ok(NativeSubscriber { inner })
  }

  /// Request `op`: subscribe (kind 0 channels, 1 patterns, 2 shard channels)
  /// to `names` (strings and Buffers), whose ids are `ids`.
  #[napi]
  pub fn subscribe(
    &self,
    env: Env,
    op: u32,
    kind: u32,
    #[napi(ts_arg_type = "Array<string | Buffer>")] names: Unknown<'_>,
    ids: Vec<u32>,
    buffers: bool,
  ) -> Result<()> {
    guard(|| unsafe {
      self
        .inner
        .subscribe(env.raw(), op, kind, names.raw(), ids, buffers)
    })
  }

  /// Request `op`: unsubscribe from `names` (strings and Buffers).
  #[napi]
  pub fn unsubscribe(
    &self,
    env: Env,
    op: u32,
    kind: u32,
    #[napi(ts_arg_type = "Array<string | Buffer>")] names: Unknown<'_>,
  ) -> Result<()> {
    guard(|| unsafe { self.inner.unsubscribe(env.raw(), op, kind, names.raw()) })
  }

  /// Whether the client holds subscriptions (they keep the process running).
  #[napi]
  pub fn keep_alive(&self, env: Env, on: bool) {
    let _ = guard(|| {
      self.inner.keep_alive(env.raw(), on);
      Ok(())
    });
  }

  #[napi]
  pub fn close(&self, env: Env) {
    let _ = guard(|| {
      self.inner.close(env.raw());
      Ok(())
    });
  }
}

/// Op names in code order: TypeScript builds its op table from this.
#[napi]
pub fn op_names() -> Vec<String> {
  commands::Op::ALL
    .iter()
    .map(|op| format!("{op:?}"))
    .collect()
}

/// Number of arguments each op takes, in code order.
#[napi]
pub fn op_arities() -> Vec<u32> {
  commands::Op::ALL
    .iter()
    .map(|op| commands::arity(*op) as u32)
    .collect()
}

/// The arguments (indices into `args`, which follow the name) a cluster routes
/// command `name` by: its keys, or the shard channel of SPUBLISH/SSUBSCRIBE;
/// `null` when the command table does not know the command.
#[napi]
pub fn routing_keys(name: String, args: Vec<String>) -> Option<Vec<u32>> {
  let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
  let cmd = commands::table::lookup(name.as_bytes(), &refs)?;
  Some(
    commands::table::routing_positions(cmd, &refs)
      .into_iter()
      .map(|i| i as u32)
      .collect(),
  )
}

/// One entry of the command table, as `commandTable()` lists it.
#[napi(object)]
pub struct CommandEntry {
  /// Lower case; a subcommand is `"container|sub"` (`"xgroup|create"`).
  pub name: String,
  /// Redis' arity, counting the name (and subcommand): `-n` means at least `n`.
  pub arity: i32,
  /// Key specs: more than 0 when the command takes keys (or, for SPUBLISH and
  /// friends, a shard channel that routes like one).
  pub key_specs: u32,
  /// Flagged BLOCKING by the server.
  pub blocking: bool,
}

/// Every command and subcommand of the command table, sorted by name: lets a
/// test go over the whole table, so a new entry is not silently left out.
#[napi]
pub fn command_table() -> Vec<CommandEntry> {
  commands::table::commands()
    .iter()
    .map(|c| CommandEntry {
      name: c.name.to_string(),
      arity: c.arity,
      key_specs: c.key_specs.len() as u32,
      blocking: c.has(commands::table::flags::BLOCKING),
    })
    .collect()
}

/// The cluster hash slot of `key`.
#[napi]
pub fn key_slot(key: Buffer) -> u32 {
  engine::cluster::slot(&key) as u32
}

/// A hash tag that puts a key in the same cluster slot as `key`.
#[napi]
pub fn slot_tag(key: String) -> String {
  engine::cluster::tag_for_slot(engine::cluster::slot(key.as_bytes())).to_string()
}

/// Names of the package's Lua scripts, in id order.
#[napi]
pub fn script_names() -> Vec<String> {
  scripts::SCRIPTS
    .iter()
    .map(|(n, _)| n.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_panic_becomes_an_error() {
    let r: Result<()> = guard(|| panic!("boom"));
    let msg = r.unwrap_err().reason;
    assert!(
      msg.starts_with("a bug in @atlas-erp/redis") && msg.contains("boom"),
      "{msg}"
    );
    assert_eq!(guard(|| Ok(7)).unwrap(), 7);
  }
}
