//! The `cmsgpack` library Redis gives scripts (lua-cmsgpack 0.4.0, as Redis
//! bundles it): `cmsgpack.pack(...)` (each argument, concatenated),
//! `cmsgpack.unpack(s)` (every value), `unpack_one(s [, offset])` and
//! `unpack_limit(s, limit [, offset])` (the offset to go on from, -1 at the
//! end, then the values).
//!
//! Packing: an integral number as the smallest integer type, another as a
//! float32 when that is exact, else a float64; a table whose keys are 1..n as
//! an array, any other as a map (Lua's traversal order); nesting deeper than
//! 16, and functions and the like, as nil.

use mlua::{Lua, MultiValue, Table, Value};

use super::lua_struct::error;

/// lua-cmsgpack's LUACMSGPACK_MAX_NESTING.
const MAX_NESTING: usize = 16;

fn pack_int(out: &mut Vec<u8>, n: i64) {
  match n {
    0..=127 => out.push(n as u8),
    128..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
    0x100..=0xffff => {
      out.push(0xcd);
      out.extend_from_slice(&(n as u16).to_be_bytes())
    }
    0x1_0000..=0xffff_ffff => {
      out.push(0xce);
      out.extend_from_slice(&(n as u32).to_be_bytes())
    }
    n if n > 0 => {
      out.push(0xcf);
      out.extend_from_slice(&(n as u64).to_be_bytes())
    }
    -32..=-1 => out.push(n as i8 as u8),
    -128..=-33 => out.extend_from_slice(&[0xd0, n as i8 as u8]),
    -32768..=-129 => {
      out.push(0xd1);
      out.extend_from_slice(&(n as i16).to_be_bytes())
    }
    -2_147_483_648..=-32769 => {
      out.push(0xd2);
      out.extend_from_slice(&(n as i32).to_be_bytes())
    }
    n => {
      out.push(0xd3);
      out.extend_from_slice(&n.to_be_bytes())
    }
  }
}

fn pack_len(out: &mut Vec<u8>, len: usize, fix: u8, fix_max: usize, tags: [u8; 3]) {
  if len < fix_max {
    out.push(fix | len as u8);
  } else if tags[0] != 0 && len <= 0xff {
    out.extend_from_slice(&[tags[0], len as u8]);
  } else if len <= 0xffff {
    out.push(tags[1]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
  } else {
    out.push(tags[2]);
    out.extend_from_slice(&(len as u32).to_be_bytes());
  }
}

fn pack(out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
  match v {
    Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
    Value::Integer(n) => pack_int(out, *n),
    Value::Number(n) => {
      if n.fract() == 0.0 && *n >= -9.2e18 && *n <= 1.8e19 {
        if *n >= 9.2e18 {
          out.push(0xcf);
          out.extend_from_slice(&(*n as u64).to_be_bytes());
        } else {
          pack_int(out, *n as i64);
        }
      } else if (*n as f32) as f64 == *n || n.is_nan() {
        out.push(0xca);
        out.extend_from_slice(&(*n as f32).to_be_bytes());
      } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
      }
    }
    Value::String(s) => {
      let b = s.as_bytes();
      pack_len(out, b.len(), 0xa0, 32, [0xd9, 0xda, 0xdb]);
      out.extend_from_slice(&b);
    }
    Value::Table(t) if level < MAX_NESTING => {
      let pairs: Vec<(Value, Value)> = t
        .clone()
        .pairs::<Value, Value>()
        .collect::<mlua::Result<_>>()?;
      let len = t.raw_len();
      let array = pairs.len() == len
        && pairs.iter().all(|(k, _)| match k {
          Value::Integer(n) => *n >= 1 && (*n as usize) <= len,
          Value::Number(n) => *n >= 1.0 && n.fract() == 0.0 && (*n as usize) <= len,
          _ => false,
        });
      if array {
        pack_len(out, len, 0x90, 16, [0, 0xdc, 0xdd]);
        for i in 1..=len {
          pack(out, &t.raw_get::<Value>(i)?, level + 1)?;
        }
      } else {
        pack_len(out, pairs.len(), 0x80, 16, [0, 0xde, 0xdf]);
        for (k, item) in &pairs {
          pack(out, k, level + 1)?;
          pack(out, item, level + 1)?;
        }
      }
    }
    _ => out.push(0xc0),
  }
  Ok(())
}

const MISSING: &str = "Missing bytes in input.";
const BAD: &str = "Bad data format in input.";

struct Reader<'a> {
  s: &'a [u8],
  at: usize,
}

impl Reader<'_> {
  fn take(&mut self, n: usize) -> Result<&[u8], &'static str> {
    let b = self.s.get(self.at..self.at + n).ok_or(MISSING)?;
    self.at += n;
    Ok(b)
  }

  fn uint(&mut self, n: usize) -> Result<u64, &'static str> {
    Ok(
      self
        .take(n)?
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | b as u64),
    )
  }

  fn value(&mut self, lua: &Lua) -> Result<Value, String> {
    let tag = self.take(1)?[0];
    let lua_err = |e: mlua::Error| e.to_string();
    let signed =
      |v: u64, bits: u32| Value::Number(((v << (64 - bits)) as i64 >> (64 - bits)) as f64);
    Ok(match tag {
      0x00..=0x7f => Value::Number(tag as f64),
      0xe0..=0xff => Value::Number(tag as i8 as f64),
      0xc0 => Value::Nil,
      0xc2 => Value::Boolean(false),
      0xc3 => Value::Boolean(true),
      0xcc => Value::Number(self.uint(1)? as f64),
      0xcd => Value::Number(self.uint(2)? as f64),
      0xce => Value::Number(self.uint(4)? as f64),
      0xcf => Value::Number(self.uint(8)? as f64),
      0xd0 => signed(self.uint(1)?, 8),
      0xd1 => signed(self.uint(2)?, 16),
      0xd2 => signed(self.uint(4)?, 32),
      0xd3 => signed(self.uint(8)?, 64),
      0xca => Value::Number(f32::from_bits(self.uint(4)? as u32) as f64),
      0xcb => Value::Number(f64::from_bits(self.uint(8)?)),
      0xa0..=0xbf | 0xd9 | 0xda | 0xdb | 0xc4 | 0xc5 | 0xc6 => {
        let len = match tag {
          0xa0..=0xbf => (tag & 0x1f) as usize,
          0xd9 | 0xc4 => self.uint(1)? as usize,
          0xda | 0xc5 => self.uint(2)? as usize,
          _ => self.uint(4)? as usize,
        };
        let b = self.take(len)?.to_vec();
        Value::String(lua.create_string(&b).map_err(lua_err)?)
      }
      0x90..=0x9f | 0xdc | 0xdd => {
        let len = match tag {
          0x90..=0x9f => (tag & 0x0f) as usize,
          0xdc => self.uint(2)? as usize,
          _ => self.uint(4)? as usize,
        };
        let t = lua.create_table().map_err(lua_err)?;
        for i in 1..=len {
          let v = self.value(lua)?;
          t.raw_set(i, v).map_err(lua_err)?;
        }
        Value::Table(t)
      }
      0x80..=0x8f | 0xde | 0xdf => {
        let len = match tag {
          0x80..=0x8f => (tag & 0x0f) as usize,
          0xde => self.uint(2)? as usize,
          _ => self.uint(4)? as usize,
        };
        let t = lua.create_table().map_err(lua_err)?;
        for _ in 0..len {
          let k = self.value(lua)?;
          let v = self.value(lua)?;
          if !matches!(k, Value::Nil) {
            t.raw_set(k, v).map_err(lua_err)?;
          }
        }
        Value::Table(t)
      }
      _ => return Err(BAD.into()),
    })
  }
}

/// Up to `limit` values (0: all) from `offset`; the offset after them.
fn unpack(lua: &Lua, s: &[u8], limit: usize, offset: usize) -> Result<(Vec<Value>, usize), String> {
  let mut r = Reader { s, at: offset };
  let mut out = Vec::new();
  while r.at < s.len() && (limit == 0 || out.len() < limit) {
    out.push(r.value(lua)?);
  }
  Ok((out, r.at))
}

fn bytes_arg(lua: &Lua, args: &MultiValue, func: &str) -> mlua::Result<Vec<u8>> {
  match args.front() {
    Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
    other => Err(error(
      lua,
      super::lua_struct::arg_error(
        1,
        func,
        &format!(
          "string expected, got {}",
          other.map_or("no value", |v| v.type_name())
        ),
      ),
    )),
  }
}

fn int_arg(args: &MultiValue, i: usize) -> i64 {
  match args.get(i) {
    Some(Value::Integer(n)) => *n,
    Some(Value::Number(n)) => *n as i64,
    _ => 0,
  }
}

/// The `cmsgpack` table.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
  let t = lua.create_table()?;
  t.set(
    "pack",
    lua.create_function(|lua, args: MultiValue| {
      if args.is_empty() {
        return Err(error(lua, "MessagePack pack needs input.".into()));
      }
      let mut out = Vec::new();
      for v in args.iter() {
        pack(&mut out, v, 0)?;
      }
      lua.create_string(&out)
    })?,
  )?;
  t.set(
    "unpack",
    lua.create_function(|lua, args: MultiValue| {
      let s = bytes_arg(lua, &args, "unpack")?;
      let (values, _) = unpack(lua, &s, 0, 0).map_err(|m| error(lua, m))?;
      Ok(MultiValue::from_iter(values))
    })?,
  )?;
  for (name, limited) in [("unpack_one", false), ("unpack_limit", true)] {
    t.set(
      name,
      lua.create_function(move |lua, args: MultiValue| {
        let s = bytes_arg(lua, &args, name)?;
        let (limit, offset) = if limited {
          (int_arg(&args, 1).max(0) as usize, int_arg(&args, 2))
        } else {
          (1, int_arg(&args, 1))
        };
        if offset < 0 || offset as usize > s.len() {
          return Err(error(
            lua,
            format!(
              "Start offset {offset} greater than input length {}.",
              s.len()
            ),
          ));
        }
        let (values, end) = unpack(lua, &s, limit, offset as usize).map_err(|m| error(lua, m))?;
        let next = if end >= s.len() { -1 } else { end as i64 };
        Ok(MultiValue::from_iter(
          std::iter::once(Value::Number(next as f64)).chain(values),
        ))
      })?,
    )?;
  }
  t.set("_NAME", "cmsgpack")?;
  t.set("_VERSION", "lua-cmsgpack 0.4.0")?;
  t.set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
  t.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
  Ok(t)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn packs_and_unpacks_as_lua_cmsgpack() {
    let lua = Lua::new();
    lua
      .globals()
      .set("cmsgpack", library(&lua).unwrap())
      .unwrap();
    let hex: String = lua
      .load("return cmsgpack.pack({1, 2, 300}, -1, -200, 1.5, 0.1, 'ab', true, {a = 1}, 2^40)")
      .eval::<mlua::String>()
      .unwrap()
      .as_bytes()
      .iter()
      .map(|b| format!("{b:02x}"))
      .collect();
    assert_eq!(
      hex,
      "930102cd012cffd1ff38ca3fc00000cb3fb999999999999aa26162c381a16101cf0000010000000000"
    );
    let got: Vec<Value> = lua
      .load("local t = {cmsgpack.unpack(cmsgpack.pack({1, {x = 'y'}}, -5, 1.5))} return {t[1][2].x, t[2], t[3], cmsgpack.unpack_one(cmsgpack.pack(1, 2))}")
      .eval()
      .unwrap();
    assert_eq!(got[0].as_string().unwrap().to_str().unwrap(), "y");
    assert_eq!(
      got[1..],
      [
        Value::Number(-5.0),
        Value::Number(1.5),
        Value::Number(1.0),
        Value::Number(1.0)
      ]
    );
    let e = lua
      .load("cmsgpack.unpack('\\205')")
      .exec()
      .unwrap_err()
      .to_string();
    assert!(e.contains("Missing bytes in input."), "{e}");
  }
}
