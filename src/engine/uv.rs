//! Node's event loop (libuv) as a place to drive connections: the JS thread
//! reads and writes a standalone connection's socket itself
//! ([`crate::engine::uv_socket`]), so a reply round costs one thread wake.
//!
//! One [`EventLoop`] per Node environment (main thread or worker), shared by
//! its clients: a `uv_async_t` through which other threads ask the JS thread
//! to poll a driver, and a `uv_poll_t` per socket. Every handle is unref'd (a
//! client alone must not keep the process alive; its pending replies do,
//! through the outbox's thread-safe function) and closed on the JS thread:
//! when its socket goes, or when the environment is torn down
//! ([`EventLoop::teardown`]), after which the I/O thread drives what is left.
//!
//! libuv's functions are looked up in the process at run time (Node exports
//! them): this crate's tests, outside Node, link and run without them; there is
//! then no event loop and connections stay on the I/O thread.

use std::collections::HashSet;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use crate::engine::driver::SharedDriver;

const UV_ASYNC: c_int = 1;
const UV_POLL: c_int = 8;
pub(crate) const UV_READABLE: c_int = 1;
pub(crate) const UV_WRITABLE: c_int = 2;
/// Room for a `uv_poll_t` or `uv_async_t` (about 160 bytes on 64-bit Linux);
/// checked against `uv_handle_size` when libuv is loaded.
const HANDLE_BYTES: usize = 512;

type PollCb = unsafe extern "C" fn(*mut c_void, c_int, c_int);
type AsyncCb = unsafe extern "C" fn(*mut c_void);
type CloseCb = unsafe extern "C" fn(*mut c_void);

struct Fns {
  poll_init: unsafe extern "C" fn(*mut c_void, *mut c_void, c_int) -> c_int,
  poll_start: unsafe extern "C" fn(*mut c_void, c_int, PollCb) -> c_int,
  close: unsafe extern "C" fn(*mut c_void, Option<CloseCb>),
  unref: unsafe extern "C" fn(*mut c_void),
  async_init: unsafe extern "C" fn(*mut c_void, *mut c_void, AsyncCb) -> c_int,
  async_send: unsafe extern "C" fn(*mut c_void) -> c_int,
}

/// libuv's functions, if this process has them (it is Node).
fn uv() -> Option<&'static Fns> {
  static FNS: OnceLock<Option<Fns>> = OnceLock::new();
  // SAFETY: the symbols are libuv's, whose signatures are declared in `Fns`.
  FNS.get_or_init(|| unsafe { load() }).as_ref()
}

#[cfg(unix)]
unsafe fn load() -> Option<Fns> {
  unsafe fn sym<T: Copy>(name: &std::ffi::CStr) -> Option<T> {
    let p = libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
    // SAFETY: T is the fn pointer type of that symbol (same size as a pointer).
    (!p.is_null()).then(|| std::mem::transmute_copy::<*mut c_void, T>(&p))
  }
  let handle_size: unsafe extern "C" fn(c_int) -> usize = sym(c"uv_handle_size")?;
  if handle_size(UV_POLL) > HANDLE_BYTES || handle_size(UV_ASYNC) > HANDLE_BYTES {
    return None;
  }
  Some(Fns {
    poll_init: sym(c"uv_poll_init")?,
    poll_start: sym(c"uv_poll_start")?,
    close: sym(c"uv_close")?,
    unref: sym(c"uv_unref")?,
    async_init: sym(c"uv_async_init")?,
    async_send: sym(c"uv_async_send")?,
  })
}

#[cfg(not(unix))]
unsafe fn load() -> Option<Fns> {
  None
}

/// A libuv handle's memory, followed by what its callbacks need. The handle
/// comes first, so the pointer libuv hands a callback is the block's.
#[repr(C, align(16))]
struct Block<T> {
  handle: [u8; HANDLE_BYTES],
  ctx: T,
}

impl<T> Block<T> {
  fn new(ctx: T) -> *mut Block<T> {
    Box::into_raw(Box::new(Block {
      handle: [0; HANDLE_BYTES],
      ctx,
    }))
  }
}

/// Frees a closed handle's block (libuv's close callback).
unsafe extern "C" fn free_block<T>(handle: *mut c_void) {
  // SAFETY: every handle is a `Block<T>` made by `Block::new`; libuv is done with it.
  drop(Box::from_raw(handle as *mut Block<T>));
}

/// A socket's `uv_poll_t`: its callback polls the connection's driver.
pub(crate) struct PollCtx {
  driver: Weak<SharedDriver>,
  events: c_int,
}

/// A socket's poll handle, as the socket holds it.
pub(crate) struct Poll(*mut Block<PollCtx>);
// SAFETY: the handle is only used on its loop's thread (see `EventLoop`); other threads only move it.
unsafe impl Send for Poll {}

struct State {
  closed: bool,
  async_handle: *mut Block<Weak<EventLoop>>,
  /// Drivers to poll on the JS thread (asked for by other threads).
  queue: Vec<Arc<SharedDriver>>,
  /// Every driver of this loop: the I/O thread takes them over at teardown.
  drivers: Vec<Weak<SharedDriver>>,
  /// Poll handles not closed yet (addresses).
  open: HashSet<usize>,
  /// Sockets dropped on another thread: their handle is closed (and then
  /// their socket) on the JS thread.
  retired: Vec<(Poll, Box<dyn Send>)>,
}

/// One Node environment's event loop, as seen by its clients' connections.
pub struct EventLoop {
  raw: *mut c_void,
  thread: std::thread::ThreadId,
  closed: AtomicBool,
  state: Mutex<State>,
}

// SAFETY: `raw` and the handles are used only on the loop's own thread
// (checked by `is_here`), except `uv_async_send`, which libuv allows anywhere.
unsafe impl Send for EventLoop {}
unsafe impl Sync for EventLoop {}

/// Loops by address of their `uv_loop_t`.
static LOOPS: Mutex<Vec<(usize, Arc<EventLoop>)>> = Mutex::new(Vec::new());

impl EventLoop {
  /// The event loop `raw` (a `uv_loop_t*` from `napi_get_uv_event_loop`),
  /// made on first use; the flag says it is new (the caller must arrange
  /// `teardown` then). `None` without libuv.
  ///
  /// # Safety
  /// Call on the thread that runs `raw`.
  pub unsafe fn of(raw: *mut c_void) -> Option<(Arc<EventLoop>, bool)> {
    let uv = uv()?;
    let mut loops = LOOPS.lock();
    if let Some((_, l)) = loops.iter().find(|(r, _)| *r == raw as usize) {
      return Some((l.clone(), false));
    }
    let me = Arc::new_cyclic(|weak: &Weak<EventLoop>| {
      let handle = Block::new(weak.clone());
      EventLoop {
        raw,
        thread: std::thread::current().id(),
        closed: AtomicBool::new(false),
        state: Mutex::new(State {
          closed: false,
          async_handle: handle,
          queue: Vec::new(),
          drivers: Vec::new(),
          open: HashSet::new(),
          retired: Vec::new(),
        }),
      }
    });
    let handle = me.state.lock().async_handle as *mut c_void;
    if (uv.async_init)(raw, handle, on_async) != 0 {
      // Never initialised: libuv does not know it.
      free_block::<Weak<EventLoop>>(handle);
      return None;
    }
    (uv.unref)(handle);
    loops.push((raw as usize, me.clone()));
    Some((me, true))
  }

  /// Tears down the loop `raw` (its environment is going): see [`EventLoop::teardown`].
  ///
  /// # Safety
  /// Call on the thread that runs `raw`.
  pub unsafe fn teardown_loop(raw: *mut c_void) {
    let found = {
      let mut loops = LOOPS.lock();
      let i = loops.iter().position(|(r, _)| *r == raw as usize);
      i.map(|i| loops.swap_remove(i).1)
    };
    if let Some(l) = found {
      l.teardown();
    }
  }

  /// Whether the loop still runs (it is not torn down).
  pub fn is_open(&self) -> bool {
    !self.closed.load(SeqCst)
  }

  /// Whether the calling thread is this loop's and the loop still runs.
  pub fn is_here(&self) -> bool {
    self.is_open() && std::thread::current().id() == self.thread
  }

  /// Registers a driver, so that teardown hands it to the I/O thread.
  pub(crate) fn adopt(&self, d: &Arc<SharedDriver>) {
    let mut s = self.state.lock();
    s.drivers.retain(|w| w.strong_count() > 0);
    s.drivers.push(Arc::downgrade(d));
  }

  /// Asks the JS thread to poll `d` (from any thread); false once torn down.
  pub(crate) fn schedule(&self, d: Arc<SharedDriver>) -> bool {
    let Some(uv) = uv() else { return false };
    let mut s = self.state.lock();
    if s.closed {
      return false;
    }
    let first = s.queue.is_empty();
    s.queue.push(d);
    if first {
      // SAFETY: the async handle lives until teardown, which takes this lock first.
      unsafe { (uv.async_send)(s.async_handle as *mut c_void) };
    }
    true
  }

  /// Starts polling `fd` for reads; `driver` is polled when it is ready.
  /// JS thread only.
  pub(crate) fn watch(&self, fd: c_int, driver: Weak<SharedDriver>) -> Option<Poll> {
    let uv = uv()?;
    if !self.is_here() {
      return None;
    }
    let block = Block::new(PollCtx {
      driver,
      events: UV_READABLE,
    });
    let h = block as *mut c_void;
    // SAFETY: on the loop's thread, with a fresh handle of the right size.
    unsafe {
      if (uv.poll_init)(self.raw, h, fd) != 0 {
        free_block::<PollCtx>(h);
        return None;
      }
      (uv.unref)(h);
      if (uv.poll_start)(h, UV_READABLE, on_poll) != 0 {
        (uv.close)(h, Some(free_block::<PollCtx>));
        return None;
      }
    }
    self.state.lock().open.insert(block as usize);
    Some(Poll(block))
  }

  /// Polls for writability too (a write would block), or no longer. JS thread
  /// only, while the loop is open.
  pub(crate) fn want_write(&self, p: &Poll, on: bool) {
    let Some(uv) = uv() else { return };
    // SAFETY: the handle is open (the loop is, and its socket holds it) and we are on its thread.
    unsafe {
      let ctx = &mut (*p.0).ctx;
      let events = if on {
        UV_READABLE | UV_WRITABLE
      } else {
        UV_READABLE
      };
      if ctx.events != events {
        ctx.events = events;
        (uv.poll_start)(p.0 as *mut c_void, events, on_poll);
      }
    }
  }

  /// A socket is going: its handle is closed before `socket` (which owns the
  /// fd) is dropped, on the JS thread (now, or soon when called elsewhere).
  pub(crate) fn release(&self, p: Poll, socket: Box<dyn Send>) {
    if self.is_here() {
      self.close_poll(p);
      drop(socket);
      return;
    }
    let Some(uv) = uv() else { return };
    let mut s = self.state.lock();
    if s.closed {
      // Teardown closed the handle already.
      return;
    }
    let first = s.queue.is_empty() && s.retired.is_empty();
    s.retired.push((p, socket));
    if first {
      // SAFETY: as in `schedule`.
      unsafe { (uv.async_send)(s.async_handle as *mut c_void) };
    }
  }

  /// Closes a poll handle unless teardown did. JS thread only.
  fn close_poll(&self, p: Poll) {
    let Some(uv) = uv() else { return };
    if self.state.lock().open.remove(&(p.0 as usize)) {
      // SAFETY: open, on its thread; uv_close stops the polling first.
      unsafe { (uv.close)(p.0 as *mut c_void, Some(free_block::<PollCtx>)) };
    }
  }

  /// The environment is going (JS thread): every handle is closed, and the
  /// I/O thread drives the connections left.
  pub fn teardown(&self) {
    let Some(uv) = uv() else { return };
    let (open, handle, drivers, queue, retired) = {
      let mut s = self.state.lock();
      if s.closed {
        return;
      }
      s.closed = true;
      self.closed.store(true, SeqCst);
      (
        std::mem::take(&mut s.open),
        s.async_handle,
        std::mem::take(&mut s.drivers),
        std::mem::take(&mut s.queue),
        std::mem::take(&mut s.retired),
      )
    };
    // SAFETY: on the loop's thread; each handle is open and closed once here.
    unsafe {
      for p in open {
        (uv.close)(p as *mut c_void, Some(free_block::<PollCtx>));
      }
      (uv.close)(handle as *mut c_void, Some(free_block::<Weak<EventLoop>>));
    }
    drop(retired);
    drop(queue);
    for d in drivers.iter().filter_map(Weak::upgrade) {
      d.wake();
    }
  }

  /// The async handle fired: close retired sockets, poll queued drivers.
  fn on_async(&self) {
    let (queue, retired) = {
      let mut s = self.state.lock();
      (std::mem::take(&mut s.queue), std::mem::take(&mut s.retired))
    };
    for (p, socket) in retired {
      self.close_poll(p);
      drop(socket);
    }
    for d in queue {
      d.poll_here();
    }
  }
}

thread_local! {
  /// libuv reported the socket being polled now readable, and no read took
  /// that news yet (`uv_socket` skips reads of a drained socket without it).
  static READABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether libuv reported the socket readable since the last call, on this
/// thread's poll callback.
pub(crate) fn take_readable() -> bool {
  READABLE.replace(false)
}

/// Runs `f` from a libuv callback: a panic must not unwind into Node.
fn guarded(f: impl FnOnce()) {
  if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
    eprintln!(
      "@atlas-erp/redis: internal error on the event loop: {}",
      crate::bridge::panic_message(&p)
    );
  }
}

unsafe extern "C" fn on_async(handle: *mut c_void) {
  guarded(|| {
    // SAFETY: the async handle is a `Block<Weak<EventLoop>>`, alive while it fires.
    let home = unsafe { &(*(handle as *mut Block<Weak<EventLoop>>)).ctx };
    if let Some(l) = home.upgrade() {
      crate::bridge::deliver_directly(|| l.on_async());
    }
  })
}

unsafe extern "C" fn on_poll(handle: *mut c_void, status: c_int, events: c_int) {
  guarded(|| {
    // SAFETY: a poll handle is a `Block<PollCtx>`, alive while it fires.
    let ctx = unsafe { &mut (*(handle as *mut Block<PollCtx>)).ctx };
    let Some(d) = ctx.driver.upgrade() else {
      return;
    };
    if events & UV_WRITABLE != 0 && ctx.events & UV_WRITABLE != 0 {
      // Writable now: the driver writes, and asks again if it blocks again.
      if let Some(uv) = uv() {
        ctx.events = UV_READABLE;
        // SAFETY: this handle, in its own callback, on its thread.
        unsafe { (uv.poll_start)(handle, UV_READABLE, on_poll) };
      }
    }
    // On error (status < 0) the driver's next read reports it: not skipped.
    READABLE.set(events & UV_READABLE != 0 || status < 0);
    crate::bridge::deliver_directly(|| d.poll_here());
    READABLE.set(false);
  })
}
