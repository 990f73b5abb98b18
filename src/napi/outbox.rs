//! The hand-off from the I/O thread to the JavaScript thread: completions are
//! queued here and the JS thread is woken once per burst, not once per reply.
//!
//! ```
//! use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
//! use atlas_redis::bridge::outbox::{Completion, Outbox};
//! let rings = Arc::new(AtomicUsize::new(0));
//! let r = rings.clone();
//! let outbox = Outbox::new(Box::new(move || { r.fetch_add(1, Ordering::SeqCst); }));
//! outbox.push(Completion::Error { id: 1, error: atlas_redis::error::Error::closed() });
//! outbox.push(Completion::Error { id: 2, error: atlas_redis::error::Error::closed() });
//! assert_eq!(rings.load(Ordering::SeqCst), 1); // one wake for both
//! assert_eq!(outbox.take().len(), 2);
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::commands::Shape;
use crate::error::Error;

/// Something the JS thread must act on.
#[derive(Debug)]
pub enum Completion {
  /// The reply to command `id` (possibly an error reply from the server).
  Reply {
    id: u32,
    shape: Shape,
    reply: redis::Value,
  },
  /// Command `id` failed without a reply (timeout, connection lost, …).
  Error { id: u32, error: Error },
  /// A connection-level event.
  Event(Event),
}

#[derive(Debug)]
pub enum Event {
  /// The first connection is up: `RedisClient.connect()` resolves.
  Ready,
  /// The first connection failed: `connect()` rejects with this.
  ConnectFailed(Error),
  /// `close()` finished: everything in flight was answered.
  Closed,
  /// Client-side caching: these keys (all keys when `None`) changed on the server.
  Invalidate(Option<Vec<Vec<u8>>>),
  /// Client-side caching: the connection was lost, drop every cached entry.
  CacheReset,
  /// The connection was lost (why: the error); reconnecting. Unasked, like
  /// the cache events: nothing was owed for it.
  Reconnecting(Error),
  /// A connection is up again after `Reconnecting`.
  Reconnected,
}

impl Event {
  /// Whether JS was owed this event (the connect's outcome, the close's end);
  /// the others come unasked and do not keep the process alive.
  pub fn owed(&self) -> bool {
    matches!(self, Event::Ready | Event::ConnectFailed(_) | Event::Closed)
  }
}

/// A queue with a doorbell: `ring` runs only when the queue goes from
/// "drained" to "has work", so a burst of replies costs one wake of Node.
/// Items are a client's completions, or a subscriber's deliveries (pub/sub).
pub struct Outbox<T = Completion> {
  queue: Mutex<Vec<T>>,
  rung: AtomicBool,
  ring: Box<dyn Fn() + Send + Sync>,
}

impl<T> Outbox<T> {
  pub fn new(ring: Box<dyn Fn() + Send + Sync>) -> Self {
    Outbox {
      queue: Mutex::new(Vec::new()),
      rung: AtomicBool::new(false),
      ring,
    }
  }

  pub fn push(&self, c: T) {
    self.queue.lock().push(c);
    self.notify();
  }

  pub fn push_all(&self, items: &mut Vec<T>) {
    if items.is_empty() {
      return;
    }
    self.queue.lock().append(items);
    self.notify();
  }

  fn notify(&self) {
    if !self.rung.swap(true, Ordering::AcqRel) {
      (self.ring)();
    }
  }

  /// Called on the JS thread when woken: everything queued so far.
  pub fn take(&self) -> Vec<T> {
    // Re-arm before draining, so a push racing with us rings again.
    self.rung.store(false, Ordering::Release);
    std::mem::take(&mut *self.queue.lock())
  }
}
