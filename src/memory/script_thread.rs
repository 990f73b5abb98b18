//! The thread that runs a store's scripts, off the I/O thread (so that the
//! other connections are served meanwhile: BUSY, SCRIPT KILL).
//!
//! Most scripts take microseconds, so the hand-over is what costs: the
//! thread spins a moment for the next script before it sleeps, and the
//! connection spins a moment for the result before it awaits it. Back-to-back
//! scripts then cross threads without waking anything.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

/// How long the thread looks for another script before it sleeps.
const IDLE_SPIN: Duration = Duration::from_micros(50);
/// How long a connection looks for the result before it awaits it.
const RESULT_SPIN: Duration = Duration::from_micros(50);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
  jobs: VecDeque<Job>,
  asleep: bool,
}

#[derive(Default)]
struct Inner {
  queue: Mutex<Queue>,
  /// Jobs queued (read while spinning, without the lock).
  queued: AtomicUsize,
  wake: Condvar,
}

pub struct ScriptThread {
  inner: Arc<Inner>,
}

impl ScriptThread {
  pub fn start() -> ScriptThread {
    let inner = Arc::new(Inner::default());
    let mine = inner.clone();
    std::thread::Builder::new()
      .name("atlas-redis-lua".into())
      .spawn(move || loop {
        let job = next_job(&mine);
        job();
      })
      .expect("the memory:// script thread");
    ScriptThread { inner }
  }

  /// Runs `f` on the thread; resolves to what it returns.
  pub async fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, mut rx) = oneshot::channel();
    {
      let mut q = self.inner.queue.lock();
      q.jobs.push_back(Box::new(move || {
        let _ = tx.send(f());
      }));
      self.inner.queued.fetch_add(1, Ordering::Release);
      if q.asleep {
        self.inner.wake.notify_one();
      }
    }
    let until = Instant::now() + RESULT_SPIN;
    loop {
      match rx.try_recv() {
        Ok(r) => return r,
        Err(oneshot::error::TryRecvError::Closed) => panic!("the memory:// script thread died"),
        Err(oneshot::error::TryRecvError::Empty) if Instant::now() < until => {
          std::hint::spin_loop()
        }
        Err(_) => break,
      }
    }
    rx.await.expect("the memory:// script thread died")
  }
}

fn next_job(inner: &Inner) -> Job {
  let until = Instant::now() + IDLE_SPIN;
  while inner.queued.load(Ordering::Acquire) == 0 && Instant::now() < until {
    std::hint::spin_loop();
  }
  let mut q = inner.queue.lock();
  loop {
    if let Some(job) = q.jobs.pop_front() {
      inner.queued.fetch_sub(1, Ordering::Release);
      return job;
    }
    q.asleep = true;
    inner.wake.wait(&mut q);
    q.asleep = false;
  }
}
