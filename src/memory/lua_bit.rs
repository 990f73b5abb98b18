//! The `bit` library Redis gives scripts (Mike Pall's LuaBitOp 1.0, as Redis
//! bundles it): 32-bit operations on Lua numbers, results as signed 32-bit
//! numbers. `bit.tobit`, `bnot`, `band`, `bor`, `bxor`, `lshift`, `rshift`,
//! `arshift`, `rol`, `ror`, `bswap`, `tohex`.

use mlua::{Lua, MultiValue, Table, Value};

use super::lua_struct::{arg_error, error};

/// A number as LuaBitOp reads it: modulo 2^32, rounded to an integer (its
/// trick of adding 2^52 + 2^51 and taking the low word).
fn norm(d: f64) -> u32 {
  (d + 6_755_399_441_055_744.0).to_bits() as u32
}

fn arg(lua: &Lua, args: &[Value], i: usize, func: &str) -> mlua::Result<u32> {
  let n = match args.get(i) {
    Some(Value::Integer(n)) => Some(*n as f64),
    Some(Value::Number(n)) => Some(*n),
    Some(Value::String(s)) => s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()),
    _ => None,
  };
  n.map(norm).ok_or_else(|| {
    let got = match args.get(i) {
      None => "no value",
      Some(v) => v.type_name(),
    };
    error(
      lua,
      arg_error(i + 1, func, &format!("number expected, got {got}")),
    )
  })
}

fn num(x: u32) -> Value {
  Value::Number(x as i32 as f64)
}

/// The `bit` table.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
  let t = lua.create_table()?;
  type Unary = fn(u32) -> u32;
  let unary: [(&str, Unary); 3] = [
    ("tobit", |x| x),
    ("bnot", |x| !x),
    ("bswap", u32::swap_bytes),
  ];
  for (name, f) in unary {
    t.set(
      name,
      lua.create_function(move |lua, args: MultiValue| {
        let args: Vec<Value> = args.into_iter().collect();
        Ok(num(f(arg(lua, &args, 0, name)?)))
      })?,
    )?;
  }
  type Fold = fn(u32, u32) -> u32;
  let folds: [(&str, Fold); 3] = [
    ("band", |a, b| a & b),
    ("bor", |a, b| a | b),
    ("bxor", |a, b| a ^ b),
  ];
  for (name, f) in folds {
    t.set(
      name,
      lua.create_function(move |lua, args: MultiValue| {
        let args: Vec<Value> = args.into_iter().collect();
        let mut acc = arg(lua, &args, 0, name)?;
        for i in 1..args.len() {
          acc = f(acc, arg(lua, &args, i, name)?);
        }
        Ok(num(acc))
      })?,
    )?;
  }
  type Shift = fn(u32, u32) -> u32;
  let shifts: [(&str, Shift); 5] = [
    ("lshift", |x, n| x << (n & 31)),
    ("rshift", |x, n| x >> (n & 31)),
    ("arshift", |x, n| ((x as i32) >> (n & 31)) as u32),
    ("rol", |x, n| x.rotate_left(n & 31)),
    ("ror", |x, n| x.rotate_right(n & 31)),
  ];
  for (name, f) in shifts {
    t.set(
      name,
      lua.create_function(move |lua, args: MultiValue| {
        let args: Vec<Value> = args.into_iter().collect();
        Ok(num(f(arg(lua, &args, 0, name)?, arg(lua, &args, 1, name)?)))
      })?,
    )?;
  }
  t.set(
    "tohex",
    lua.create_function(|lua, args: MultiValue| {
      let args: Vec<Value> = args.into_iter().collect();
      let x = arg(lua, &args, 0, "tohex")?;
      let mut n = match args.get(1) {
        None | Some(Value::Nil) => 8,
        _ => arg(lua, &args, 1, "tohex")? as i32,
      };
      let upper = n < 0;
      // Redis' fix for CVE-2024-31449: -INT32_MIN would overflow
      n = n.max(i32::MIN + 1).abs().min(8);
      let hex = if upper {
        format!("{x:08X}")
      } else {
        format!("{x:08x}")
      };
      Ok(hex[8 - n as usize..].to_string())
    })?,
  )?;
  Ok(t)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn operations_as_luabitop() {
    let lua = Lua::new();
    lua.globals().set("bit", library(&lua).unwrap()).unwrap();
    let got: Vec<f64> = lua
      .load(
        "return {bit.tobit(0xffffffff), bit.tobit(2^32 + 5), bit.bnot(0), bit.band(0xff, 0x0f, 0x3),
          bit.bor(1, 2, 4), bit.bxor(5, 1), bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-256, 4),
          bit.rol(0x80000001, 1), bit.ror(1, 1), bit.bswap(0x01020304), bit.tobit(1.5), bit.tobit(2.5)}",
      )
      .eval::<Vec<f64>>()
      .unwrap();
    assert_eq!(
      got,
      vec![
        -1.0,
        5.0,
        -1.0,
        3.0,
        7.0,
        4.0,
        -2147483648.0,
        15.0,
        -16.0,
        3.0,
        -2147483648.0,
        67305985.0,
        2.0,
        2.0
      ]
    );
    let hex: Vec<String> = lua
      .load("return {bit.tohex(255), bit.tohex(-1, -4), bit.tohex(0x1234, 2), bit.tohex(1, 20)}")
      .eval()
      .unwrap();
    assert_eq!(hex, vec!["000000ff", "FFFF", "34", "00000001"]);
    let e = lua.load("return bit.band('x')").exec().unwrap_err();
    assert!(
      e.to_string()
        .contains("bad argument #1 to 'band' (number expected, got string)"),
      "{e}"
    );
  }
}
