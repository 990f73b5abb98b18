//! The script a `memory://` store is running, as the other connections see it.
//!
//! A script runs with the store locked. A script that has always run briefly
//! runs on the I/O thread, as every other command does; any other runs on the
//! store's script thread, and the connections keep being served on the I/O
//! thread. Like Redis, they wait while the script is young, and once it has
//! run longer than `busy-reply-threshold` (alias `lua-time-limit`, 5000 ms by
//! default) they get `BUSY` — except `SCRIPT KILL`, which stops it unless it
//! already wrote (`UNKILLABLE`), and `SHUTDOWN NOSAVE`, which stops it in any
//! case. Everything here is read and written without the store's lock.
//!
//! A script on the I/O thread that has not written yet is moved to the script
//! thread (stopped, and run again there from the start: nothing it did is
//! seen) when it runs past [`INLINE_BUDGET`] or, unless it is known to be
//! brief, when it is about to write. One that wrote there and then runs past
//! the threshold is stopped ([`TOO_LONG_TEXT`]): on the I/O thread it would
//! hold up every client of the process.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
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
/// It must stop to run again on the script thread (it has not written).
const MOVING: u8 = 4;
/// It wrote on the I/O thread, then ran past the threshold.
const TOO_LONG: u8 = 5;

/// How long a script may run on the I/O thread before it moves (if it can).
pub const INLINE_BUDGET: Duration = Duration::from_millis(1);

pub const BUSY: &str =
  "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
/// The error a stopped script raises (its caller gets it as `ERR …`).
pub const KILLED_TEXT: &str = "Script killed by user with SCRIPT KILL...";
/// The error that stops a script to move it (nobody gets it).
const MOVING_TEXT: &str = "memory:// moves this script to its script thread";
pub const TOO_LONG_TEXT: &str = "Script killed by memory://: it wrote, then ran past lua-time-limit on the I/O thread (where it ran because it had always been brief), which would hold up every client of the process";

/// Nanoseconds since the first call (a monotonic clock the hook reads cheaply).
fn now_ns() -> u64 {
  static EPOCH: OnceLock<Instant> = OnceLock::new();
  EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// How a run ended, for [`super::lua::Engine`].
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
  /// Finished (or failed) where it ran.
  Done,
  /// Stopped on the I/O thread to run again on the script thread.
  Moved,
}

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
  /// [`now_ns`] when the running script started.
  started_ns: AtomicU64,
  /// On the I/O thread: [`now_ns`] past which it moves; 0 on the script thread.
  inline_until: AtomicU64,
  /// On the I/O thread: whether it may write there (it always ran briefly).
  inline_writes: AtomicBool,
  /// Signalled when the script thread lets go of the store.
  pub released: Notify,
}

impl Default for ScriptRun {
  fn default() -> Self {
    ScriptRun {
      started: Mutex::new(None),
      state: AtomicU8::new(CLEAN),
      busy_ms: AtomicU64::new(DEFAULT_BUSY_MS),
      started_ns: AtomicU64::new(0),
      inline_until: AtomicU64::new(0),
      inline_writes: AtomicBool::new(false),
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

  /// A script starts (called with the store locked); `inline`: on the I/O
  /// thread, and whether it may write there.
  pub fn begin(&self, inline: Option<bool>) {
    self.state.store(CLEAN, Ordering::SeqCst);
    let now = now_ns();
    self.started_ns.store(now, Ordering::Relaxed);
    let until = inline.map_or(0, |_| now + INLINE_BUDGET.as_nanos() as u64);
    self.inline_until.store(until, Ordering::Relaxed);
    self
      .inline_writes
      .store(inline == Some(true), Ordering::Relaxed);
    if inline.is_none() {
      // only a script off the I/O thread can be seen running
      *self.started.lock() = Some(Instant::now());
    }
  }

  /// The script ended.
  pub fn end(&self) -> Ended {
    *self.started.lock() = None;
    self.inline_until.store(0, Ordering::Relaxed);
    match self.state.swap(CLEAN, Ordering::SeqCst) {
      MOVING => Ended::Moved,
      _ => Ended::Done,
    }
  }

  /// How long the running script has run.
  pub fn elapsed(&self) -> Duration {
    Duration::from_nanos(now_ns().saturating_sub(self.started_ns.load(Ordering::Relaxed)))
  }

  /// Read by the Lua hook: the error to stop the script with, if it must stop.
  pub fn interrupt(&self) -> Option<&'static str> {
    let state = self.state.load(Ordering::Relaxed);
    if state >= KILLED {
      return Some(text(state));
    }
    let until = self.inline_until.load(Ordering::Relaxed);
    if until == 0 {
      return None;
    }
    let now = now_ns();
    if now < until {
      return None;
    }
    if state == CLEAN {
      return self
        .state
        .compare_exchange(CLEAN, MOVING, Ordering::SeqCst, Ordering::SeqCst)
        .ok()
        .map(|_| MOVING_TEXT);
    }
    let limit = self.busy_ms() * 1_000_000;
    let started = self.started_ns.load(Ordering::Relaxed);
    if limit > 0 && now - started >= limit {
      self.state.store(TOO_LONG, Ordering::SeqCst);
      return Some(TOO_LONG_TEXT);
    }
    None
  }

  /// The error of a script that must stop (see [`Self::stopping`]).
  pub fn stop_text(&self) -> &'static str {
    text(self.state.load(Ordering::Relaxed))
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

  /// The script is about to run a write command: false if it must stop
  /// first (killed, or moving to the script thread: then it must not write).
  /// After this SCRIPT KILL answers UNKILLABLE.
  pub fn may_write(&self) -> bool {
    let inline_only_reads =
      self.inline_until.load(Ordering::Relaxed) != 0 && !self.inline_writes.load(Ordering::Relaxed);
    let next = if inline_only_reads { MOVING } else { WROTE };
    match self
      .state
      .compare_exchange(CLEAN, next, Ordering::SeqCst, Ordering::SeqCst)
    {
      Ok(_) => next == WROTE,
      Err(WROTE) => true,
      Err(_) => false,
    }
  }
}

fn text(state: u8) -> &'static str {
  match state {
    MOVING => MOVING_TEXT,
    TOO_LONG => TOO_LONG_TEXT,
    _ => KILLED_TEXT,
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
    r.begin(None);
    std::thread::sleep(Duration::from_millis(5));
    assert!(matches!(r.status(), Status::Busy));
    assert!(r.may_write());
    assert_eq!(r.kill(), KillReply::Unkillable);
    assert!(!r.stopping());
    r.abort();
    assert!(r.stopping());
    assert!(!r.may_write());
    assert_eq!(r.end(), Ended::Done);
    assert!(matches!(r.status(), Status::Idle));
    r.begin(None);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(r.kill(), KillReply::Killed);
    assert!(r.stopping());
    assert!(!r.may_write(), "a killed script writes nothing more");
    assert_eq!(r.end(), Ended::Done);
    r.set_busy_ms(0);
    r.begin(None);
    assert!(matches!(r.status(), Status::Young(_)));
    assert_eq!(r.kill(), KillReply::NotBusy);
    r.end();
  }

  #[test]
  fn a_script_on_the_io_thread_moves_unless_it_wrote() {
    let r = ScriptRun::default();
    // not known to be brief: its first write moves it
    r.begin(Some(false));
    assert_eq!(r.interrupt(), None);
    assert!(!r.may_write());
    assert_eq!(r.interrupt(), Some(MOVING_TEXT));
    assert_eq!(r.end(), Ended::Moved);
    // past the budget without writing: moves
    r.begin(Some(true));
    std::thread::sleep(INLINE_BUDGET * 2);
    assert_eq!(r.interrupt(), Some(MOVING_TEXT));
    assert_eq!(r.end(), Ended::Moved);
    // known brief: writes where it is; past the threshold after that, stopped
    r.set_busy_ms(300);
    r.begin(Some(true));
    assert!(r.may_write());
    std::thread::sleep(INLINE_BUDGET * 2);
    assert_eq!(r.interrupt(), None);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(r.interrupt(), Some(TOO_LONG_TEXT));
    assert_eq!(r.end(), Ended::Done);
    // seen from other connections, a script on the I/O thread never runs
    r.begin(Some(true));
    assert!(matches!(r.status(), Status::Idle));
    r.end();
  }
}
