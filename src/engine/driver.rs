//! Where a standalone connection's redis-rs driver is polled: on the JS
//! thread, and on the I/O thread when no event loop drives it.
//!
//! redis-rs hands back the driver of a `MultiplexedConnection` as a future
//! (DESIGN.md, "Anchors"): whoever polls it moves bytes between the
//! connection's queue and the socket. The JS thread polls it right after
//! queuing a batch, so the batch is written at once. With a Node event loop
//! (`engine::uv`) the JS thread also reads the socket when libuv says it is
//! readable (`engine::uv_socket`), and other threads' wakes (a batch sent by
//! the I/O thread, a probe's PING) reach it through the loop's async handle:
//! a reply round costs one thread wake, as in a client written in JS. Without
//! one (memory://, `cargo test`, after a worker's event loop is gone) the I/O
//! thread polls the driver when its socket is ready. A lock keeps two threads
//! from polling at once; a poll that finds the driver locked makes sure the
//! holder's side polls again.
//!
//! A batch's own future ([`Task`]) is polled first on the JS thread (that
//! queues its commands) and then wherever its reply wakes it.
//!
//! ```
//! use std::sync::Arc;
//! use atlas_redis::engine::driver::{SharedDriver, Task};
//! let (tx, rx) = tokio::sync::oneshot::channel::<()>();
//! let driver = SharedDriver::new(Box::pin(async move { rx.await.ok(); }), None);
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
use crate::engine::uv::EventLoop;

/// Polls of the driver in a row on the JS thread while it keeps waking itself;
/// past them the next poll is queued behind the loop's other work.
const MAX_POLLS_HERE: usize = 16;

thread_local! {
  /// The driver the JS thread is polling (its address), while it does.
  static SUBMITTING: Cell<usize> = const { Cell::new(0) };
  /// Tasks woken on this thread while it polls: polled before it returns.
  static WOKEN_HERE: RefCell<Vec<Arc<Task>>> = const { RefCell::new(Vec::new()) };
  /// The driver polled now on its event loop's thread, and that loop: the
  /// socket moves onto the loop when it sees them (`uv_socket`).
  static ON_LOOP: RefCell<Option<(Arc<EventLoop>, Weak<SharedDriver>)>> = const { RefCell::new(None) };
}

/// The event loop (and driver) the calling thread is polling a driver for, if any.
pub(crate) fn polled_on_loop() -> Option<(Arc<EventLoop>, Weak<SharedDriver>)> {
  ON_LOOP.with_borrow(|h| h.clone())
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
  /// The event loop whose thread polls the driver, if any.
  home: Option<Arc<EventLoop>>,
  /// Queued on `home` already.
  scheduled: AtomicBool,
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
        d.wake();
      }
    }
  }
}

impl SharedDriver {
  /// A driver polled on `home`'s thread (its event loop) or, without one,
  /// on the I/O thread ([`SharedDriver::run`] must be spawned either way).
  pub fn new(driver: Driver, home: Option<Arc<EventLoop>>) -> Arc<SharedDriver> {
    let d = Arc::new_cyclic(|me| SharedDriver {
      future: Mutex::new(Some(driver)),
      waker: Waker::from(Arc::new(DriverWake(me.clone()))),
      io: AtomicWaker::new(),
      io_missed: AtomicBool::new(false),
      woken_in_js: AtomicBool::new(false),
      finished: AtomicBool::new(false),
      home,
      scheduled: AtomicBool::new(false),
    });
    if let Some(h) = &d.home {
      h.adopt(&d);
    }
    d
  }

  /// The event loop that polls the driver, while it runs.
  fn on_loop(&self) -> Option<&Arc<EventLoop>> {
    self.home.as_ref().filter(|h| h.is_open())
  }

  /// Has the driver polled soon, where it is polled.
  pub fn wake(self: &Arc<Self>) {
    if let Some(h) = self.on_loop() {
      if self.scheduled.swap(true, SeqCst) || h.schedule(self.clone()) {
        return;
      }
      self.scheduled.store(false, SeqCst);
    }
    self.io.wake();
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
      if self.on_loop().is_some() {
        // Its event loop's thread polls it; this side waits for the end.
        return Poll::Pending;
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
  /// them), both on the calling thread (the JS thread).
  pub fn submit(self: &Arc<Self>, task: Arc<Task>) {
    self.poll_here_with(Some(task));
  }

  /// Polls the driver on the calling thread, its event loop's (libuv said
  /// the socket is ready, or another thread asked).
  pub(crate) fn poll_here(self: &Arc<Self>) {
    self.scheduled.store(false, SeqCst);
    self.poll_here_with(None);
  }

  fn poll_here_with(self: &Arc<Self>, task: Option<Arc<Task>>) {
    if SUBMITTING.get() != 0 {
      // Inside another poll on this thread: not re-entrantly.
      if let Some(t) = task {
        WOKEN_HERE.with_borrow_mut(|w| w.push(t));
      }
      self.wake();
      return;
    }
    let _context = runtime().enter();
    let submitting = Submitting::to(self);
    let home = self.on_loop().filter(|h| h.is_here()).cloned();
    if let Some(h) = &home {
      ON_LOOP.set(Some((h.clone(), Arc::downgrade(self))));
    }
    if let Some(t) = task {
      t.poll();
    }
    let mut polls = 0;
    let wake = loop {
      self.woken_in_js.store(false, SeqCst);
      let Some(mut future) = self.future.try_lock() else {
        // The I/O thread is polling it: have it poll once more.
        break true;
      };
      let ended = self.poll_locked(&mut future).is_ready();
      drop(future);
      fence(SeqCst);
      let again = self.io_missed.swap(false, SeqCst) | self.woken_in_js.swap(false, SeqCst);
      polls += 1;
      if ended || !again || home.is_none() || polls >= MAX_POLLS_HERE {
        break ended | again;
      }
    };
    drop(submitting);
    if wake {
      if self.is_finished() {
        // The I/O side waits for the end.
        self.io.wake();
      } else {
        self.wake();
      }
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
    ON_LOOP.set(None);
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
    let driver = SharedDriver::new(
      Box::pin(async move {
        rx.await.ok();
        done_tx.send(()).ok();
      }),
      None,
    );
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
