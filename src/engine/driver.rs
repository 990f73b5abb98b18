//! Where a standalone connection's redis-rs driver is polled: on the I/O
//! thread when its socket is ready, and on the JS thread right after a batch
//! is queued.
//!
//! redis-rs hands back the driver of a `MultiplexedConnection` as a future
//! (DESIGN.md, "Anchors"): whoever polls it moves bytes between the
//! connection's queue and the socket. Spawned on the I/O thread alone, every
//! batch costs a wake of that thread before it is written. Polled by the JS
//! thread that queued the batch, the batch is written at once, and the I/O
//! thread wakes only when replies arrive (ADR 0001 has the numbers). A lock
//! keeps the two threads from polling at once; a poll that finds the driver
//! locked makes sure the holder's side polls again.
//!
//! A batch's own future ([`Task`]) is polled first on the JS thread (that
//! queues its commands) and then wherever its reply wakes it.
//!
//! ```
//! use std::sync::Arc;
//! use atlas_redis::engine::driver::{SharedDriver, Task};
//! let (tx, rx) = tokio::sync::oneshot::channel::<()>();
//! let driver = SharedDriver::new(Box::pin(async move { rx.await.ok(); }));
//! driver.submit(Task::new(async move { tx.send(()).ok(); })); // runs both, here
//! assert!(driver.is_finished());
//! ```

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{fence, AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

use crate::engine::connect::Driver;
use crate::engine::runtime;

thread_local! {
  /// The driver the JS thread is submitting to (its address), while it does.
  static SUBMITTING: Cell<usize> = const { Cell::new(0) };
  /// Tasks woken on this thread while it submits: polled before `submit` returns.
  static WOKEN_HERE: RefCell<Vec<Arc<Task>>> = const { RefCell::new(Vec::new()) };
}

/// A connection's driver, polled by whichever thread needs it to move.
pub struct SharedDriver {
  future: Mutex<Option<Driver>>,
  /// Handed to the driver whoever polls it, so its wakes come here.
  waker: Waker,
  /// The I/O thread's task that polls the driver.
  io: AtomicWaker,
  /// The I/O task found the driver locked: the holder must wake it after.
  io_missed: AtomicBool,
  /// The driver was woken while the JS thread polled it.
  woken_in_js: AtomicBool,
  finished: AtomicBool,
}

/// The driver's waker; weak, because the driver (inside `SharedDriver`) keeps it.
struct DriverWake(Weak<SharedDriver>);

impl Wake for DriverWake {
  fn wake(self: Arc<Self>) {
    self.wake_by_ref()
  }

  fn wake_by_ref(self: &Arc<Self>) {
    if let Some(d) = self.0.upgrade() {
      if SUBMITTING.get() == Arc::as_ptr(&d) as usize {
        d.woken_in_js.store(true, SeqCst);
      } else {
        d.io.wake();
      }
    }
  }
}

impl SharedDriver {
  pub fn new(driver: Driver) -> Arc<SharedDriver> {
    Arc::new_cyclic(|me| SharedDriver {
      future: Mutex::new(Some(driver)),
      waker: Waker::from(Arc::new(DriverWake(me.clone()))),
      io: AtomicWaker::new(),
      io_missed: AtomicBool::new(false),
      woken_in_js: AtomicBool::new(false),
      finished: AtomicBool::new(false),
    })
  }

  /// Whether the driver has ended (the connection is closed).
  pub fn is_finished(&self) -> bool {
    self.finished.load(SeqCst)
  }

  /// The I/O thread's side: polls the driver whenever it is woken; ends
  /// when the driver does.
  pub async fn run(self: Arc<Self>) {
    std::future::poll_fn(|cx| {
      self.io.register(cx.waker());
      if self.is_finished() {
        return Poll::Ready(());
      }
      // Set before trying the lock, so a holder that releases it sees it.
      self.io_missed.store(true, SeqCst);
      fence(SeqCst);
      let Some(mut future) = self.future.try_lock() else {
        return Poll::Pending;
      };
      self.io_missed.store(false, SeqCst);
      self.poll_locked(&mut future)
    })
    .await
  }

  /// Polls `task` once (it queues its commands), then the driver (it writes
  /// them), both on the calling thread.
  pub fn submit(self: &Arc<Self>, task: Arc<Task>) {
    let _context = runtime().enter();
    let submitting = Submitting::to(self);
    task.poll();
    self.woken_in_js.store(false, SeqCst);
    let wake_io = match self.future.try_lock() {
      Some(mut future) => {
        let ended = self.poll_locked(&mut future).is_ready();
        drop(future);
        fence(SeqCst);
        ended | self.io_missed.swap(false, SeqCst) | self.woken_in_js.swap(false, SeqCst)
      }
      // The I/O thread is polling it: have it poll once more for this batch.
      None => true,
    };
    drop(submitting);
    if wake_io {
      self.io.wake();
    }
    // Replies the driver read here woke their tasks: finish them here too.
    while let Some(t) = WOKEN_HERE.with_borrow_mut(|w| w.pop()) {
      t.poll();
    }
  }

  fn poll_locked(&self, future: &mut Option<Driver>) -> Poll<()> {
    let Some(driver) = future.as_mut() else {
      return Poll::Ready(());
    };
    match driver.as_mut().poll(&mut Context::from_waker(&self.waker)) {
      Poll::Ready(()) => {
        *future = None;
        self.finished.store(true, SeqCst);
        Poll::Ready(())
      }
      Poll::Pending => Poll::Pending,
    }
  }
}

/// Marks the JS thread as submitting to a driver until dropped (also by a panic).
struct Submitting;

impl Submitting {
  fn to(driver: &Arc<SharedDriver>) -> Submitting {
    SUBMITTING.set(Arc::as_ptr(driver) as usize);
    Submitting
  }
}

impl Drop for Submitting {
  fn drop(&mut self) {
    SUBMITTING.set(0);
  }
}

/// A future polled first by [`SharedDriver::submit`], then wherever it is
/// woken: on the I/O thread as a task of its own, or on the JS thread before
/// `submit` returns.
pub struct Task {
  future: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl Task {
  pub fn new(future: impl Future<Output = ()> + Send + 'static) -> Arc<Task> {
    Arc::new(Task {
      future: Mutex::new(Some(Box::pin(future))),
    })
  }

  fn poll(self: &Arc<Self>) {
    let waker = Waker::from(self.clone());
    let mut future = self.future.lock();
    if let Some(f) = future.as_mut() {
      if f.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
        *future = None;
      }
    }
  }
}

impl Wake for Task {
  fn wake(self: Arc<Self>) {
    if SUBMITTING.get() != 0 {
      WOKEN_HERE.with_borrow_mut(|w| w.push(self));
    } else {
      runtime().spawn(async move { self.poll() });
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn the_io_side_polls_what_the_js_side_left_pending() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let driver = SharedDriver::new(Box::pin(async move {
      rx.await.ok();
      done_tx.send(()).ok();
    }));
    driver.submit(Task::new(async {}));
    assert!(!driver.is_finished(), "still waiting for its channel");
    runtime().spawn(driver.clone().run());
    // Woken from another thread: the I/O side polls it to the end.
    std::thread::spawn(move || tx.send(()).ok()).join().unwrap();
    done_rx
      .recv_timeout(std::time::Duration::from_secs(5))
      .expect("the I/O thread polled the driver to its end");
    for _ in 0..500 {
      if driver.is_finished() {
        return;
      }
      std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the driver never ended");
  }
}
