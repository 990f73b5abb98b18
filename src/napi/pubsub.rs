//! The JavaScript side of a subscriber (`engine::pubsub`): requests in, and
//! out, everything that arrived since the last wake — messages, finished
//! requests, connection news — in one call of the JS callback per burst.
//!
//! The callback gets `(messages, events)`: `messages` is flat, three values
//! per message (subscription id, the channel for a pattern's match or
//! `undefined`, the payload), strings or Buffers as the subscription asked;
//! `events` is `undefined` or a list of `['done', op, error?]`,
//! `['dropped', id, error]`, `['lost', error]`, `'resubscribed'`, `'closed'`.
//!
//! Like a client's, the thread-safe function keeps Node alive only while
//! something is owed (a request's answer, the close) or while JS holds
//! subscriptions (`keep_alive`): a subscribed client keeps the process
//! running, as a subscribed socket would; `close()` lets it exit.

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi_sys as sys;

use super::outbox::Outbox;
use super::{
  array_of_ref, doorbell, hold_event_loop, js_array, js_array_of, js_buffer, js_error, js_number,
  js_string, js_undefined, napi_err, on_event_loop, read_op_args, resolve, set_element,
  threadsafe_function, NapiResult, SendPtr,
};
use crate::commands::Arg;
use crate::engine::config::Config;
use crate::engine::pubsub::{self, Delivery, Kind};
use crate::error::Error;

/// State only the JS thread touches; owned by the thread-safe function.
struct Side {
  outbox: Arc<Outbox<Delivery>>,
  secret: Option<String>,
  tsfn: Cell<sys::napi_threadsafe_function>,
  array_of: Cell<sys::napi_ref>,
  /// Answers still owed to JS (requests, the close).
  owed: Cell<usize>,
  /// JS holds subscriptions.
  hold: Cell<bool>,
  referenced: Cell<bool>,
  released: Arc<AtomicBool>,
}

impl Side {
  fn update_ref(&self, env: sys::napi_env) {
    let want = self.owed.get() > 0 || self.hold.get();
    hold_event_loop(env, self.tsfn.get(), &self.referenced, &self.released, want);
  }

  fn owe(&self, env: sys::napi_env, n: isize) {
    self.owed.set(self.owed.get().saturating_add_signed(n));
    self.update_ref(env);
  }
}

unsafe extern "C" fn finalize_side(env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
  let side = Box::from_raw(data as *mut Side);
  side.released.store(true, Ordering::Release);
  if !env.is_null() && !side.array_of.get().is_null() {
    sys::napi_delete_reference(env, side.array_of.get());
  }
}

unsafe extern "C" fn deliver(
  env: sys::napi_env,
  callback: sys::napi_value,
  context: *mut c_void,
  _data: *mut c_void,
) {
  if env.is_null() || context.is_null() {
    return;
  }
  let side = &*(context as *const Side);
  on_event_loop("messages", || {
    let items = side.outbox.take();
    if items.is_empty() {
      return;
    }
    let paid = items
      .iter()
      .filter(|d| matches!(d, Delivery::Done { .. } | Delivery::Closed))
      .count();
    let closed = items.iter().any(|d| matches!(d, Delivery::Closed));
    if let Err(e) = deliver_items(env, callback, side, items) {
      eprintln!("@atlas-erp/redis: {e}");
    }
    side.owe(env, -(paid as isize));
    if closed && !side.released.swap(true, Ordering::AcqRel) {
      sys::napi_release_threadsafe_function(
        side.tsfn.get(),
        sys::ThreadsafeFunctionReleaseMode::release,
      );
    }
  });
}

unsafe fn bytes(env: sys::napi_env, b: Vec<u8>, buffer: bool) -> NapiResult<sys::napi_value> {
  if buffer {
    js_buffer(env, b)
  } else {
    js_string(env, &b)
  }
}

unsafe fn deliver_items(
  env: sys::napi_env,
  callback: sys::napi_value,
  side: &Side,
  items: Vec<Delivery>,
) -> NapiResult<()> {
  let mut array_of = ptr::null_mut();
  if !side.array_of.get().is_null() {
    ck!(
      sys::napi_get_reference_value(env, side.array_of.get(), &mut array_of),
      "array helper"
    );
  }
  let error = |e: &Error| js_error(env, &e.clone().redact(side.secret.as_deref()));
  let tagged = |tag: &[u8], values: &[sys::napi_value]| -> NapiResult<sys::napi_value> {
    let arr = js_array(env, values.len() + 1)?;
    set_element(env, arr, 0, js_string(env, tag)?)?;
    for (i, v) in values.iter().enumerate() {
      set_element(env, arr, i + 1, *v)?;
    }
    Ok(arr)
  };
  let mut messages = Vec::new();
  let mut events = Vec::new();
  for d in items {
    match d {
      Delivery::Message {
        id,
        buffers,
        channel,
        payload,
      } => {
        messages.push(js_number(env, id as f64)?);
        messages.push(match channel {
          Some(c) => bytes(env, c, buffers)?,
          None => js_undefined(env)?,
        });
        messages.push(bytes(env, payload, buffers)?);
      }
      Delivery::Done { op, error: None } => {
        events.push(tagged(b"done", &[js_number(env, op as f64)?])?)
      }
      Delivery::Done { op, error: Some(e) } => {
        events.push(tagged(b"done", &[js_number(env, op as f64)?, error(&e)?])?)
      }
      Delivery::Dropped { id, error: e } => events.push(tagged(
        b"dropped",
        &[js_number(env, id as f64)?, error(&e)?],
      )?),
      Delivery::Lost(e) => events.push(tagged(b"lost", &[error(&e)?])?),
      Delivery::Resubscribed => events.push(js_string(env, b"resubscribed")?),
      Delivery::Closed => events.push(js_string(env, b"closed")?),
    }
  }
  let argv = [
    js_array_of(env, array_of, &messages)?,
    if events.is_empty() {
      js_undefined(env)?
    } else {
      js_array_of(env, array_of, &events)?
    },
  ];
  let mut global = ptr::null_mut();
  ck!(sys::napi_get_global(env, &mut global), "global");
  let mut result = ptr::null_mut();
  // A throwing callback is the TS layer's bug; N-API reports it as uncaught.
  sys::napi_call_function(env, global, callback, 2, argv.as_ptr(), &mut result);
  Ok(())
}

/// The bytes of each name of a JS array of strings (UTF-8) and Buffers, read
/// without a napi reference per item (lib/core/pubsub.ts checked their types).
unsafe fn read_names(env: sys::napi_env, array: sys::napi_value) -> NapiResult<Vec<Vec<u8>>> {
  let mut len = 0u32;
  ck!(sys::napi_get_array_length(env, array, &mut len), "names");
  let (mut arena, mut raw) = (Vec::new(), Vec::with_capacity(len as usize));
  if !read_op_args(env, array, 0, len, &mut arena, &mut raw)? {
    return Err(napi_err("a name could not be read"));
  }
  raw
    .iter()
    .map(|r| match resolve(r, &arena) {
      Arg::Str(b) | Arg::Buf(b) => Ok(b.to_vec()),
      _ => Err(napi_err("a name is not a string or a Buffer")),
    })
    .collect()
}

/// A subscriber as the `#[napi]` class holds it.
pub struct Subscriber {
  side: *const Side,
  released: Arc<AtomicBool>,
  engine: pubsub::Subscriber,
  closing: Cell<bool>,
}

impl Subscriber {
  /// # Safety
  /// `env` and `callback` must be the live napi env and a JS function of the
  /// current call, on the JS thread.
  pub unsafe fn open(
    env: sys::napi_env,
    config: Config,
    callback: sys::napi_value,
  ) -> NapiResult<Subscriber> {
    let released = Arc::new(AtomicBool::new(false));
    let (slot, bell) = doorbell(&released);
    let outbox = Arc::new(Outbox::new(bell));
    let side = Box::into_raw(Box::new(Side {
      outbox: outbox.clone(),
      secret: config.password_str().map(str::to_string),
      tsfn: Cell::new(ptr::null_mut()),
      array_of: Cell::new(ptr::null_mut()),
      owed: Cell::new(0),
      hold: Cell::new(false),
      referenced: Cell::new(true),
      released: released.clone(),
    }));
    let tsfn = threadsafe_function(
      env,
      callback,
      b"atlas-redis-pubsub",
      side,
      Some(finalize_side),
      Some(deliver),
    )?;
    (*side).tsfn.set(tsfn);
    (*side).array_of.set(array_of_ref(env)?);
    let _ = slot.set(SendPtr(tsfn));
    // Idle until the first request.
    (*side).update_ref(env);
    Ok(Subscriber {
      side,
      released,
      engine: pubsub::Subscriber::start(config, outbox),
      closing: Cell::new(false),
    })
  }

  /// The JS-side state, unless already released (closed).
  fn side(&self) -> NapiResult<&Side> {
    if self.released.load(Ordering::Acquire) || self.closing.get() {
      return Err(napi::Error::new(
        napi::Status::GenericFailure,
        "the client is closed".to_string(),
      ));
    }
    // SAFETY: freed only by the tsfn finalizer, after `released` was set on this thread.
    Ok(unsafe { &*self.side })
  }

  fn kind(code: u32) -> NapiResult<Kind> {
    Kind::from_code(code).ok_or_else(|| napi_err("unknown subscription kind"))
  }

  /// Request `op`: subscribe to `names` (a JS array of strings and Buffers),
  /// whose JS ids are `ids`.
  ///
  /// # Safety
  /// `env` and `names` must belong to the current napi call, on the JS thread.
  pub unsafe fn subscribe(
    &self,
    env: sys::napi_env,
    op: u32,
    kind: u32,
    names: sys::napi_value,
    ids: Vec<u32>,
    buffers: bool,
  ) -> NapiResult<()> {
    let kind = Self::kind(kind)?;
    let names = read_names(env, names)?;
    if names.len() != ids.len() {
      return Err(napi_err("one id per name"));
    }
    self.side()?.owe(env, 1);
    self
      .engine
      .subscribe(op, kind, names.into_iter().zip(ids).collect(), buffers);
    Ok(())
  }

  /// Request `op`: unsubscribe from `names` (a JS array of strings and Buffers).
  ///
  /// # Safety
  /// As for `subscribe`.
  pub unsafe fn unsubscribe(
    &self,
    env: sys::napi_env,
    op: u32,
    kind: u32,
    names: sys::napi_value,
  ) -> NapiResult<()> {
    let kind = Self::kind(kind)?;
    let names = read_names(env, names)?;
    self.side()?.owe(env, 1);
    self.engine.unsubscribe(op, kind, names);
    Ok(())
  }

  /// Whether JS holds subscriptions (they keep the process alive).
  pub fn keep_alive(&self, env: sys::napi_env, on: bool) {
    if let Ok(side) = self.side() {
      side.hold.set(on);
      side.update_ref(env);
    }
  }

  /// Ends every subscription and connection; `'closed'` follows.
  pub fn close(&self, env: sys::napi_env) {
    let Ok(side) = self.side() else { return };
    self.closing.set(true);
    side.hold.set(false);
    side.owe(env, 1);
    self.engine.close();
  }
}
