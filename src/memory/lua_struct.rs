//! The `struct` library Redis gives scripts (Roberto Ierusalimschy's struct 0.2,
//! as Redis bundles it): `struct.pack(fmt, ...)`, `struct.unpack(fmt, s [, i])`
//! and `struct.size(fmt)`, for `memory://` scripts.
//!
//! Format options: `>` big and `<` little endian, `=` native, `![n]` alignment,
//! `x` a padding byte, `b`/`B` `h`/`H` `l`/`L` `T` `i[n]`/`I[n]` integers
//! (signed lowercase), `f` float, `d` double, `c[n]` n bytes (`c0`: the whole
//! string when packing, the number unpacked before it as the length when
//! unpacking), `s` a zero-terminated string; spaces are ignored.
//!
//! ```text
//! local s = struct.pack('>dd', 1.5, 2)   -- 16 bytes
//! local a, b, next = struct.unpack('>dd', s)   -- 1.5, 2, 17
//! ```

use mlua::{Lua, MultiValue, Table, Value};

/// Widest integer option (`i8`): 8 bytes, as on Redis' 64-bit builds.
const MAX_INT: usize = 8;
/// `!` without a size: the strictest alignment of a C struct.
const NATIVE_ALIGN: usize = 8;

struct Header {
  little: bool,
  align: usize,
}

/// One option of a format: its letter and its size (0 for none).
struct Opt {
  letter: u8,
  size: usize,
}

/// An error as Lua's luaL_error raises it: prefixed with where the script called
/// the library (`user_script:1: `).
pub(super) fn error(lua: &Lua, msg: String) -> mlua::Error {
  let at = lua
    .inspect_stack(1)
    .map(|d| {
      let line = d.curr_line();
      let src = d
        .source()
        .short_src
        .map(|s| s.to_string())
        .unwrap_or_default();
      if line > 0 {
        format!("{src}:{line}: ")
      } else {
        String::new()
      }
    })
    .unwrap_or_default();
  mlua::Error::RuntimeError(format!("{at}{msg}"))
}

pub(super) fn arg_error(n: usize, func: &str, msg: &str) -> String {
  format!("bad argument #{n} to '{func}' ({msg})")
}

type Res<T> = Result<T, String>;

/// Reads the options of `fmt` one at a time, updating the header for `<`, `>`,
/// `=` and `!`.
struct Options<'a> {
  fmt: &'a [u8],
  at: usize,
  func: &'static str,
}

impl Options<'_> {
  fn number(&mut self, default: usize) -> usize {
    if !self.fmt.get(self.at).is_some_and(u8::is_ascii_digit) {
      return default;
    }
    let mut n = 0usize;
    while let Some(d) = self.fmt.get(self.at).filter(|d| d.is_ascii_digit()) {
      n = n.saturating_mul(10).saturating_add((d - b'0') as usize);
      self.at += 1;
    }
    n
  }

  fn next(&mut self, h: &mut Header) -> Res<Option<Opt>> {
    let Some(&letter) = self.fmt.get(self.at) else {
      return Ok(None);
    };
    self.at += 1;
    let size = match letter {
      b'b' | b'B' | b'x' => 1,
      b'h' | b'H' => 2,
      b'l' | b'L' | b'T' | b'd' => 8,
      b'f' => 4,
      b'i' | b'I' => {
        let n = self.number(4);
        if n > MAX_INT {
          return Err(format!(
            "integral size {n} is larger than limit of {MAX_INT}"
          ));
        }
        n
      }
      b'c' => self.number(1),
      b's' | b' ' => 0,
      b'<' => {
        h.little = true;
        0
      }
      b'>' => {
        h.little = false;
        0
      }
      b'=' => {
        h.little = cfg!(target_endian = "little");
        0
      }
      b'!' => {
        let a = self.number(NATIVE_ALIGN);
        if !a.is_power_of_two() {
          return Err(format!("alignment {a} is not a power of 2"));
        }
        h.align = a;
        0
      }
      other => {
        let msg = format!("invalid format option '{}'", other as char);
        return Err(arg_error(1, self.func, &msg));
      }
    };
    Ok(Some(Opt { letter, size }))
  }
}

/// Padding before an option of `size` at offset `len`.
fn padding(len: usize, h: &Header, opt: &Opt) -> usize {
  if opt.size <= 1 || opt.letter == b'c' {
    return 0;
  }
  let align = opt.size.min(h.align);
  (align - (len & (align - 1))) & (align - 1)
}

fn header() -> Header {
  Header {
    little: cfg!(target_endian = "little"),
    align: 1,
  }
}

fn number_arg(args: &[Value], i: usize, func: &str) -> Res<f64> {
  match args.get(i) {
    Some(Value::Number(n)) => Ok(*n),
    Some(Value::Integer(n)) => Ok(*n as f64),
    Some(Value::String(s)) => s
      .to_str()
      .ok()
      .and_then(|s| s.trim().parse::<f64>().ok())
      .ok_or_else(|| arg_error(i + 2, func, "number expected, got string")),
    other => Err(arg_error(
      i + 2,
      func,
      &format!("number expected, got {}", type_name(other)),
    )),
  }
}

fn string_arg(args: &[Value], i: usize, func: &str) -> Res<Vec<u8>> {
  match args.get(i) {
    Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
    Some(Value::Number(n)) => Ok(super::fmt::g17(*n).into_bytes()),
    Some(Value::Integer(n)) => Ok(n.to_string().into_bytes()),
    other => Err(arg_error(
      i + 2,
      func,
      &format!("string expected, got {}", type_name(other)),
    )),
  }
}

fn type_name(v: Option<&Value>) -> &'static str {
  match v {
    None | Some(Value::Nil) => "no value",
    Some(v) => v.type_name(),
  }
}

/// The format string, the first argument of every function.
fn format_of(args: &[Value], func: &str) -> Res<Vec<u8>> {
  match args.first() {
    Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
    other => Err(arg_error(
      1,
      func,
      &format!("string expected, got {}", type_name(other)),
    )),
  }
}

fn put_integer(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
  let value = if n < 0.0 { n as i64 as u64 } else { n as u64 };
  let bytes = value.to_le_bytes();
  if little {
    out.extend_from_slice(&bytes[..size]);
  } else {
    out.extend(bytes[..size].iter().rev());
  }
}

fn get_integer(data: &[u8], little: bool, signed: bool) -> f64 {
  let size = data.len();
  let mut l: u64 = 0;
  for i in 0..size {
    let byte = if little { data[size - 1 - i] } else { data[i] };
    l = (l << 8) | byte as u64;
  }
  if !signed {
    return l as f64;
  }
  if size < 8 {
    let mask = u64::MAX << (size * 8 - 1);
    if l & mask != 0 {
      l |= mask;
    }
  }
  l as i64 as f64
}

fn pack(args: &[Value]) -> Res<Vec<u8>> {
  let fmt = format_of(args, "pack")?;
  let rest = &args[1..];
  let mut h = header();
  let mut opts = Options {
    fmt: &fmt,
    at: 0,
    func: "pack",
  };
  let mut out = Vec::new();
  let mut arg = 0;
  while let Some(opt) = opts.next(&mut h)? {
    out.resize(out.len() + padding(out.len(), &h, &opt), 0);
    match opt.letter {
      b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
        let n = number_arg(rest, arg, "pack")?;
        put_integer(&mut out, n, h.little, opt.size);
        arg += 1;
      }
      b'x' => out.push(0),
      b'f' => {
        let v = (number_arg(rest, arg, "pack")? as f32)
          .to_bits()
          .to_le_bytes();
        out.extend(if h.little {
          v
        } else {
          [v[3], v[2], v[1], v[0]]
        });
        arg += 1;
      }
      b'd' => {
        let v = number_arg(rest, arg, "pack")?.to_bits();
        out.extend(if h.little {
          v.to_le_bytes()
        } else {
          v.to_be_bytes()
        });
        arg += 1;
      }
      b'c' | b's' => {
        let s = string_arg(rest, arg, "pack")?;
        if opt.letter == b's' {
          if s.contains(&0) {
            return Err(arg_error(arg + 2, "pack", "string contains zeros"));
          }
          out.extend_from_slice(&s);
          out.push(0);
        } else {
          let size = if opt.size == 0 { s.len() } else { opt.size };
          if s.len() < size {
            return Err(arg_error(arg + 2, "pack", "string too short"));
          }
          out.extend_from_slice(&s[..size]);
        }
        arg += 1;
      }
      _ => {}
    }
  }
  Ok(out)
}

/// An unpacked value: a number or a byte string.
enum Unpacked {
  Number(f64),
  Bytes(Vec<u8>),
}

fn unpack(args: &[Value]) -> Res<Vec<Unpacked>> {
  let fmt = format_of(args, "unpack")?;
  let data = string_arg(&args[1..], 0, "unpack")?;
  let init = match args.get(2) {
    None | Some(Value::Nil) => 1.0,
    _ => number_arg(&args[1..], 1, "unpack")?,
  };
  if init < 1.0 {
    return Err(arg_error(3, "unpack", "offset must be 1 or greater"));
  }
  let mut pos = init as usize - 1;
  let mut h = header();
  let mut opts = Options {
    fmt: &fmt,
    at: 0,
    func: "unpack",
  };
  let mut out: Vec<Unpacked> = Vec::new();
  let short = || arg_error(2, "unpack", "data string too short");
  while let Some(opt) = opts.next(&mut h)? {
    pos += padding(pos, &h, &opt);
    if pos + opt.size > data.len() {
      return Err(short());
    }
    let bytes = &data[pos..pos + opt.size];
    match opt.letter {
      b'b' | b'h' | b'l' | b'i' => out.push(Unpacked::Number(get_integer(bytes, h.little, true))),
      b'B' | b'H' | b'L' | b'T' | b'I' => {
        out.push(Unpacked::Number(get_integer(bytes, h.little, false)))
      }
      b'f' => {
        let mut b4 = [0u8; 4];
        b4.copy_from_slice(bytes);
        if !h.little {
          b4.reverse();
        }
        out.push(Unpacked::Number(f32::from_le_bytes(b4) as f64));
      }
      b'd' => {
        let mut b8 = [0u8; 8];
        b8.copy_from_slice(bytes);
        let v = if h.little {
          f64::from_le_bytes(b8)
        } else {
          f64::from_be_bytes(b8)
        };
        out.push(Unpacked::Number(v));
      }
      b'c' => {
        let mut size = opt.size;
        if size == 0 {
          size = match out.pop() {
            Some(Unpacked::Number(n)) if n >= 0.0 => n as usize,
            _ => return Err("format 'c0' needs a previous size".into()),
          };
          if pos + size > data.len() {
            return Err(short());
          }
        }
        out.push(Unpacked::Bytes(data[pos..pos + size].to_vec()));
        pos += size;
        continue;
      }
      b's' => {
        let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
          return Err("unfinished string in data".into());
        };
        out.push(Unpacked::Bytes(data[pos..pos + end].to_vec()));
        pos += end + 1;
        continue;
      }
      _ => {}
    }
    pos += opt.size;
  }
  out.push(Unpacked::Number((pos + 1) as f64));
  Ok(out)
}

fn size(args: &[Value]) -> Res<f64> {
  let fmt = format_of(args, "size")?;
  let mut h = header();
  let mut opts = Options {
    fmt: &fmt,
    at: 0,
    func: "size",
  };
  let mut pos = 0usize;
  while let Some(opt) = opts.next(&mut h)? {
    if opt.letter == b's' || (opt.letter == b'c' && opt.size == 0) {
      return Err(arg_error(
        1,
        "size",
        "options 'c0' - 's' have undefined sizes",
      ));
    }
    pos += padding(pos, &h, &opt) + opt.size;
  }
  Ok(pos as f64)
}

/// The `struct` table.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
  let t = lua.create_table()?;
  t.set(
    "pack",
    lua.create_function(|lua, args: MultiValue| {
      let args: Vec<Value> = args.into_iter().collect();
      let out = pack(&args).map_err(|m| error(lua, m))?;
      lua.create_string(&out)
    })?,
  )?;
  t.set(
    "unpack",
    lua.create_function(|lua, args: MultiValue| {
      let args: Vec<Value> = args.into_iter().collect();
      let out = unpack(&args).map_err(|m| error(lua, m))?;
      out
        .into_iter()
        .map(|v| match v {
          Unpacked::Number(n) => Ok(Value::Number(n)),
          Unpacked::Bytes(b) => lua.create_string(&b).map(Value::String),
        })
        .collect::<mlua::Result<MultiValue>>()
    })?,
  )?;
  t.set(
    "size",
    lua.create_function(|lua, args: MultiValue| {
      let args: Vec<Value> = args.into_iter().collect();
      size(&args).map_err(|m| error(lua, m))
    })?,
  )?;
  Ok(t)
}

#[cfg(test)]
mod tests {
  use super::*;

  fn lua() -> Lua {
    let lua = Lua::new();
    lua.globals().set("struct", library(&lua).unwrap()).unwrap();
    lua
  }

  fn bytes(lua: &Lua, src: &str) -> Vec<u8> {
    lua
      .load(src)
      .eval::<mlua::String>()
      .unwrap()
      .as_bytes()
      .to_vec()
  }

  #[test]
  fn doubles_round_trip_in_both_byte_orders() {
    let lua = lua();
    let (a, b, next): (f64, f64, f64) = lua
      .load("return struct.unpack('>dd', struct.pack('>dd', 1.5, -2e300))")
      .eval()
      .unwrap();
    assert_eq!((a, b, next), (1.5, -2e300, 17.0));
    assert_eq!(
      bytes(&lua, "return struct.pack('<d', 1)"),
      1f64.to_le_bytes()
    );
    assert_eq!(
      bytes(&lua, "return struct.pack('>d', 1)"),
      1f64.to_be_bytes()
    );
  }

  #[test]
  fn integers_strings_and_alignment() {
    let lua = lua();
    assert_eq!(
      bytes(&lua, "return struct.pack('>i2Bs', -2, 255, 'ab')"),
      b"\xff\xfe\xffab\0"
    );
    let (a, b, c, next): (f64, f64, String, f64) = lua
      .load("return struct.unpack('>i2Bs', struct.pack('>i2Bs', -2, 255, 'ab'))")
      .eval()
      .unwrap();
    assert_eq!((a, b, c.as_str(), next), (-2.0, 255.0, "ab", 7.0));
    let n: f64 = lua.load("return struct.size('!4bi')").eval().unwrap();
    assert_eq!(n, 8.0);
    // c0 takes its length from the number before it, which it consumes
    let (s, next): (String, f64) = lua
      .load("return struct.unpack('Bc0', struct.pack('Bc0', 3, 'xyz'))")
      .eval()
      .unwrap();
    assert_eq!((s.as_str(), next), ("xyz", 5.0));
  }

  #[test]
  fn bad_formats_and_short_data_are_errors() {
    let lua = lua();
    let err = |src: &str| lua.load(src).exec().unwrap_err().to_string();
    assert!(err("struct.pack('q', 1)").contains("invalid format option 'q'"));
    assert!(err("struct.unpack('>d', 'abc')").contains("data string too short"));
    assert!(err("struct.pack('i9', 1)").contains("larger than limit"));
  }
}
