//! The JavaScript side of a client, in raw N-API for the hot path: reading a
//! batch of commands out of one JS array, and turning a burst of replies into
//! one call of the JS callback (one wake of the event loop per burst).

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::ops::Range;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi_sys as sys;
use tokio::time::Instant;

pub mod outbox;

use redis::Value;

use self::outbox::{Completion, Event, Outbox};
use crate::commands::{self, Arg, Op, Shape};
use crate::engine::config::Config;
use crate::engine::{Batch, Connection, Entry};
use crate::error::{Error, ErrorCode};
use crate::stats::Stats;

/// Ids wrap here; the TypeScript side uses the same mask.
pub const ID_MASK: u32 = 0x3fff_ffff;
/// The most items an argument array (or fields an object) may hold: Redis
/// itself refuses a command of more than 1M arguments by default.
const MAX_ITEMS: usize = 4_194_304;
/// Buffers at least this large are handed to JS without a copy.
const ZERO_COPY_MIN: usize = 64 * 1024;

pub type NapiResult<T> = std::result::Result<T, napi::Error>;

fn napi_err(what: &str) -> napi::Error {
  napi::Error::from_reason(format!("N-API call failed: {what}"))
}

macro_rules! ck {
  ($e:expr, $what:expr) => {
    if unsafe { $e } != sys::Status::napi_ok {
      return Err(napi_err($what).into());
    }
  };
}

// After `ck!`: the modules use it.
mod group;
pub mod pubsub;

// ---- reading arguments ----------------------------------------------------

/// An argument read from JS; strings live in the per-command arena.
enum RawArg {
  Undefined,
  Null,
  Bool(bool),
  Number(f64),
  Str(Range<usize>),
  Buf(*const u8, usize),
  Array(Vec<RawArg>),
  Object(Vec<(Range<usize>, RawArg)>),
  Other(&'static str),
}

fn resolve<'a>(r: &RawArg, arena: &'a [u8]) -> Arg<'a> {
  match r {
    RawArg::Undefined => Arg::Undefined,
    RawArg::Null => Arg::Null,
    RawArg::Bool(b) => Arg::Bool(*b),
    RawArg::Number(n) => Arg::Number(*n),
    RawArg::Str(r) => Arg::Str(&arena[r.clone()]),
    // SAFETY: the Buffer is referenced by the batch array for the whole call.
    RawArg::Buf(p, n) => Arg::Buf(if *n == 0 {
      &[]
    } else {
      unsafe { std::slice::from_raw_parts(*p, *n) }
    }),
    RawArg::Array(v) => Arg::Array(v.iter().map(|a| resolve(a, arena)).collect()),
    RawArg::Object(v) => Arg::Object(
      v.iter()
        .map(|(k, a)| (&arena[k.clone()], resolve(a, arena)))
        .collect(),
    ),
    RawArg::Other(t) => Arg::Other(t),
  }
}

/// Appends a JS string's UTF-8 bytes to `arena`.
unsafe fn read_string(
  env: sys::napi_env,
  v: sys::napi_value,
  arena: &mut Vec<u8>,
) -> NapiResult<Range<usize>> {
  let start = arena.len();
  // One call usually suffices: try with the spare room first. A result this far
  // below the room cannot have been cut short (a character is ≤ 4 bytes).
  if arena.capacity() - start < 1024 {
    arena.reserve(4096);
  }
  let room = arena.capacity() - start;
  let mut written = 0usize;
  ck!(
    sys::napi_get_value_string_utf8(
      env,
      v,
      arena.as_mut_ptr().add(start) as *mut _,
      room,
      &mut written
    ),
    "read string"
  );
  if written + 5 > room {
    let mut len = 0usize;
    ck!(
      sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len),
      "string length"
    );
    arena.reserve(len + 1);
    ck!(
      sys::napi_get_value_string_utf8(
        env,
        v,
        arena.as_mut_ptr().add(start) as *mut _,
        len + 1,
        &mut written
      ),
      "read string"
    );
  }
  arena.set_len(start + written);
  Ok(start..start + written)
}

#[allow(non_upper_case_globals)]
unsafe fn read_arg(
  env: sys::napi_env,
  v: sys::napi_value,
  arena: &mut Vec<u8>,
  depth: u8,
) -> NapiResult<RawArg> {
  use sys::ValueType::*;
  let mut t = 0;
  ck!(sys::napi_typeof(env, v, &mut t), "typeof");
  Ok(match t {
    napi_undefined => RawArg::Undefined,
    napi_null => RawArg::Null,
    napi_boolean => {
      let mut b = false;
      ck!(sys::napi_get_value_bool(env, v, &mut b), "bool");
      RawArg::Bool(b)
    }
    napi_number => {
      let mut n = 0f64;
      ck!(sys::napi_get_value_double(env, v, &mut n), "number");
      RawArg::Number(n)
    }
    napi_string => RawArg::Str(read_string(env, v, arena)?),
    napi_object => {
      let mut is = false;
      // Bytes are a Buffer or a Uint8Array over a live ArrayBuffer. Other typed
      // arrays (their bytes depend on the platform's endianness) and views of
      // a detached buffer are refused rather than sent as something else.
      ck!(sys::napi_is_typedarray(env, v, &mut is), "is_typedarray");
      if is {
        let mut kind = 0;
        let mut length = 0usize;
        let mut data = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        let mut offset = 0usize;
        ck!(
          sys::napi_get_typedarray_info(
            env,
            v,
            &mut kind,
            &mut length,
            &mut data,
            &mut buffer,
            &mut offset
          ),
          "typed array info"
        );
        if kind != sys::TypedarrayType::uint8_array {
          return Ok(RawArg::Other("a typed array other than Uint8Array"));
        }
        let mut detached = false;
        ck!(
          sys::napi_is_detached_arraybuffer(env, buffer, &mut detached),
          "detached"
        );
        if detached {
          return Ok(RawArg::Other("a Buffer over a detached ArrayBuffer"));
        }
      }
      ck!(sys::napi_is_dataview(env, v, &mut is), "is_dataview");
      if is {
        return Ok(RawArg::Other("a DataView"));
      }
      ck!(sys::napi_is_buffer(env, v, &mut is), "is_buffer");
      if is {
        let mut data = ptr::null_mut();
        let mut len = 0usize;
        ck!(
          sys::napi_get_buffer_info(env, v, &mut data, &mut len),
          "buffer info"
        );
        return Ok(RawArg::Buf(data as *const u8, len));
      }
      if depth >= 2 {
        return Ok(RawArg::Other("nested object"));
      }
      ck!(sys::napi_is_array(env, v, &mut is), "is_array");
      if is {
        let mut len = 0u32;
        ck!(sys::napi_get_array_length(env, v, &mut len), "array length");
        // `length` is whatever the caller set (a sparse array claims 2^32 - 1):
        // refuse before allocating for it.
        if len as usize > MAX_ITEMS {
          return Ok(RawArg::Other("an array of more than 4,194,304 items"));
        }
        let mut items = Vec::with_capacity(len as usize);
        for i in 0..len {
          let mut e = ptr::null_mut();
          ck!(sys::napi_get_element(env, v, i, &mut e), "element");
          items.push(read_arg(env, e, arena, depth + 1)?);
        }
        return Ok(RawArg::Array(items));
      }
      let mut names = ptr::null_mut();
      ck!(
        sys::napi_get_all_property_names(
          env,
          v,
          sys::KeyCollectionMode::own_only,
          sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
          sys::KeyConversion::numbers_to_strings,
          &mut names
        ),
        "property names"
      );
      let mut len = 0u32;
      ck!(
        sys::napi_get_array_length(env, names, &mut len),
        "names length"
      );
      if len as usize > MAX_ITEMS {
        return Ok(RawArg::Other("an object of more than 4,194,304 fields"));
      }
      let mut entries = Vec::with_capacity(len as usize);
      for i in 0..len {
        let mut k = ptr::null_mut();
        ck!(sys::napi_get_element(env, names, i, &mut k), "name");
        let mut val = ptr::null_mut();
        ck!(sys::napi_get_property(env, v, k, &mut val), "property");
        let key = read_string(env, k, arena)?;
        entries.push((key, read_arg(env, val, arena, depth + 1)?));
      }
      RawArg::Object(entries)
    }
    napi_symbol => RawArg::Other("symbol"),
    napi_function => RawArg::Other("function"),
    napi_bigint => RawArg::Other("bigint"),
    _ => RawArg::Other("external"),
  })
}

/// Reads the `n` arguments of one op, `array[start..start + n]`, into `raw`
/// (strings into `arena`). `false` when one could not be read (a throwing
/// getter, a revoked Proxy): its exception is cleared, and the op is refused.
unsafe fn read_op_args(
  env: sys::napi_env,
  array: sys::napi_value,
  start: u32,
  n: u32,
  arena: &mut Vec<u8>,
  raw: &mut Vec<RawArg>,
) -> NapiResult<bool> {
  arena.clear();
  raw.clear();
  for j in 0..n {
    let mut v = ptr::null_mut();
    ck!(
      sys::napi_get_element(env, array, start + j, &mut v),
      "argument"
    );
    match read_arg(env, v, arena, 0) {
      Ok(a) => raw.push(a),
      Err(_) => {
        let mut exception = ptr::null_mut();
        sys::napi_get_and_clear_last_exception(env, &mut exception);
        return Ok(false);
      }
    }
  }
  Ok(true)
}

// ---- making JS values ------------------------------------------------------

unsafe fn js_string(env: sys::napi_env, b: &[u8]) -> NapiResult<sys::napi_value> {
  let mut out = ptr::null_mut();
  // ASCII (most keys and values) is the same bytes in Latin-1: V8 then copies
  // instead of decoding UTF-8. `is_ascii` checks a word at a time.
  if b.is_ascii() {
    ck!(
      sys::napi_create_string_latin1(env, b.as_ptr() as *const _, b.len() as isize, &mut out),
      "create string"
    );
  } else {
    ck!(
      sys::napi_create_string_utf8(env, b.as_ptr() as *const _, b.len() as isize, &mut out),
      "create string"
    );
  }
  Ok(out)
}

unsafe fn js_number(env: sys::napi_env, n: f64) -> NapiResult<sys::napi_value> {
  let mut out = ptr::null_mut();
  ck!(sys::napi_create_double(env, n, &mut out), "create number");
  Ok(out)
}

unsafe fn js_bool(env: sys::napi_env, b: bool) -> NapiResult<sys::napi_value> {
  let mut out = ptr::null_mut();
  ck!(sys::napi_get_boolean(env, b, &mut out), "boolean");
  Ok(out)
}

unsafe fn js_null(env: sys::napi_env) -> NapiResult<sys::napi_value> {
  let mut out = ptr::null_mut();
  ck!(sys::napi_get_null(env, &mut out), "null");
  Ok(out)
}

unsafe fn js_undefined(env: sys::napi_env) -> NapiResult<sys::napi_value> {
  let mut out = ptr::null_mut();
  ck!(sys::napi_get_undefined(env, &mut out), "undefined");
  Ok(out)
}

unsafe extern "C" fn drop_bytes(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
  drop(Box::from_raw(hint as *mut Vec<u8>));
}

unsafe fn js_buffer(env: sys::napi_env, b: Vec<u8>) -> NapiResult<sys::napi_value> {
  let mut out = ptr::null_mut();
  if b.len() >= ZERO_COPY_MIN {
    // Large values: JS gets the bytes where the reply parser put them.
    let data = b.as_ptr() as *mut c_void;
    let len = b.len();
    let hint = Box::into_raw(Box::new(b)) as *mut c_void;
    let status = sys::napi_create_external_buffer(env, len, data, Some(drop_bytes), hint, &mut out);
    if status == sys::Status::napi_ok {
      return Ok(out);
    }
    // Runtimes that forbid external buffers: fall back to a copy.
    let b = *Box::from_raw(hint as *mut Vec<u8>);
    return js_buffer_copy(env, &b);
  }
  js_buffer_copy(env, &b)
}

unsafe fn js_buffer_copy(env: sys::napi_env, b: &[u8]) -> NapiResult<sys::napi_value> {
  let mut out = ptr::null_mut();
  let mut data = ptr::null_mut();
  ck!(
    sys::napi_create_buffer_copy(
      env,
      b.len(),
      b.as_ptr() as *const c_void,
      &mut data,
      &mut out
    ),
    "create buffer"
  );
  Ok(out)
}

unsafe fn js_array(env: sys::napi_env, len: usize) -> NapiResult<sys::napi_value> {
  let mut out = ptr::null_mut();
  ck!(
    sys::napi_create_array_with_length(env, len, &mut out),
    "array"
  );
  Ok(out)
}

unsafe fn set_element(
  env: sys::napi_env,
  arr: sys::napi_value,
  i: usize,
  v: sys::napi_value,
) -> NapiResult<()> {
  ck!(sys::napi_set_element(env, arr, i as u32, v), "set element");
  Ok(())
}

/// The JS function `ARRAY_OF_SOURCE` compiles to, made once per client.
const ARRAY_OF_SOURCE: &[u8] = b"(function (...values) { return values })";
/// From this many values up, an array is made by one call of that function:
/// V8 fills a rest parameter natively, where `napi_set_element` takes a
/// generic slow path per element (~850 instructions each, callgrind).
const ARRAY_BY_CALL_MIN: usize = 4;
/// Up to this many (arguments go on the stack).
const ARRAY_BY_CALL_MAX: usize = 8192;

/// A JS array of `values`, through `array_of` (the function of
/// `ARRAY_OF_SOURCE`, or null) when there are enough of them.
unsafe fn js_array_of(
  env: sys::napi_env,
  array_of: sys::napi_value,
  values: &[sys::napi_value],
) -> NapiResult<sys::napi_value> {
  if !array_of.is_null() && (ARRAY_BY_CALL_MIN..=ARRAY_BY_CALL_MAX).contains(&values.len()) {
    let this = js_undefined(env)?;
    let mut out = ptr::null_mut();
    ck!(
      sys::napi_call_function(env, this, array_of, values.len(), values.as_ptr(), &mut out),
      "array"
    );
    return Ok(out);
  }
  let arr = js_array(env, values.len())?;
  for (i, v) in values.iter().enumerate() {
    set_element(env, arr, i, *v)?;
  }
  Ok(arr)
}

/// Why a reply could not be given the asked-for shape.
enum Convert {
  Server(redis::ServerError),
  Unexpected(&'static str),
  Napi(#[allow(dead_code)] napi::Error),
}

impl From<napi::Error> for Convert {
  fn from(e: napi::Error) -> Self {
    Convert::Napi(e)
  }
}

fn text(r: &Value) -> Option<&[u8]> {
  match r {
    Value::BulkString(b) => Some(b),
    Value::SimpleString(s) => Some(s.as_bytes()),
    Value::Okay => Some(b"OK"),
    Value::VerbatimString { text, .. } => Some(text.as_bytes()),
    Value::BigNumber(b) => Some(b),
    _ => None,
  }
}

/// `obj[key] = val`, where a key named `__proto__` becomes an own property
/// (assigning it would replace the object's prototype and lose the field).
unsafe fn set_field(
  env: sys::napi_env,
  obj: sys::napi_value,
  key: &[u8],
  val: sys::napi_value,
) -> NapiResult<()> {
  let k = js_string(env, key)?;
  if key == b"__proto__" {
    let desc = sys::napi_property_descriptor {
      utf8name: ptr::null(),
      name: k,
      method: None,
      getter: None,
      setter: None,
      value: val,
      attributes: sys::PropertyAttributes::writable
        | sys::PropertyAttributes::enumerable
        | sys::PropertyAttributes::configurable,
      data: ptr::null_mut(),
    };
    ck!(
      sys::napi_define_properties(env, obj, 1, &desc),
      "define property"
    );
  } else {
    ck!(sys::napi_set_property(env, obj, k, val), "set property");
  }
  Ok(())
}

/// A RESP3 reply as RESP2 would have given it (the cluster connection speaks
/// RESP3 to hear about lost node connections; `command()` answers the same
/// on every kind of client): maps become flat arrays, doubles strings,
/// booleans 1/0.
fn resp2_view(v: Value) -> Value {
  match v {
    // XREAD / XREADGROUP (stream → entries) were an array of [name, entries]
    // pairs in RESP2; HGETALL, CONFIG GET, XINFO … a flat list.
    Value::Map(pairs)
      if !pairs.is_empty() && pairs.iter().all(|(_, v)| matches!(v, Value::Array(_))) =>
    {
      Value::Array(
        pairs
          .into_iter()
          .map(|(k, v)| Value::Array(vec![resp2_view(k), resp2_view(v)]))
          .collect(),
      )
    }
    Value::Map(pairs) => Value::Array(
      pairs
        .into_iter()
        .flat_map(|(k, v)| [resp2_view(k), resp2_view(v)])
        .collect(),
    ),
    Value::Double(d) => Value::BulkString(redis_double(d).into_bytes()),
    Value::Boolean(b) => Value::Int(b as i64),
    Value::Set(items) => Value::Array(items.into_iter().map(resp2_view).collect()),
    Value::Array(items) => Value::Array(items.into_iter().map(resp2_view).collect()),
    other => other,
  }
}

/// A double as Redis 7.0 writes it (`addReplyDouble`: "inf", "-inf", else C's
/// `%.17g`), so that `ZSCORE` answers "0.10000000000000001" on a cluster too.
/// (Redis 7.2 writes the shortest form that reads back the same, "0.1".)
fn redis_double(d: f64) -> String {
  if d.is_infinite() {
    return if d > 0.0 { "inf" } else { "-inf" }.to_string();
  }
  // 17 significant digits; %g picks fixed or exponent notation by the exponent.
  let sci = format!("{d:.16e}");
  let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
  let exp: i32 = exp.parse().unwrap_or(0);
  let trim = |s: &str| -> String {
    if s.contains('.') {
      s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
      s.to_string()
    }
  };
  if (-4..17).contains(&exp) {
    trim(&format!("{d:.*}", (16 - exp) as usize))
  } else {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
  }
}

#[cfg(test)]
#[test]
fn doubles_read_as_redis_7_0_writes_them() {
  // Expected: C's printf("%.17g").
  for (d, text) in [
    (0.1, "0.10000000000000001"),
    (1.0, "1"),
    (2.5, "2.5"),
    (1e20, "1e+20"),
    (-1e-5, "-1.0000000000000001e-05"),
    (0.0001, "0.0001"),
    (1e16, "10000000000000000"),
    (1e17, "1e+17"),
    (0.0, "0"),
    (-0.0, "-0"),
    (3e-310, "2.9999999999999908e-310"),
    (f64::MAX, "1.7976931348623157e+308"),
    (12345.678, "12345.678"),
    (f64::NEG_INFINITY, "-inf"),
  ] {
    assert_eq!(redis_double(d), text, "{d:e}");
  }
}

/// Generic conversion for `command()`: text that is valid UTF-8 becomes a
/// string, other bytes a Buffer; RESP3 maps become objects.
unsafe fn raw_to_js(
  env: sys::napi_env,
  array_of: sys::napi_value,
  r: Value,
  resp2: bool,
) -> std::result::Result<sys::napi_value, Convert> {
  let r = if resp2 { resp2_view(r) } else { r };
  Ok(match r {
    Value::Nil => js_null(env)?,
    Value::Okay => js_string(env, b"OK")?,
    Value::SimpleString(s) => js_string(env, s.as_bytes())?,
    Value::VerbatimString { text, .. } => js_string(env, text.as_bytes())?,
    Value::BigNumber(b) => js_string(env, &b)?,
    Value::BulkString(b) => match std::str::from_utf8(&b) {
      Ok(_) => js_string(env, &b)?,
      Err(_) => js_buffer(env, b)?,
    },
    Value::ServerError(e) => return Err(Convert::Server(e)),
    Value::Int(n) => js_number(env, n as f64)?,
    Value::Double(d) => js_number(env, d)?,
    Value::Boolean(b) => js_bool(env, b)?,
    Value::Attribute { data, .. } => raw_to_js(env, array_of, *data, resp2)?,
    Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => {
      let mut values = Vec::with_capacity(items.len());
      for it in items {
        values.push(match raw_to_js(env, array_of, it, resp2) {
          Ok(v) => v,
          // An error inside an array (EXEC) is a value, not a rejection.
          Err(Convert::Server(e)) => {
            js_string(env, crate::engine::connect::server_text(&e).as_bytes())?
          }
          Err(other) => return Err(other),
        });
      }
      js_array_of(env, array_of, &values)?
    }
    Value::Map(pairs) => {
      let mut obj = ptr::null_mut();
      ck!(sys::napi_create_object(env, &mut obj), "object");
      for (k, v) in pairs {
        let val = match raw_to_js(env, array_of, v, resp2) {
          Ok(v) => v,
          Err(Convert::Server(e)) => {
            js_string(env, crate::engine::connect::server_text(&e).as_bytes())?
          }
          Err(other) => return Err(other),
        };
        match text(&k) {
          Some(t) => set_field(env, obj, t, val)?,
          None => {
            let key = raw_to_js(env, array_of, k, resp2)?;
            ck!(sys::napi_set_property(env, obj, key, val), "set property");
          }
        }
      }
      obj
    }
    _ => return Err(Convert::Unexpected("a reply type this package knows")),
  })
}

unsafe fn reply_to_js(
  env: sys::napi_env,
  array_of: sys::napi_value,
  shape: Shape,
  reply: Value,
  prefix: &[u8],
  resp2: bool,
) -> std::result::Result<sys::napi_value, Convert> {
  if let Value::ServerError(e) = reply {
    return Err(Convert::Server(e));
  }
  Ok(match (shape, reply) {
    (Shape::Raw, r) => raw_to_js(env, array_of, r, resp2)?,
    (Shape::Void, _) => js_undefined(env)?,
    (Shape::Str | Shape::Buf, Value::Nil) => js_null(env)?,
    (Shape::Buf, Value::BulkString(b)) => js_buffer(env, b)?,
    (Shape::Str | Shape::Buf, r) => {
      let t = text(&r).ok_or(Convert::Unexpected("a string"))?;
      if shape == Shape::Str {
        js_string(env, t)?
      } else {
        js_buffer_copy(env, t)?
      }
    }
    (Shape::Int, Value::Int(n)) => js_number(env, n as f64)?,
    (Shape::Bool, Value::Nil | Value::Int(0) | Value::Boolean(false)) => js_bool(env, false)?,
    (Shape::Bool, Value::Okay | Value::SimpleString(_) | Value::Int(1) | Value::Boolean(true)) => {
      js_bool(env, true)?
    }
    (Shape::StrArray, Value::Array(items) | Value::Set(items)) => {
      let mut values = Vec::with_capacity(items.len());
      for it in items {
        values.push(match it {
          Value::Nil => js_null(env)?,
          other => js_string(env, text(&other).ok_or(Convert::Unexpected("strings"))?)?,
        });
      }
      js_array_of(env, array_of, &values)?
    }
    (Shape::Map, Value::Map(pairs)) => {
      // RESP3 (client-side caching on): HGETALL answers a map.
      let mut obj = ptr::null_mut();
      ck!(sys::napi_create_object(env, &mut obj), "object");
      for (k, v) in pairs {
        let (Some(k), Some(v)) = (text(&k), text(&v)) else {
          return Err(Convert::Unexpected("field/value pairs"));
        };
        set_field(env, obj, k, js_string(env, v)?)?;
      }
      obj
    }
    (Shape::Map, Value::Array(items)) => {
      let mut obj = ptr::null_mut();
      ck!(sys::napi_create_object(env, &mut obj), "object");
      for kv in items.chunks(2) {
        let (Some(k), Some(v)) = (kv.first().and_then(text), kv.get(1).and_then(text)) else {
          return Err(Convert::Unexpected("field/value pairs"));
        };
        set_field(env, obj, k, js_string(env, v)?)?;
      }
      obj
    }
    (Shape::Scan, Value::Array(mut parts)) if parts.len() == 2 => {
      let keys = match parts.pop() {
        Some(Value::Array(keys)) | Some(Value::Set(keys)) => keys,
        _ => return Err(Convert::Unexpected("a key list")),
      };
      let cursor = text(&parts[0]).ok_or(Convert::Unexpected("a cursor"))?;
      let out = js_array(env, 2)?;
      set_element(env, out, 0, js_string(env, cursor)?)?;
      let mut values = Vec::with_capacity(keys.len());
      for k in &keys {
        let k = text(k).ok_or(Convert::Unexpected("keys"))?;
        values.push(js_string(env, k.strip_prefix(prefix).unwrap_or(k))?);
      }
      set_element(env, out, 1, js_array_of(env, array_of, &values)?)?;
      out
    }
    _ => return Err(Convert::Unexpected("the reply type this command returns")),
  })
}

/// `[code, message, serverCode?]` for a rejection: structured, so that the
/// TypeScript side never parses a message.
unsafe fn js_error(env: sys::napi_env, e: &Error) -> NapiResult<sys::napi_value> {
  let arr = js_array(env, 3)?;
  set_element(env, arr, 0, js_string(env, e.code.as_str().as_bytes())?)?;
  set_element(env, arr, 1, js_string(env, e.message.as_bytes())?)?;
  if let Some(sc) = &e.server_code {
    set_element(env, arr, 2, js_string(env, sc.as_bytes())?)?;
  }
  Ok(arr)
}

// ---- the client ---------------------------------------------------------------

/// State only the JS thread touches; owned by the thread-safe function and
/// freed by its finalizer.
struct JsSide {
  outbox: Arc<Outbox>,
  stats: Arc<Stats>,
  prefix: Vec<u8>,
  /// Replies are shown as RESP2 would give them (see `resp2_view`).
  resp2: bool,
  secret: Option<String>,
  tsfn: Cell<sys::napi_threadsafe_function>,
  /// The JS callback, for synchronous drains.
  callback: Cell<sys::napi_ref>,
  /// The function of `ARRAY_OF_SOURCE`.
  array_of: Cell<sys::napi_ref>,
  /// Replies and events still owed to JS; the event loop is held open while > 0.
  owed: Cell<usize>,
  referenced: Cell<bool>,
  released: Arc<AtomicBool>,
  /// The shapes of the commands inside each transaction in flight, by id.
  groups: RefCell<std::collections::HashMap<u32, Vec<Shape>>>,
}

impl JsSide {
  fn owe(&self, env: sys::napi_env, n: usize) {
    self.owed.set(self.owed.get() + n);
    self.update_ref(env);
  }

  fn paid(&self, env: sys::napi_env, n: usize) {
    self.owed.set(self.owed.get().saturating_sub(n));
    self.update_ref(env);
  }

  /// A pending reply keeps Node alive (as a socket would); an idle client does not.
  fn update_ref(&self, env: sys::napi_env) {
    hold_event_loop(
      env,
      self.tsfn.get(),
      &self.referenced,
      &self.released,
      self.owed.get() > 0,
    );
  }
}

/// Refs (`want`) or unrefs a thread-safe function that is not released yet:
/// a ref'd one keeps Node's event loop alive. `referenced` is its state.
fn hold_event_loop(
  env: sys::napi_env,
  tsfn: sys::napi_threadsafe_function,
  referenced: &Cell<bool>,
  released: &AtomicBool,
  want: bool,
) {
  if want != referenced.get() && !released.load(Ordering::Acquire) {
    unsafe {
      if want {
        sys::napi_ref_threadsafe_function(env, tsfn);
      } else {
        sys::napi_unref_threadsafe_function(env, tsfn);
      }
    }
    referenced.set(want);
  }
}

/// Runs when the thread-safe function is destroyed: after our release, or
/// when the environment is torn down (process exit, worker end). The I/O
/// thread's doorbell checks `released` and stops calling it.
unsafe extern "C" fn finalize_side(env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
  let side = Box::from_raw(data as *mut JsSide);
  side.released.store(true, Ordering::Release);
  if !env.is_null() {
    for r in [side.callback.get(), side.array_of.get()] {
      if !r.is_null() {
        sys::napi_delete_reference(env, r);
      }
    }
  }
}

unsafe extern "C" fn drop_epoch(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
  drop(Box::from_raw(
    hint as *mut Arc<std::sync::atomic::AtomicU32>,
  ));
}

/// Runs on the JS thread when the doorbell rang: drains the outbox into one
/// call of the JS callback `(replies, events)`.
unsafe extern "C" fn deliver(
  env: sys::napi_env,
  callback: sys::napi_value,
  context: *mut c_void,
  _data: *mut c_void,
) {
  if env.is_null() || context.is_null() {
    return;
  }
  let side = &*(context as *const JsSide);
  on_event_loop("replies", || drain(env, callback, side, false));
}

/// Runs `f`, called by Node's event loop: a panic in it must not unwind into
/// Node, and is reported instead.
fn on_event_loop(what: &str, f: impl FnOnce()) {
  if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
    eprintln!(
      "@atlas-erp/redis: internal error while delivering {what}: {}",
      panic_message(&p)
    );
  }
}

/// The text of a caught panic.
pub fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
  p.downcast_ref::<&str>()
    .map(|s| s.to_string())
    .or_else(|| p.downcast_ref::<String>().cloned())
    .unwrap_or_else(|| "panic".into())
}

/// How many of `n` replies read together go to JS in one callback.
///
/// Each callback ends with the microtasks its replies woke, so the commands
/// those continuations send are written before the next part is handed over:
/// Redis works on them while JS runs the rest, as with a client that writes
/// every call at once. Pairs below 32 replies, halves above: in ADR 0001's
/// A/B this took GET at 10 callers from 0.80× to 1.2× ioredis and at 100
/// callers by 1.6×; more parts cost more than they overlap.
fn delivery_chunk(n: usize) -> usize {
  if n < 32 {
    2
  } else {
    n.div_ceil(2)
  }
}

/// Hands everything queued to the JS callback: from the doorbell, or
/// synchronously when the JS thread saw the cache epoch move.
/// `direct`: called from one of our libuv callbacks (see `deliver_directly`).
unsafe fn drain(env: sys::napi_env, callback: sys::napi_value, side: &JsSide, direct: bool) {
  let mut items = side.outbox.take();
  if items.is_empty() {
    return;
  }
  // Cache and reconnect events were never owed (they come unasked).
  let n = items
    .iter()
    .filter(|c| !matches!(c, Completion::Event(e) if !e.owed()))
    .count();
  let mut closed = false;
  while !items.is_empty() {
    let size = if direct {
      delivery_chunk(items.len())
    } else {
      items.len()
    };
    let rest = items.split_off(size.min(items.len()));
    if let Err(e) = deliver_items(env, callback, side, items, &mut closed, direct) {
      // Nothing sensible can be done on the JS thread but report it.
      eprintln!("@atlas-erp/redis: {e}");
    }
    items = rest;
  }
  side.paid(env, n);
  if closed && !side.released.swap(true, Ordering::AcqRel) {
    sys::napi_release_threadsafe_function(
      side.tsfn.get(),
      sys::ThreadsafeFunctionReleaseMode::release,
    );
  }
}

unsafe fn deliver_items(
  env: sys::napi_env,
  callback: sys::napi_value,
  side: &JsSide,
  items: Vec<Completion>,
  closed: &mut bool,
  direct: bool,
) -> NapiResult<()> {
  let n = items
    .iter()
    .filter(|c| !matches!(c, Completion::Event(_)))
    .count();
  let mut array_of = ptr::null_mut();
  if !side.array_of.get().is_null() {
    ck!(
      sys::napi_get_reference_value(env, side.array_of.get(), &mut array_of),
      "array helper"
    );
  }
  let mut replies = Vec::with_capacity(2 * n);
  let mut events: sys::napi_value = ptr::null_mut();
  let mut errors = 0u64;
  for c in items {
    let (id, value): (i64, sys::napi_value) = match c {
      Completion::Reply {
        id,
        shape: Shape::Group { atomic, .. },
        reply,
      } => {
        let shapes = side.groups.borrow_mut().remove(&id).unwrap_or_default();
        let v = group::to_js(env, array_of, atomic, &shapes, reply, side)?;
        (id as i64, v)
      }
      Completion::Reply { id, shape, reply } => {
        match reply_to_js(env, array_of, shape, reply, &side.prefix, side.resp2) {
          Ok(v) => (id as i64, v),
          Err(Convert::Server(server)) => {
            // NOSCRIPT is answered by re-sending the script's source: not a failure.
            if server.code() != "NOSCRIPT" {
              errors += 1;
            }
            let text = crate::engine::connect::server_text(&server);
            let e = Error::from_server(&text).redact(side.secret.as_deref());
            (-(id as i64) - 1, js_error(env, &e)?)
          }
          Err(Convert::Unexpected(what)) => {
            errors += 1;
            let e = Error::new(
              ErrorCode::Reply,
              format!("the server's reply is not {what}"),
            );
            (-(id as i64) - 1, js_error(env, &e)?)
          }
          Err(Convert::Napi(_)) => {
            // This one reply cannot become a JS value (a string beyond V8's
            // limit, say): it alone rejects; the rest of the burst goes on.
            let mut thrown = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut thrown);
            errors += 1;
            let e = Error::new(
              ErrorCode::Reply,
              "the reply cannot be made into a JavaScript value (a string longer than V8 allows? read it with getBuffer())",
            );
            (-(id as i64) - 1, js_error(env, &e)?)
          }
        }
      }
      Completion::Error { id, error } => {
        errors += 1;
        if !side.groups.borrow().is_empty() {
          side.groups.borrow_mut().remove(&id);
        }
        (
          -(id as i64) - 1,
          js_error(env, &error.redact(side.secret.as_deref()))?,
        )
      }
      Completion::Event(ev) => {
        if events.is_null() {
          events = js_array(env, 0)?;
        }
        let v = match ev {
          Event::Ready => js_string(env, b"ready")?,
          Event::Closed => {
            *closed = true;
            js_string(env, b"closed")?
          }
          Event::ConnectFailed(e) => {
            *closed = true;
            js_error(env, &e.redact(side.secret.as_deref()))?
          }
          Event::CacheReset => js_string(env, b"cacheReset")?,
          Event::Reconnecting(e) => {
            let arr = js_array(env, 2)?;
            set_element(env, arr, 0, js_string(env, b"reconnecting")?)?;
            set_element(
              env,
              arr,
              1,
              js_error(env, &e.redact(side.secret.as_deref()))?,
            )?;
            arr
          }
          // JS tells a first `ready` from a later one by its own state.
          Event::Reconnected => js_string(env, b"ready")?,
          Event::Invalidate(keys) => {
            let arr = js_array(env, 2)?;
            set_element(env, arr, 0, js_string(env, b"invalidate")?)?;
            let list = match keys {
              None => js_null(env)?,
              Some(keys) => {
                let mut values = Vec::with_capacity(keys.len());
                for k in &keys {
                  values.push(js_string(
                    env,
                    k.strip_prefix(side.prefix.as_slice()).unwrap_or(k),
                  )?);
                }
                js_array_of(env, array_of, &values)?
              }
            };
            set_element(env, arr, 1, list)?;
            arr
          }
        };
        let mut len = 0u32;
        ck!(sys::napi_get_array_length(env, events, &mut len), "length");
        set_element(env, events, len as usize, v)?;
        continue;
      }
    };
    replies.push(js_number(env, id as f64)?);
    replies.push(value);
  }
  let replies = js_array_of(env, array_of, &replies)?;
  if errors > 0 {
    side.stats.errors.fetch_add(errors, Ordering::Relaxed);
  }
  let mut global = ptr::null_mut();
  ck!(sys::napi_get_global(env, &mut global), "global");
  let ev = if events.is_null() {
    js_undefined(env)?
  } else {
    events
  };
  let argv = [replies, ev];
  let mut result = ptr::null_mut();
  if !direct {
    // A throwing callback is the TS layer's bug; N-API reports it as uncaught.
    sys::napi_call_function(env, global, callback, 2, argv.as_ptr(), &mut result);
    return Ok(());
  }
  // From a libuv callback: through node's MakeCallback, so that promise
  // reactions and nextTicks run when it returns, as after any I/O callback.
  sys::napi_make_callback(
    env,
    ptr::null_mut(),
    global,
    callback,
    2,
    argv.as_ptr(),
    &mut result,
  );
  let mut pending = false;
  sys::napi_is_exception_pending(env, &mut pending);
  if pending {
    let mut thrown = ptr::null_mut();
    sys::napi_get_and_clear_last_exception(env, &mut thrown);
    sys::napi_fatal_exception(env, thrown);
  }
  Ok(())
}

/// A client as the `#[napi]` class holds it.
pub struct Client {
  side: *const JsSide,
  released: Arc<AtomicBool>,
  conn: Connection,
  stats: Arc<Stats>,
  prefix: Vec<u8>,
  arena: RefCell<Vec<u8>>,
  closing: Cell<bool>,
}

/// What an outbox's doorbell rings: the client's thread-safe function, or,
/// inside one of our libuv callbacks on its thread, a direct delivery.
struct Bell {
  tsfn: sys::napi_threadsafe_function,
  env: sys::napi_env,
  side: *const JsSide,
}
// SAFETY: other threads only call the thread-safe function (allowed anywhere);
// `env` and `side` are used on the JS thread (`LOOP_RINGS` is thread-local).
unsafe impl Send for Bell {}
unsafe impl Sync for Bell {}

/// An outbox rung inside one of our libuv callbacks: delivered when it ends.
struct Deferred {
  bell: *const Bell,
  released: Arc<AtomicBool>,
  /// Keeps `bell` alive.
  _slot: Arc<std::sync::OnceLock<Bell>>,
}

thread_local! {
  /// While one of our libuv callbacks runs (`deliver_directly`): outboxes
  /// rung on this thread, delivered directly when it ends instead of through
  /// their thread-safe function, which would cost another turn of the loop.
  static LOOP_RINGS: RefCell<Option<Vec<Deferred>>> = const { RefCell::new(None) };
}

/// Calls the thread-safe function of `bell`, unless it was released.
fn ring_tsfn(bell: &Bell, released: &AtomicBool) {
  call_tsfn(bell.tsfn, released);
}

/// Calls `tsfn` (from any thread), unless `released` says it is gone.
fn call_tsfn(tsfn: sys::napi_threadsafe_function, released: &AtomicBool) {
  if !released.load(Ordering::Acquire) {
    // SAFETY: not released, so the function is alive; callable from any thread.
    unsafe {
      sys::napi_call_threadsafe_function(
        tsfn,
        ptr::null_mut(),
        sys::ThreadsafeFunctionCallMode::nonblocking,
      );
    }
  }
}

struct SendPtr(sys::napi_threadsafe_function);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// An outbox's doorbell: it calls the thread-safe function put in the returned
/// slot (once made), until `released` says that function is gone.
fn doorbell(
  released: &Arc<AtomicBool>,
) -> (
  Arc<std::sync::OnceLock<SendPtr>>,
  Box<dyn Fn() + Send + Sync>,
) {
  let slot = Arc::new(std::sync::OnceLock::<SendPtr>::new());
  let (bell, released) = (slot.clone(), released.clone());
  let ring = Box::new(move || {
    if let Some(t) = bell.get() {
      call_tsfn(t.0, &released);
    }
  });
  (slot, ring)
}

/// A client's doorbell: it rings the `Bell` put in the returned slot (once
/// made), until `released` says its thread-safe function is gone.
fn client_doorbell(
  released: &Arc<AtomicBool>,
) -> (Arc<std::sync::OnceLock<Bell>>, Box<dyn Fn() + Send + Sync>) {
  let slot = Arc::new(std::sync::OnceLock::<Bell>::new());
  let (bell, released) = (slot.clone(), released.clone());
  let ring = Box::new(move || {
    if let Some(b) = bell.get() {
      let deferred = LOOP_RINGS.with_borrow_mut(|rings| match rings {
        Some(list) => {
          list.push(Deferred {
            bell: b,
            released: released.clone(),
            _slot: bell.clone(),
          });
          true
        }
        None => false,
      });
      if !deferred {
        ring_tsfn(b, &released);
      }
    }
  });
  (slot, ring)
}

/// Runs `f` (one of our libuv callbacks: `engine::uv`); the replies it
/// completes are handed to JS when it ends, in this same turn of the event
/// loop, as a client written in JS gets them.
pub fn deliver_directly(f: impl FnOnce()) {
  let nested = LOOP_RINGS.with_borrow_mut(|r| {
    let nested = r.is_some();
    r.get_or_insert_with(Vec::new);
    nested
  });
  f();
  if nested {
    return;
  }
  // JS may send more from the callback, and those replies may be read at
  // once: a few rounds, then the rest goes through the thread-safe functions.
  for _ in 0..16 {
    let list = LOOP_RINGS.with_borrow_mut(|r| r.as_mut().map(std::mem::take).unwrap_or_default());
    if list.is_empty() {
      break;
    }
    let mut seen = Vec::with_capacity(list.len());
    for d in list {
      if !seen.contains(&d.bell) {
        seen.push(d.bell);
        // SAFETY: on the bell's JS thread (the list is thread-local), `bell` kept alive by `_slot`.
        unsafe { deliver_deferred(&d) };
      }
    }
  }
  for d in LOOP_RINGS.take().unwrap_or_default() {
    // SAFETY: `_slot` keeps the bell alive.
    ring_tsfn(unsafe { &*d.bell }, &d.released);
  }
}

/// Delivers a deferred ring's outbox now (see `deliver_directly`).
///
/// # Safety
/// On the bell's JS thread, outside any JS call, with `d.bell` alive.
unsafe fn deliver_deferred(d: &Deferred) {
  if d.released.load(Ordering::Acquire) {
    return;
  }
  let bell = &*d.bell;
  // SAFETY: not released: the side is alive (freed only by the tsfn finalizer).
  let side = &*bell.side;
  let env = bell.env;
  let mut scope = ptr::null_mut();
  if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
    ring_tsfn(bell, &d.released);
    return;
  }
  let mut cb = ptr::null_mut();
  if sys::napi_get_reference_value(env, side.callback.get(), &mut cb) == sys::Status::napi_ok
    && !cb.is_null()
  {
    on_event_loop("replies", || drain(env, cb, side, true));
  } else {
    ring_tsfn(bell, &d.released);
  }
  sys::napi_close_handle_scope(env, scope);
}

/// A thread-safe function over `callback` whose calls run `call_js` with
/// `context`, which it owns from then on (`finalize` frees it); freed here if
/// the function cannot be made.
///
/// # Safety
/// `env` and `callback` must belong to the current napi call, on the JS thread;
/// `context` must come from `Box::into_raw`.
unsafe fn threadsafe_function<T>(
  env: sys::napi_env,
  callback: sys::napi_value,
  name: &[u8],
  context: *mut T,
  finalize: sys::napi_finalize,
  call_js: sys::napi_threadsafe_function_call_js,
) -> NapiResult<sys::napi_threadsafe_function> {
  let name = match js_string(env, name) {
    Ok(n) => n,
    Err(e) => {
      drop(Box::from_raw(context));
      return Err(e);
    }
  };
  let context = context as *mut c_void;
  let mut tsfn = ptr::null_mut();
  let status = sys::napi_create_threadsafe_function(
    env,
    callback,
    ptr::null_mut(),
    name,
    0,
    1,
    context,
    finalize,
    context,
    call_js,
    &mut tsfn,
  );
  if status != sys::Status::napi_ok {
    drop(Box::from_raw(context as *mut T));
    return Err(napi_err("create threadsafe function"));
  }
  Ok(tsfn)
}

/// A reference to the function of `ARRAY_OF_SOURCE`; null should it not
/// compile (arrays are then made element by element).
///
/// # Safety
/// `env` must be the napi env of the current call, on the JS thread.
unsafe fn array_of_ref(env: sys::napi_env) -> NapiResult<sys::napi_ref> {
  let mut array_of = ptr::null_mut();
  let mut r = ptr::null_mut();
  if sys::napi_run_script(env, js_string(env, ARRAY_OF_SOURCE)?, &mut array_of)
    == sys::Status::napi_ok
  {
    ck!(
      sys::napi_create_reference(env, array_of, 1, &mut r),
      "array helper reference"
    );
  } else {
    let mut thrown = ptr::null_mut();
    sys::napi_get_and_clear_last_exception(env, &mut thrown);
  }
  Ok(r)
}

/// The event loop of `env`'s thread, shared by its clients (`engine::uv`);
/// torn down with the environment. `None` should libuv not be reachable.
///
/// # Safety
/// `env` must be the napi env of the current call, on the JS thread.
unsafe fn event_loop(env: sys::napi_env) -> Option<Arc<crate::engine::uv::EventLoop>> {
  let mut raw = ptr::null_mut();
  if sys::napi_get_uv_event_loop(env, &mut raw) != sys::Status::napi_ok || raw.is_null() {
    return None;
  }
  let raw = raw as *mut c_void;
  let (home, new) = crate::engine::uv::EventLoop::of(raw)?;
  if new && sys::napi_add_env_cleanup_hook(env, Some(teardown_loop), raw) != sys::Status::napi_ok {
    // Without the hook its handles would outlive the environment.
    home.teardown();
    return None;
  }
  Some(home)
}

/// The environment is going: its event loop's handles close.
unsafe extern "C" fn teardown_loop(raw: *mut c_void) {
  on_event_loop("the end of the environment", || {
    // SAFETY: cleanup hooks run on the environment's own thread.
    unsafe { crate::engine::uv::EventLoop::teardown_loop(raw) }
  });
}

impl Client {
  /// Creates the client and starts connecting; `callback(replies, events)`
  /// receives everything that comes back.
  ///
  /// # Safety
  /// `env` and `callback` must be the live napi env and a JS function of the
  /// current call, on the JS thread.
  pub unsafe fn open(
    env: sys::napi_env,
    config: Config,
    callback: sys::napi_value,
  ) -> NapiResult<Client> {
    let stats = Arc::new(Stats::default());
    let released = Arc::new(AtomicBool::new(false));
    let (tsfn_slot, bell) = client_doorbell(&released);
    let outbox = Arc::new(Outbox::new(bell));
    let side = Box::into_raw(Box::new(JsSide {
      outbox: outbox.clone(),
      stats: stats.clone(),
      prefix: config.key_prefix.clone(),
      resp2: config.cluster.is_some() && config.client_cache.is_none(),
      secret: config.password_str().map(str::to_string),
      tsfn: Cell::new(ptr::null_mut()),
      callback: Cell::new(ptr::null_mut()),
      array_of: Cell::new(ptr::null_mut()),
      owed: Cell::new(0),
      referenced: Cell::new(true),
      released: released.clone(),
      groups: RefCell::new(std::collections::HashMap::new()),
    }));
    let tsfn = threadsafe_function(
      env,
      callback,
      b"atlas-redis",
      side,
      Some(finalize_side),
      Some(deliver),
    )?;
    (*side).tsfn.set(tsfn);
    let mut cb_ref = ptr::null_mut();
    ck!(
      sys::napi_create_reference(env, callback, 1, &mut cb_ref),
      "callback reference"
    );
    (*side).callback.set(cb_ref);
    (*side).array_of.set(array_of_ref(env)?);
    let _ = tsfn_slot.set(Bell { tsfn, env, side });
    // The pending connect keeps the process alive until Ready/ConnectFailed.
    (*side).owe(env, 1);
    let prefix = config.key_prefix.clone();
    let home = event_loop(env);
    let conn = Connection::start(config, outbox, stats.clone(), home);
    Ok(Client {
      side,
      released,
      conn,
      stats,
      prefix,
      arena: RefCell::new(Vec::with_capacity(8192)),
      closing: Cell::new(false),
    })
  }

  /// The JS-side state, unless the thread-safe function (and with it that
  /// state) was already released.
  fn side(&self) -> Option<&JsSide> {
    if self.released.load(Ordering::Acquire) {
      return None;
    }
    // SAFETY: freed only by the tsfn finalizer, which runs after `released`
    // was set on this same (JS) thread.
    Some(unsafe { &*self.side })
  }

  /// Encodes the batch `[op, ...args, op, ...args]` whose first command has id
  /// `first_id`, sends what is valid, and returns `[index, code, message, …]`
  /// for commands refused before sending (or undefined when none were).
  ///
  /// # Safety
  /// `env` and the values must belong to the current napi call, on the JS thread.
  pub unsafe fn submit(
    &self,
    env: sys::napi_env,
    queue: sys::napi_value,
    first_id: u32,
  ) -> NapiResult<sys::napi_value> {
    let mut len = 0u32;
    ck!(
      sys::napi_get_array_length(env, queue, &mut len),
      "queue length"
    );
    let mut cmds = Vec::with_capacity(len as usize / 2);
    let mut entries = Vec::with_capacity(len as usize / 2);
    let mut refused: Vec<(u32, Error)> = Vec::new();
    let mut groups: Vec<(u32, Vec<Shape>)> = Vec::new();
    let mut arena = self.arena.borrow_mut();
    let mut raw = Vec::with_capacity(8);
    let mut i = 0u32;
    let mut index = 0u32;
    while i < len {
      let mut v = ptr::null_mut();
      ck!(sys::napi_get_element(env, queue, i, &mut v), "op");
      let mut code = 0u32;
      ck!(sys::napi_get_value_uint32(env, v, &mut code), "op code");
      let op = Op::from_code(code).ok_or_else(|| napi_err("unknown op code"))?;
      let n = commands::arity(op) as u32;
      if i + 1 + n > len {
        return Err(napi_err("batch ends inside a command"));
      }
      if op == Op::Transaction {
        // multi()/pipeline(): several commands, all sent or none; `group`
        // reads them (reading them here too would read every argument twice).
        let id = first_id.wrapping_add(index) & ID_MASK;
        match group::encode(env, queue, i + 1, &self.prefix)? {
          Ok((group_cmds, shape, shapes)) => {
            cmds.extend(group_cmds);
            entries.push(Entry { id, shape });
            groups.push((id, shapes));
          }
          Err(e) => refused.push((index, e)),
        }
        i += 1 + n;
        index += 1;
        continue;
      }
      // A throwing getter or a revoked Proxy: this command fails, not its batch.
      if !read_op_args(env, queue, i + 1, n, &mut arena, &mut raw)? {
        refused.push((
          index,
          Error::invalid(format!(
            "{}(): an argument could not be read (a throwing getter or a revoked Proxy?)",
            op.method()
          )),
        ));
        i += 1 + n;
        index += 1;
        continue;
      }
      let args: Vec<Arg> = raw.iter().map(|a| resolve(a, &arena)).collect();
      let id = first_id.wrapping_add(index) & ID_MASK;
      match commands::encode(op, &args, &self.prefix) {
        Ok((cmd, shape)) => {
          cmds.push(cmd);
          entries.push(Entry { id, shape });
        }
        Err(e) => refused.push((index, e)),
      }
      i += 1 + n;
      index += 1;
    }
    drop(arena);
    if !entries.is_empty() {
      let side = self.side().filter(|_| !self.closing.get());
      if let Some(side) = side {
        self
          .stats
          .commands
          .fetch_add(entries.len() as u64, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        side.owe(env, entries.len());
        if !groups.is_empty() {
          side.groups.borrow_mut().extend(groups);
        }
        self.conn.send(Batch {
          cmds,
          entries,
          created: Instant::now(),
        });
      } else {
        for e in &entries {
          refused.push((e.id.wrapping_sub(first_id) & ID_MASK, Error::closed()));
        }
      }
    }
    if refused.is_empty() {
      return js_undefined(env);
    }
    let out = js_array(env, refused.len() * 3)?;
    for (k, (idx, e)) in refused.iter().enumerate() {
      set_element(env, out, 3 * k, js_number(env, *idx as f64)?)?;
      set_element(
        env,
        out,
        3 * k + 1,
        js_string(env, e.code.as_str().as_bytes())?,
      )?;
      set_element(env, out, 3 * k + 2, js_string(env, e.message.as_bytes())?)?;
    }
    Ok(out)
  }

  /// Finishes in-flight work, then disconnects; the `closed` event follows.
  pub fn close(&self, env: sys::napi_env) {
    if self.closing.replace(true) {
      return;
    }
    if let Some(side) = self.side() {
      side.owe(env, 1);
      self.conn.close();
    }
  }

  pub fn stats(&self) -> crate::stats::Snapshot {
    self.stats.snapshot()
  }

  /// `[masters, moved, ask, retries, refreshes]` on a cluster.
  pub fn cluster_counters(&self) -> Option<[u64; 5]> {
    self.conn.cluster_counters()
  }

  /// Delivers whatever is queued right now (the JS thread saw the cache epoch move).
  ///
  /// # Safety
  /// `env` must be the napi env of the current call, on the JS thread.
  pub unsafe fn drain_now(&self, env: sys::napi_env) -> NapiResult<()> {
    let Some(side) = self.side() else {
      return Ok(());
    };
    let mut cb = ptr::null_mut();
    ck!(
      sys::napi_get_reference_value(env, side.callback.get(), &mut cb),
      "callback"
    );
    drain(env, cb, side, false);
    Ok(())
  }

  /// A 4-byte ArrayBuffer over the connection's cache epoch: JS reads it with
  /// a Uint32Array on every cache hit, without crossing into native code.
  ///
  /// # Safety
  /// `env` must be the napi env of the current call, on the JS thread.
  pub unsafe fn cache_epoch_buffer(&self, env: sys::napi_env) -> NapiResult<sys::napi_value> {
    let epoch = Box::new(self.conn.cache_epoch().clone());
    let data = Arc::as_ptr(&epoch) as *mut c_void;
    let mut out = ptr::null_mut();
    ck!(
      sys::napi_create_external_arraybuffer(
        env,
        data,
        4,
        Some(drop_epoch),
        Box::into_raw(epoch) as *mut c_void,
        &mut out
      ),
      "epoch buffer"
    );
    Ok(out)
  }
}
