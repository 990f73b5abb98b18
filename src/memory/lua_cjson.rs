//! The `cjson` library Redis gives scripts (lua-cjson 2.1.0 with its default
//! settings): `cjson.encode(value)`, `cjson.decode(text)`, `cjson.null`.
//!
//! Encoding: numbers as `%.14g`, strings escaped as lua-cjson does (`/` and
//! DEL too), a table whose keys are all positive integers as an array (holes
//! as null; refused when excessively sparse), any other table as an object in
//! Lua's traversal order, an empty table as `{}`. Decoding: JSON null is
//! `cjson.null`. The setting functions answer the defaults and change nothing.

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::fmt::g;
use super::lua_struct::{arg_error, error};

/// `encode_number_precision`.
const PRECISION: usize = 14;
/// `encode_max_depth` and `decode_max_depth`.
const MAX_DEPTH: usize = 1000;
/// `encode_sparse_array`: an array may have this ratio of holes past `SAFE`.
const SPARSE_RATIO: usize = 2;
const SPARSE_SAFE: usize = 10;

fn null() -> Value {
  Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn escape(out: &mut Vec<u8>, s: &[u8]) {
  out.push(b'"');
  for &c in s {
    match c {
      b'"' => out.extend_from_slice(b"\\\""),
      b'\\' => out.extend_from_slice(b"\\\\"),
      b'/' => out.extend_from_slice(b"\\/"),
      b'\n' => out.extend_from_slice(b"\\n"),
      b'\r' => out.extend_from_slice(b"\\r"),
      b'\t' => out.extend_from_slice(b"\\t"),
      0x08 => out.extend_from_slice(b"\\b"),
      0x0c => out.extend_from_slice(b"\\f"),
      c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
      c => out.push(c),
    }
  }
  out.push(b'"');
}

fn number(n: f64) -> Result<String, String> {
  if n.is_finite() {
    Ok(g(n, PRECISION))
  } else {
    Err("Cannot serialise number: must not be NaN or Inf".into())
  }
}

fn encode(out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), String> {
  match v {
    Value::Nil => out.extend_from_slice(b"null"),
    Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
    Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
    Value::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
    Value::Number(n) => out.extend_from_slice(number(*n)?.as_bytes()),
    Value::String(s) => escape(out, &s.as_bytes()),
    Value::Table(t) => {
      if depth >= MAX_DEPTH {
        return Err(format!(
          "Cannot serialise, excessive nesting ({})",
          depth + 1
        ));
      }
      let pairs: Vec<(Value, Value)> = t
        .clone()
        .pairs::<Value, Value>()
        .collect::<mlua::Result<_>>()
        .map_err(|e| e.to_string())?;
      // an array: every key a positive integer
      let mut max = 0usize;
      let array = pairs.iter().all(|(k, _)| {
        let n = match k {
          Value::Integer(n) => *n as f64,
          Value::Number(n) => *n,
          _ => return false,
        };
        if n >= 1.0 && n.fract() == 0.0 {
          max = max.max(n as usize);
          true
        } else {
          false
        }
      });
      if array && max > 0 {
        if max > SPARSE_SAFE && max > pairs.len() * SPARSE_RATIO {
          return Err("Cannot serialise table: excessively sparse array".into());
        }
        out.push(b'[');
        for i in 1..=max {
          if i > 1 {
            out.push(b',');
          }
          let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
          encode(out, &item, depth + 1)?;
        }
        out.push(b']');
      } else {
        out.push(b'{');
        for (i, (k, item)) in pairs.iter().enumerate() {
          if i > 0 {
            out.push(b',');
          }
          match k {
            Value::String(s) => escape(out, &s.as_bytes()),
            Value::Integer(n) => escape(out, n.to_string().as_bytes()),
            Value::Number(n) => escape(out, number(*n)?.as_bytes()),
            _ => return Err("Cannot serialise table: table key must be a number or string".into()),
          }
          out.push(b':');
          encode(out, item, depth + 1)?;
        }
        out.push(b'}');
      }
    }
    other => {
      return Err(format!(
        "Cannot serialise {}: type not supported",
        other.type_name()
      ))
    }
  }
  Ok(())
}

/// lua-cjson's token names, used in its error messages.
#[derive(Clone, Copy, PartialEq)]
enum Token {
  ObjBegin,
  ObjEnd,
  ArrBegin,
  ArrEnd,
  Str,
  Num,
  Bool,
  Null,
  Colon,
  Comma,
  End,
}

impl Token {
  fn name(self) -> &'static str {
    match self {
      Token::ObjBegin => "T_OBJ_BEGIN",
      Token::ObjEnd => "T_OBJ_END",
      Token::ArrBegin => "T_ARR_BEGIN",
      Token::ArrEnd => "T_ARR_END",
      Token::Str => "T_STRING",
      Token::Num => "T_NUMBER",
      Token::Bool => "T_BOOLEAN",
      Token::Null => "T_NULL",
      Token::Colon => "T_COLON",
      Token::Comma => "T_COMMA",
      Token::End => "T_END",
    }
  }
}

enum Scalar {
  Str(Vec<u8>),
  Num(f64),
  Bool(bool),
  None,
}

struct Parser<'a, 'l> {
  lua: &'l Lua,
  s: &'a [u8],
  at: usize,
  depth: usize,
}

impl Parser<'_, '_> {
  /// The next token and where it starts (1-based, as lua-cjson counts).
  fn token(&mut self) -> Result<(Token, Scalar, usize), String> {
    while matches!(self.s.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
      self.at += 1;
    }
    let start = self.at + 1;
    let invalid = |what: &str| {
      Err(format!(
        "Expected value but found {what} at character {start}"
      ))
    };
    let Some(&c) = self.s.get(self.at) else {
      return Ok((Token::End, Scalar::None, start));
    };
    let simple = |t| Ok((t, Scalar::None, start));
    match c {
      b'{' => {
        self.at += 1;
        simple(Token::ObjBegin)
      }
      b'}' => {
        self.at += 1;
        simple(Token::ObjEnd)
      }
      b'[' => {
        self.at += 1;
        simple(Token::ArrBegin)
      }
      b']' => {
        self.at += 1;
        simple(Token::ArrEnd)
      }
      b':' => {
        self.at += 1;
        simple(Token::Colon)
      }
      b',' => {
        self.at += 1;
        simple(Token::Comma)
      }
      b'"' => self.string(start),
      b'-' | b'0'..=b'9' => {
        let end = self.s[self.at..]
          .iter()
          .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
          .map_or(self.s.len(), |p| self.at + p);
        match std::str::from_utf8(&self.s[self.at..end])
          .ok()
          .and_then(|t| t.parse::<f64>().ok())
        {
          Some(n) => {
            self.at = end;
            Ok((Token::Num, Scalar::Num(n), start))
          }
          None => invalid("invalid number"),
        }
      }
      _ => {
        for (word, token, value) in [
          (&b"true"[..], Token::Bool, Scalar::Bool(true)),
          (b"false", Token::Bool, Scalar::Bool(false)),
          (b"null", Token::Null, Scalar::None),
        ] {
          if self.s[self.at..].starts_with(word) {
            self.at += word.len();
            return Ok((token, value, start));
          }
        }
        invalid("invalid token")
      }
    }
  }

  fn string(&mut self, start: usize) -> Result<(Token, Scalar, usize), String> {
    let bad = |what: &str| {
      Err(format!(
        "Expected value but found {what} at character {start}"
      ))
    };
    let mut out = Vec::new();
    let mut i = self.at + 1;
    loop {
      let Some(&c) = self.s.get(i) else {
        return bad("unexpected end of string");
      };
      i += 1;
      match c {
        b'"' => break,
        b'\\' => {
          let Some(&e) = self.s.get(i) else {
            return bad("unexpected end of string");
          };
          i += 1;
          match e {
            b'"' | b'\\' | b'/' => out.push(e),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
              let hex = |at: usize| {
                self
                  .s
                  .get(at..at + 4)
                  .and_then(|h| std::str::from_utf8(h).ok())
                  .and_then(|h| u32::from_str_radix(h, 16).ok())
              };
              let Some(mut cp) = hex(i) else {
                return bad("invalid unicode escape code");
              };
              i += 4;
              if (0xd800..0xdc00).contains(&cp) {
                // a surrogate pair
                match (self.s.get(i..i + 2), hex(i + 2)) {
                  (Some(b"\\u"), Some(lo)) if (0xdc00..0xe000).contains(&lo) => {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                  }
                  _ => return bad("invalid unicode escape code"),
                }
              }
              match char::from_u32(cp) {
                Some(ch) => out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes()),
                None => return bad("invalid unicode escape code"),
              }
            }
            _ => return bad("invalid escape code"),
          }
        }
        c => out.push(c),
      }
    }
    self.at = i;
    Ok((Token::Str, Scalar::Str(out), start))
  }

  fn expected(what: &str, t: Token, at: usize) -> String {
    format!("Expected {what} but found {} at character {at}", t.name())
  }

  fn nest(&mut self, at: usize) -> Result<(), String> {
    self.depth += 1;
    if self.depth > MAX_DEPTH {
      return Err(format!(
        "Found too many nested data structures ({}) at character {at}",
        self.depth
      ));
    }
    Ok(())
  }

  fn value(&mut self, first: (Token, Scalar, usize)) -> Result<Value, String> {
    let lua_err = |e: mlua::Error| e.to_string();
    let (token, scalar, at) = first;
    Ok(match (token, scalar) {
      (Token::Str, Scalar::Str(s)) => Value::String(self.lua.create_string(&s).map_err(lua_err)?),
      (Token::Num, Scalar::Num(n)) => Value::Number(n),
      (Token::Bool, Scalar::Bool(b)) => Value::Boolean(b),
      (Token::Null, _) => null(),
      (Token::ArrBegin, _) => {
        self.nest(at)?;
        let t = self.lua.create_table().map_err(lua_err)?;
        let mut next = self.token()?;
        if next.0 != Token::ArrEnd {
          let mut i = 1;
          loop {
            let v = self.value(next)?;
            t.raw_set(i, v).map_err(lua_err)?;
            i += 1;
            let (sep, _, at) = self.token()?;
            match sep {
              Token::ArrEnd => break,
              Token::Comma => next = self.token()?,
              t => return Err(Self::expected("comma or array end", t, at)),
            }
          }
        }
        self.depth -= 1;
        Value::Table(t)
      }
      (Token::ObjBegin, _) => {
        self.nest(at)?;
        let t = self.lua.create_table().map_err(lua_err)?;
        let mut next = self.token()?;
        if next.0 != Token::ObjEnd {
          loop {
            let (Token::Str, Scalar::Str(key), _) = next else {
              return Err(Self::expected("object key string", next.0, next.2));
            };
            let (colon, _, at) = self.token()?;
            if colon != Token::Colon {
              return Err(Self::expected("colon", colon, at));
            }
            let first = self.token()?;
            let v = self.value(first)?;
            t.raw_set(self.lua.create_string(&key).map_err(lua_err)?, v)
              .map_err(lua_err)?;
            let (sep, _, at) = self.token()?;
            match sep {
              Token::ObjEnd => break,
              Token::Comma => next = self.token()?,
              t => return Err(Self::expected("comma or object end", t, at)),
            }
          }
        }
        self.depth -= 1;
        Value::Table(t)
      }
      (t, _) => return Err(Self::expected("value", t, at)),
    })
  }
}

fn decode(lua: &Lua, s: &[u8]) -> Result<Value, String> {
  let mut p = Parser {
    lua,
    s,
    at: 0,
    depth: 0,
  };
  let first = p.token()?;
  let v = p.value(first)?;
  let (end, _, at) = p.token()?;
  if end != Token::End {
    return Err(Parser::expected("the end", end, at));
  }
  Ok(v)
}

/// The `cjson` table.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
  let t = lua.create_table()?;
  t.set(
    "encode",
    lua.create_function(|lua, args: MultiValue| {
      if args.len() != 1 {
        return Err(error(
          lua,
          "bad argument #1 to '?' (expected 1 argument)".into(),
        ));
      }
      let mut out = Vec::new();
      encode(&mut out, &args[0], 0).map_err(|m| error(lua, m))?;
      lua.create_string(&out)
    })?,
  )?;
  t.set(
    "decode",
    lua.create_function(|lua, args: MultiValue| {
      if args.len() != 1 {
        return Err(error(
          lua,
          "bad argument #1 to '?' (expected 1 argument)".into(),
        ));
      }
      let s = match &args[0] {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Integer(n) => n.to_string().into_bytes(),
        Value::Number(n) => super::fmt::g(*n, 14).into_bytes(),
        other => {
          return Err(error(
            lua,
            arg_error(
              1,
              "decode",
              &format!("string expected, got {}", other.type_name()),
            ),
          ))
        }
      };
      decode(lua, &s).map_err(|m| error(lua, m))
    })?,
  )?;
  // the settings, as their getters answer them by default
  for (name, value) in [
    (
      "encode_number_precision",
      vec![Value::Integer(PRECISION as i64)],
    ),
    ("encode_max_depth", vec![Value::Integer(MAX_DEPTH as i64)]),
    ("decode_max_depth", vec![Value::Integer(MAX_DEPTH as i64)]),
    ("encode_keep_buffer", vec![Value::Boolean(true)]),
    ("encode_invalid_numbers", vec![Value::Boolean(false)]),
    ("decode_invalid_numbers", vec![Value::Boolean(true)]),
    (
      "encode_sparse_array",
      vec![
        Value::Boolean(false),
        Value::Integer(SPARSE_RATIO as i64),
        Value::Integer(SPARSE_SAFE as i64),
      ],
    ),
  ] {
    t.set(
      name,
      lua.create_function(move |_, _: MultiValue| Ok(MultiValue::from_iter(value.clone())))?,
    )?;
  }
  let me = t.clone();
  t.set(
    "new",
    lua.create_function(move |_, _: MultiValue| Ok(me.clone()))?,
  )?;
  t.set("null", null())?;
  t.set("_NAME", "cjson")?;
  t.set("_VERSION", "2.1.0")?;
  Ok(t)
}

#[cfg(test)]
mod tests {
  use super::*;

  fn lua() -> Lua {
    let lua = Lua::new();
    lua.globals().set("cjson", library(&lua).unwrap()).unwrap();
    lua
  }

  #[test]
  fn encodes_as_lua_cjson() {
    let lua = lua();
    let got: Vec<String> = lua
      .load(
        r#"return {cjson.encode({1, 2, {3}}), cjson.encode({[1] = 1, [3] = 3}), cjson.encode('x/y"' .. '\n\127'),
          cjson.encode(0.1), cjson.encode(1e20), cjson.encode({}), cjson.encode(cjson.null), cjson.encode({a = true})}"#,
      )
      .eval()
      .unwrap();
    assert_eq!(
      got,
      vec![
        "[1,2,[3]]",
        "[1,null,3]",
        r#""x\/y\"\n\u007f""#,
        "0.1",
        "1e+20",
        "{}",
        "null",
        r#"{"a":true}"#
      ]
    );
    for (src, msg) in [
      (
        "cjson.encode({[1] = 1, [20] = 3})",
        "Cannot serialise table: excessively sparse array",
      ),
      (
        "cjson.encode(function() end)",
        "Cannot serialise function: type not supported",
      ),
      (
        "cjson.encode(0/0)",
        "Cannot serialise number: must not be NaN or Inf",
      ),
    ] {
      let e = lua.load(src).exec().unwrap_err().to_string();
      assert!(e.contains(msg), "{src}: {e}");
    }
  }

  #[test]
  fn decodes_as_lua_cjson() {
    let lua = lua();
    let got: Vec<Value> = lua
      .load(r#"local t = cjson.decode('{"a":[1,null,"\\u00e9\\ud83d\\ude00"], "b": -0.5e1}') return {t.a[1], t.a[2] == cjson.null, t.a[3], t.b}"#)
      .eval()
      .unwrap();
    assert_eq!(got[0], Value::Number(1.0));
    assert_eq!(got[1], Value::Boolean(true));
    assert_eq!(got[2].as_string().unwrap().to_str().unwrap(), "é😀");
    assert_eq!(got[3], Value::Number(-5.0));
    for (src, msg) in [
      (
        "cjson.decode('[1,2')",
        "Expected comma or array end but found T_END at character 5",
      ),
      (
        "cjson.decode('x')",
        "Expected value but found invalid token at character 1",
      ),
      (
        "cjson.decode('{1:2}')",
        "Expected object key string but found T_NUMBER at character 2",
      ),
      (
        "cjson.decode('[1] 2')",
        "Expected the end but found T_NUMBER at character 5",
      ),
    ] {
      let e = lua.load(src).exec().unwrap_err().to_string();
      assert!(e.contains(msg), "{src}: {e}");
    }
  }
}
