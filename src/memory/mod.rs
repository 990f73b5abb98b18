//! `memory://`: an embedded, in-process Redis for tests and demos.
//!
//! A client connected to `memory://name` talks RESP to a server task on the
//! I/O runtime through an in-memory pipe (`tokio::io::duplex`), so everything
//! above the socket (batching, reply parsing, timeouts, client-side caching)
//! runs exactly as it does against a real server. Every client of one name in
//! one process shares one [`store::Store`]; `memory://` is the store named "".
//!
//! - [`store`]: the keyspace (16 databases), expiry, client tracking
//! - [`commands`]: the commands, with Redis 7's replies and error texts
//! - [`lua`]: `EVAL`/`EVALSHA` in Lua 5.1 with Redis' conversion rules
//! - [`lua_struct`], [`lua_cjson`], [`lua_cmsgpack`], [`lua_bit`]: the libraries Redis bundles
//! - [`sandbox`]: the globals scripts get (Redis 7's, read-only) and SCRIPT KILL's hook
//! - [`script_run`]: the running script as other connections see it (BUSY, SCRIPT KILL)
//! - [`script_thread`]: the thread a store's scripts run on
//! - [`server`]: one connection: RESP in, RESP2/RESP3 out, invalidation pushes
//! - [`fmt`]: number formatting as Redis does it (`%.17g`)

pub mod commands;
pub mod fmt;
pub mod lua;
pub mod lua_bit;
pub mod lua_cjson;
pub mod lua_cmsgpack;
pub mod lua_struct;
/// The RESP side of the in-process server (it reads commands, writes replies).
pub mod resp;
pub mod sandbox;
pub mod script_run;
pub mod script_thread;
pub mod server;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

pub use store::Shared;

/// Bytes the pipe between a client and its server task buffers each way.
const PIPE_BYTES: usize = 1 << 20;

/// The store of `memory://name`, created on first use; it lives as long as the
/// process (like a server that keeps running when its clients disconnect).
pub fn store(name: &str) -> Arc<Shared> {
  static STORES: OnceLock<Mutex<HashMap<String, Arc<Shared>>>> = OnceLock::new();
  let mut all = STORES.get_or_init(Default::default).lock();
  all
    .entry(name.to_string())
    .or_insert_with(|| {
      let s = Arc::new(Shared::new());
      store::start_sweeper(&s);
      s
    })
    .clone()
}

/// Opens a connection to the store `name`: the client's end of a pipe whose
/// other end a new server task serves. Must be called on the I/O runtime.
pub fn connect(name: &str) -> tokio::io::DuplexStream {
  let (client, server_end) = tokio::io::duplex(PIPE_BYTES);
  tokio::spawn(server::serve(store(name), server_end));
  client
}
