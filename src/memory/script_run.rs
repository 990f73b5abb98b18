//! The script a `memory://` store is running, as the other connections see it.
//!
//! A script runs on the store's script thread with the store locked; the connections
//! keep being served on the I/O thread. Like Redis, they wait while the script
//! is young, and once it has run longer than `busy-reply-threshold` (alias
//! `lua-time-limit`, 5000 ms by default) they get `BUSY` — except `SCRIPT
//! KILL`, which stops it unless it already wrote (`UNKILLABLE`), and `SHUTDOWN
//! NOSAVE`, which stops it in any case. Everything here is read and written
//! without the store's lock.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Redis' default `busy-reply-threshold`.
pub const DEFAULT_BUSY_MS: u64 = 5000;

/// The running script has not written (yet): SCRIPT KILL may stop it.
const CLEAN: u8 = 0;
/// It ran a write command: only SHUTDOWN NOSAVE stops it.
const WROTE: u8 = 1;
/// SCRIPT KILL asked it to stop.
const KILLED: u8 = 2;
/// SHUTDOWN NOSAVE asked it to stop, writes or not.
const ABORTED: u8 = 3;

pub const BUSY: &str =
  "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
/// The error a stopped script raises (its caller gets it as `ERR …`).
pub const KILLED_TEXT: &str = "Script killed by user with SCRIPT KILL...";

/// Where the store's script is, for connections that find the store locked.
pub enum Status {
  /// No script is running (the lock is held by something short).
  Idle,
  /// A script is running and becomes busy after this long.
  Young(Duration),
  /// A script has run past the threshold: answer BUSY.
  Busy,
}

/// What SCRIPT KILL answers.
#[derive(Debug, PartialEq, Eq)]
pub enum KillReply {
  Killed,
  NotBusy,
  Unkillable,
}

pub struct ScriptRun {
  /// When the running script started; None between scripts.
  started: Mutex<Option<Instant>>,
  /// CLEAN, WROTE, KILLED or ABORTED, for the running script.
  state: AtomicU8,
  /// `busy-reply-threshold` in ms; 0: never busy (and never killable), as on Redis.
  busy_ms: AtomicU64,
  /// Signalled when the script thread lets go of the store.
  pub released: Notify,
}

impl Default for ScriptRun {
  fn default() -> Self {
    ScriptRun {
      started: Mutex::new(None),
      state: AtomicU8::new(CLEAN),
      busy_ms: AtomicU64::new(DEFAULT_BUSY_MS),
      released: Notify::new(),
    }
  }
}

impl ScriptRun {
  pub fn busy_ms(&self) -> u64 {
    self.busy_ms.load(Ordering::Relaxed)
  }

  pub fn set_busy_ms(&self, ms: u64) {
    self.busy_ms.store(ms, Ordering::Relaxed)
  }

  /// A script starts (called with the store locked).
  pub fn begin(&self) {
    self.state.store(CLEAN, Ordering::SeqCst);
    *self.started.lock() = Some(Instant::now());
  }

  /// The script ended; true if SHUTDOWN NOSAVE stopped it.
  pub fn end(&self) -> bool {
    *self.started.lock() = None;
    self.state.swap(CLEAN, Ordering::SeqCst) == ABORTED
  }

  pub fn status(&self) -> Status {
    let Some(started) = *self.started.lock() else {
      return Status::Idle;
    };
    let limit = self.busy_ms();
    if limit == 0 {
      // never busy: wait as long as it runs (re-checked now and then)
      return Status::Young(Duration::from_millis(100));
    }
    match Duration::from_millis(limit).checked_sub(started.elapsed()) {
      Some(left) if !left.is_zero() => Status::Young(left),
      _ => Status::Busy,
    }
  }

  /// SCRIPT KILL, from another connection.
  pub fn kill(&self) -> KillReply {
    if !matches!(self.status(), Status::Busy) {
      return KillReply::NotBusy;
    }
    match self
      .state
      .compare_exchange(CLEAN, KILLED, Ordering::SeqCst, Ordering::SeqCst)
    {
      Ok(_) | Err(KILLED) | Err(ABORTED) => KillReply::Killed,
      Err(_) => KillReply::Unkillable,
    }
  }

  /// SHUTDOWN NOSAVE while the script is busy: it stops even after writes.
  pub fn abort(&self) {
    self.state.store(ABORTED, Ordering::SeqCst);
  }

  /// Whether the script must stop now (read by the Lua hook).
  pub fn stopping(&self) -> bool {
    self.state.load(Ordering::Relaxed) >= KILLED
  }

  /// The script is about to run a write command: false if it was stopped
  /// first (then it must not write). After this SCRIPT KILL answers UNKILLABLE.
  pub fn may_write(&self) -> bool {
    match self
      .state
      .compare_exchange(CLEAN, WROTE, Ordering::SeqCst, Ordering::SeqCst)
    {
      Ok(_) | Err(WROTE) => true,
      Err(_) => false,
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn kill_follows_redis_rules() {
    let r = ScriptRun::default();
    assert_eq!(r.kill(), KillReply::NotBusy);
    r.set_busy_ms(1);
    r.begin();
    std::thread::sleep(Duration::from_millis(5));
    assert!(matches!(r.status(), Status::Busy));
    assert!(r.may_write());
    assert_eq!(r.kill(), KillReply::Unkillable);
    assert!(!r.stopping());
    r.abort();
    assert!(r.stopping());
    assert!(!r.may_write());
    assert!(r.end());
    assert!(matches!(r.status(), Status::Idle));
    r.begin();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(r.kill(), KillReply::Killed);
    assert!(r.stopping());
    assert!(!r.may_write(), "a killed script writes nothing more");
    assert!(!r.end());
    r.set_busy_ms(0);
    r.begin();
    assert!(matches!(r.status(), Status::Young(_)));
    assert_eq!(r.kill(), KillReply::NotBusy);
  }
}
