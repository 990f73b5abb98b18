//! `multi()…exec()` and `pipeline()…exec()` in the bridge: the commands a
//! builder recorded arrive as one `Op::Transaction` whose commands are each
//! checked and encoded like a call of their own; if any is refused, the whole
//! transaction is, and nothing is sent. Sent as one entry (see
//! `Shape::Group`), its replies come back together and are converted here,
//! each with the shape of its own command; an error reply stays in its place
//! as a `[code, message, serverCode]` tuple, never as text.

use std::ptr;

use napi_sys as sys;
use redis::Value;

use super::{
  js_array, js_error, js_null, js_number, js_undefined, napi_err, read_op_args, reply_to_js,
  resolve, set_element, Convert, NapiResult,
};
use crate::commands::{self, Arg, Group, GroupMode, Op, Shape};
use crate::engine::connect::server_text;
use crate::error::{Error, ErrorCode};

/// Reads `queue[at]` (the mode) and `queue[at + 1]` (the commands as a flat
/// `[op, ...args, op, ...args]` array) and encodes them. `Err(Error)` refuses
/// the whole transaction; a failed N-API call is the outer error.
///
/// # Safety
/// `env` and `queue` must belong to the current napi call, on the JS thread.
pub(super) unsafe fn encode(
  env: sys::napi_env,
  queue: sys::napi_value,
  at: u32,
  prefix: &[u8],
) -> NapiResult<Result<Group, Error>> {
  let mut v = ptr::null_mut();
  ck!(sys::napi_get_element(env, queue, at, &mut v), "mode");
  let mut mode = 0f64;
  ck!(sys::napi_get_value_double(env, v, &mut mode), "mode");
  let mode = GroupMode::from_code(mode).ok_or_else(|| napi_err("unknown transaction mode"))?;
  let mut ops = ptr::null_mut();
  ck!(
    sys::napi_get_element(env, queue, at + 1, &mut ops),
    "commands"
  );
  let mut len = 0u32;
  ck!(
    sys::napi_get_array_length(env, ops, &mut len),
    "commands length"
  );
  let mut parts = Vec::new();
  let mut arena = Vec::with_capacity(1024);
  let mut raw = Vec::with_capacity(8);
  let mut i = 0u32;
  while i < len {
    ck!(sys::napi_get_element(env, ops, i, &mut v), "op");
    let mut code = 0u32;
    ck!(sys::napi_get_value_uint32(env, v, &mut code), "op code");
    let op = match Op::from_code(code) {
      Some(op) if op != Op::Transaction => op,
      _ => return Err(napi_err("unknown op code in a transaction")),
    };
    let n = commands::arity(op) as u32;
    if i + 1 + n > len {
      return Err(napi_err("transaction ends inside a command"));
    }
    if !read_op_args(env, ops, i + 1, n, &mut arena, &mut raw)? {
      return Ok(Err(Error::invalid(format!(
        "exec(): an argument of {}() could not be read (a throwing getter or a revoked Proxy?)",
        op.method()
      ))));
    }
    let args: Vec<Arg> = raw.iter().map(|a| resolve(a, &arena)).collect();
    match commands::encode(op, &args, prefix) {
      Ok(part) => parts.push(part),
      Err(e) => {
        return Ok(Err(Error::invalid(format!(
          "exec(): command #{} was refused, nothing was sent: {}",
          parts.len() + 1,
          e.message
        ))))
      }
    }
    i += 1 + n;
  }
  Ok(commands::group(mode, parts))
}

/// The JS value of a group's replies (`Value::Array` of every reply on the wire):
/// - `null`: a transaction that a WATCHed key change aborted (EXEC answered nil);
/// - `[values, errors]`: one value per command, and `errors` undefined or a flat
///   `[index, code, message, serverCode, …]` list of the commands that failed
///   (their place in `values` is undefined);
/// - `[null, errors, abort]`: the server discarded the transaction (EXECABORT:
///   `abort`, a `[code, message, serverCode]` tuple), `errors` says which
///   commands it refused when they were queued.
///
/// # Safety
/// `env` must be the napi env of the current call, on the JS thread.
pub(super) unsafe fn to_js(
  env: sys::napi_env,
  array_of: sys::napi_value,
  atomic: bool,
  shapes: &[Shape],
  reply: Value,
  side: &super::JsSide,
) -> NapiResult<sys::napi_value> {
  let (prefix, resp2, secret) = (side.prefix.as_slice(), side.resp2, side.secret.as_deref());
  let Value::Array(mut replies) = reply else {
    return Err(napi_err("a transaction's replies"));
  };
  let mut errors: Vec<(usize, Error)> = Vec::new();
  let items = if atomic {
    // MULTI, one QUEUED (or an error) per command, EXEC.
    let exec = replies.pop().unwrap_or(Value::Nil);
    match exec {
      Value::Nil => return js_null(env),
      Value::Array(items) => items,
      Value::ServerError(e) => {
        for (i, queued) in replies.into_iter().skip(1).enumerate() {
          if let Value::ServerError(q) = queued {
            errors.push((i, Error::from_server(&server_text(&q)).redact(secret)));
          }
        }
        let abort = Error::from_server(&server_text(&e)).redact(secret);
        let out = js_array(env, 3)?;
        set_element(env, out, 0, js_null(env)?)?;
        set_element(env, out, 1, error_list(env, &errors)?)?;
        set_element(env, out, 2, js_error(env, &abort)?)?;
        return Ok(out);
      }
      _ => return Err(napi_err("EXEC's reply")),
    }
  } else {
    replies
  };
  let values = js_array(env, items.len())?;
  for (i, item) in items.into_iter().enumerate() {
    let shape = shapes.get(i).copied().unwrap_or(Shape::Raw);
    let v = match reply_to_js(env, array_of, shape, item, prefix, resp2) {
      Ok(v) => v,
      Err(Convert::Server(e)) => {
        errors.push((i, Error::from_server(&server_text(&e)).redact(secret)));
        js_undefined(env)?
      }
      Err(Convert::Unexpected(what)) => {
        errors.push((
          i,
          Error::new(
            ErrorCode::Reply,
            format!("the server's reply is not {what}"),
          ),
        ));
        js_undefined(env)?
      }
      Err(Convert::Napi(e)) => return Err(e),
    };
    set_element(env, values, i, v)?;
  }
  let out = js_array(env, 2)?;
  set_element(env, out, 0, values)?;
  set_element(env, out, 1, error_list(env, &errors)?)?;
  Ok(out)
}

/// `[index, code, message, serverCode, …]`, or undefined when there are none.
unsafe fn error_list(env: sys::napi_env, errors: &[(usize, Error)]) -> NapiResult<sys::napi_value> {
  if errors.is_empty() {
    return js_undefined(env);
  }
  let out = js_array(env, errors.len() * 4)?;
  for (k, (i, e)) in errors.iter().enumerate() {
    let t = js_error(env, e)?;
    set_element(env, out, 4 * k, js_number(env, *i as f64)?)?;
    for j in 0..3 {
      let mut x = ptr::null_mut();
      ck!(sys::napi_get_element(env, t, j, &mut x), "error part");
      set_element(env, out, 4 * k + 1 + j as usize, x)?;
    }
  }
  Ok(out)
}
