//! memory://'s side of RESP: it parses the commands its clients send and
//! encodes its replies (the client side is redis-rs).
//!
//! ```
//! use atlas_redis::memory::resp::{encode_command, parse, Reply};
//! let mut out = Vec::new();
//! encode_command(&mut out, &[b"GET".as_slice(), b"k"]);
//! assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
//! let mut buf = bytes::BytesMut::from(&b"$2\r\nhi\r\n+OK\r\n"[..]);
//! assert_eq!(parse(&mut buf).unwrap(), Some(Reply::Bulk("hi".into())));
//! assert_eq!(parse(&mut buf).unwrap(), Some(Reply::Status("OK".into())));
//! assert_eq!(parse(&mut buf).unwrap(), None);
//! ```

use bytes::{Bytes, BytesMut};

/// Deepest nesting accepted in a reply; deeper input is a protocol error,
/// not a stack overflow.
const MAX_DEPTH: usize = 64;
/// Largest bulk string or aggregate accepted (Redis' own proto-max-bulk-len default).
const MAX_LEN: i64 = 512 * 1024 * 1024;

/// One reply from the server.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
  Nil,
  /// `+OK` and other simple strings.
  Status(Bytes),
  /// `-ERR ...` (and RESP3 blob errors).
  Error(String),
  Int(i64),
  Bulk(Bytes),
  Array(Vec<Reply>),
  /// RESP3 map, kept as pairs in server order.
  Map(Vec<(Reply, Reply)>),
  Double(f64),
  Bool(bool),
  /// RESP3 big number, as its decimal text.
  BigNumber(Bytes),
  /// RESP3 out-of-band push (`>`), e.g. client-tracking invalidations.
  Push(Vec<Reply>),
}

/// The stream is not RESP: the connection must be dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    write!(f, "protocol error: {}", self.0)
  }
}

// ---- encoding -------------------------------------------------------------

/// Appends the decimal form of `n`.
pub fn push_int(out: &mut Vec<u8>, n: i64) {
  let mut buf = [0u8; 20];
  let mut i = buf.len();
  let neg = n < 0;
  let mut v = n.unsigned_abs();
  loop {
    i -= 1;
    buf[i] = b'0' + (v % 10) as u8;
    v /= 10;
    if v == 0 {
      break;
    }
  }
  if neg {
    out.push(b'-');
  }
  out.extend_from_slice(&buf[i..]);
}

/// `*<n>\r\n`
pub fn push_array_header(out: &mut Vec<u8>, n: usize) {
  out.push(b'*');
  push_int(out, n as i64);
  out.extend_from_slice(b"\r\n");
}

/// `$<len>\r\n` — the caller then appends the bytes and [`push_bulk_end`].
pub fn push_bulk_header(out: &mut Vec<u8>, len: usize) {
  out.push(b'$');
  push_int(out, len as i64);
  out.extend_from_slice(b"\r\n");
}

pub fn push_bulk_end(out: &mut Vec<u8>) {
  out.extend_from_slice(b"\r\n");
}

/// One bulk string.
pub fn push_bulk(out: &mut Vec<u8>, data: &[u8]) {
  push_bulk_header(out, data.len());
  out.extend_from_slice(data);
  push_bulk_end(out);
}

/// A bulk string made of `prefix` followed by `data` (key prefixing without a temporary).
pub fn push_bulk_prefixed(out: &mut Vec<u8>, prefix: &[u8], data: &[u8]) {
  push_bulk_header(out, prefix.len() + data.len());
  out.extend_from_slice(prefix);
  out.extend_from_slice(data);
  push_bulk_end(out);
}

/// A bulk string holding the decimal form of `n`.
pub fn push_bulk_int(out: &mut Vec<u8>, n: i64) {
  let mut tmp = Vec::with_capacity(20);
  push_int(&mut tmp, n);
  push_bulk(out, &tmp);
}

/// A whole command from its parts.
pub fn encode_command(out: &mut Vec<u8>, parts: &[&[u8]]) {
  push_array_header(out, parts.len());
  for p in parts {
    push_bulk(out, p);
  }
}

// ---- parsing --------------------------------------------------------------

/// Takes one complete reply off the front of `buf`, or returns `Ok(None)` and
/// leaves `buf` untouched when more bytes are needed.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Reply>, ProtocolError> {
  let len = match frame_len(buf, 0, 0)? {
    Some(n) => n,
    None => return Ok(None),
  };
  let frame = buf.split_to(len).freeze();
  let (reply, used) = build(&frame, 0)?;
  debug_assert_eq!(used, len);
  Ok(Some(reply))
}

/// Finds the end of the line starting at `pos`; returns the index of `\r`.
fn line_end(buf: &[u8], pos: usize) -> Option<usize> {
  let rest = buf.get(pos..)?;
  let i = rest.iter().position(|&b| b == b'\r')?;
  if pos + i + 1 < buf.len() {
    Some(pos + i)
  } else {
    None
  }
}

fn parse_i64(line: &[u8]) -> Result<i64, ProtocolError> {
  let (neg, digits) = match line.first() {
    Some(b'-') => (true, &line[1..]),
    Some(b'+') => (false, &line[1..]),
    _ => (false, line),
  };
  if digits.is_empty() || digits.len() > 19 {
    return Err(ProtocolError(format!(
      "bad integer {:?}",
      String::from_utf8_lossy(line)
    )));
  }
  let mut v: i64 = 0;
  for &d in digits {
    if !d.is_ascii_digit() {
      return Err(ProtocolError(format!(
        "bad integer {:?}",
        String::from_utf8_lossy(line)
      )));
    }
    // Accumulate towards the sign so that i64::MIN, which has no positive twin, parses.
    let digit = (d - b'0') as i64;
    v = v
      .checked_mul(10)
      .and_then(|v| {
        if neg {
          v.checked_sub(digit)
        } else {
          v.checked_add(digit)
        }
      })
      .ok_or_else(|| ProtocolError("integer overflow".into()))?;
  }
  Ok(v)
}

fn check_len(n: i64) -> Result<(), ProtocolError> {
  if !(-1..=MAX_LEN).contains(&n) {
    Err(ProtocolError(format!("length {n} out of range")))
  } else {
    Ok(())
  }
}

/// Length in bytes of the complete frame at `pos`, or None if incomplete.
fn frame_len(buf: &[u8], pos: usize, depth: usize) -> Result<Option<usize>, ProtocolError> {
  if depth > MAX_DEPTH {
    return Err(ProtocolError("reply nested too deeply".into()));
  }
  let Some(&tag) = buf.get(pos) else {
    return Ok(None);
  };
  let Some(end) = line_end(buf, pos + 1) else {
    return Ok(None);
  };
  if buf[end + 1] != b'\n' {
    return Err(ProtocolError("missing LF after CR".into()));
  }
  let line = &buf[pos + 1..end];
  let after = end + 2;
  match tag {
    b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => Ok(Some(after - pos)),
    b'$' | b'!' | b'=' => {
      let n = parse_i64(line)?;
      check_len(n)?;
      if n < 0 {
        return Ok(Some(after - pos));
      }
      let total = after + n as usize + 2;
      if buf.len() < total {
        return Ok(None);
      }
      if &buf[total - 2..total] != b"\r\n" {
        return Err(ProtocolError("bulk string not terminated by CRLF".into()));
      }
      Ok(Some(total - pos))
    }
    b'*' | b'~' | b'>' | b'%' | b'|' => {
      let n = parse_i64(line)?;
      check_len(n)?;
      if n < 0 {
        return Ok(Some(after - pos));
      }
      let items = if tag == b'%' || tag == b'|' {
        n as usize * 2
      } else {
        n as usize
      };
      let mut p = after;
      for _ in 0..items {
        match frame_len(buf, p, depth + 1)? {
          Some(l) => p += l,
          None => return Ok(None),
        }
      }
      if tag == b'|' {
        // An attribute is followed by the reply it annotates.
        match frame_len(buf, p, depth + 1)? {
          Some(l) => p += l,
          None => return Ok(None),
        }
      }
      Ok(Some(p - pos))
    }
    other => Err(ProtocolError(format!("unexpected type byte 0x{other:02x}"))),
  }
}

/// Builds the reply at `pos` of a frame already known to be complete.
fn build(frame: &Bytes, pos: usize) -> Result<(Reply, usize), ProtocolError> {
  let tag = frame[pos];
  let end = pos + 1 + frame[pos + 1..].iter().position(|&b| b == b'\r').unwrap();
  let line = &frame[pos + 1..end];
  let after = end + 2;
  let used = |p: usize| p - pos;
  let reply = match tag {
    b'+' => return Ok((Reply::Status(frame.slice(pos + 1..end)), used(after))),
    b'-' => Reply::Error(String::from_utf8_lossy(line).into_owned()),
    b':' => Reply::Int(parse_i64(line)?),
    b'_' => Reply::Nil,
    b'#' => Reply::Bool(line == b"t"),
    b',' => {
      let s = std::str::from_utf8(line).map_err(|_| ProtocolError("bad double".into()))?;
      let v = match s {
        "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        _ => s
          .parse()
          .map_err(|_| ProtocolError(format!("bad double {s:?}")))?,
      };
      Reply::Double(v)
    }
    b'(' => return Ok((Reply::BigNumber(frame.slice(pos + 1..end)), used(after))),
    b'$' | b'!' | b'=' => {
      let n = parse_i64(line)?;
      if n < 0 {
        return Ok((Reply::Nil, used(after)));
      }
      let data_end = after + n as usize;
      let mut data = frame.slice(after..data_end);
      if tag == b'=' && data.len() >= 4 {
        // Verbatim string: drop the "txt:" format marker.
        data = data.slice(4..);
      }
      let reply = if tag == b'!' {
        Reply::Error(String::from_utf8_lossy(&data).into_owned())
      } else {
        Reply::Bulk(data)
      };
      return Ok((reply, used(data_end + 2)));
    }
    b'*' | b'~' | b'>' | b'%' | b'|' => {
      let n = parse_i64(line)?;
      if n < 0 {
        return Ok((Reply::Nil, used(after)));
      }
      let n = n as usize;
      let mut p = after;
      if tag == b'%' || tag == b'|' {
        let mut pairs = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
          let (k, l) = build(frame, p)?;
          p += l;
          let (v, l) = build(frame, p)?;
          p += l;
          pairs.push((k, v));
        }
        if tag == b'|' {
          // Attributes are metadata we do not use: return the annotated reply.
          let (r, l) = build(frame, p)?;
          return Ok((r, used(p + l)));
        }
        return Ok((Reply::Map(pairs), used(p)));
      }
      let mut items = Vec::with_capacity(n.min(1024));
      for _ in 0..n {
        let (r, l) = build(frame, p)?;
        p += l;
        items.push(r);
      }
      let r = if tag == b'>' {
        Reply::Push(items)
      } else {
        Reply::Array(items)
      };
      return Ok((r, used(p)));
    }
    _ => unreachable!("frame_len validated the type byte"),
  };
  Ok((reply, used(after)))
}

#[cfg(test)]
mod tests {
  use super::*;

  fn parse_all(input: &[u8]) -> Vec<Reply> {
    let mut buf = BytesMut::from(input);
    let mut out = vec![];
    while let Some(r) = parse(&mut buf).unwrap() {
      out.push(r);
    }
    assert!(buf.is_empty(), "left over: {:?}", buf);
    out
  }

  #[test]
  fn encodes_ints() {
    for n in [0i64, 7, -7, 1234567890, i64::MIN, i64::MAX] {
      let mut v = vec![];
      push_int(&mut v, n);
      assert_eq!(String::from_utf8(v).unwrap(), n.to_string());
    }
  }

  #[test]
  fn parses_every_type() {
    let input = b"+OK\r\n-ERR bad\r\n:42\r\n$-1\r\n*-1\r\n$0\r\n\r\n*2\r\n$1\r\na\r\n:1\r\n_\r\n#t\r\n,1.5\r\n(123\r\n%1\r\n+k\r\n+v\r\n>2\r\n+invalidate\r\n*1\r\n$1\r\nx\r\n=7\r\ntxt:abc\r\n";
    let r = parse_all(input);
    assert_eq!(r[0], Reply::Status("OK".into()));
    assert_eq!(r[1], Reply::Error("ERR bad".into()));
    assert_eq!(r[2], Reply::Int(42));
    assert_eq!(r[3], Reply::Nil);
    assert_eq!(r[4], Reply::Nil);
    assert_eq!(r[5], Reply::Bulk(Bytes::new()));
    assert_eq!(
      r[6],
      Reply::Array(vec![Reply::Bulk("a".into()), Reply::Int(1)])
    );
    assert_eq!(r[7], Reply::Nil);
    assert_eq!(r[8], Reply::Bool(true));
    assert_eq!(r[9], Reply::Double(1.5));
    assert_eq!(r[10], Reply::BigNumber("123".into()));
    assert_eq!(
      r[11],
      Reply::Map(vec![(Reply::Status("k".into()), Reply::Status("v".into()))])
    );
    assert!(matches!(&r[12], Reply::Push(v) if v.len() == 2));
    assert_eq!(r[13], Reply::Bulk("abc".into()));
  }

  #[test]
  fn incomplete_input_waits_at_every_split() {
    let input: &[u8] = b"*3\r\n$5\r\nhello\r\n:-12\r\n*1\r\n$3\r\n\r\n\n\r\n";
    for cut in 0..input.len() {
      let mut buf = BytesMut::from(&input[..cut]);
      assert_eq!(parse(&mut buf).unwrap(), None, "cut at {cut}");
      assert_eq!(buf.len(), cut);
    }
    let r = parse_all(input);
    assert_eq!(
      r[0],
      Reply::Array(vec![
        Reply::Bulk("hello".into()),
        Reply::Int(-12),
        Reply::Array(vec![Reply::Bulk("\r\n\n".into())]),
      ])
    );
  }

  #[test]
  fn binary_bulk_round_trip() {
    let data: Vec<u8> = (0..=255u8).collect();
    let mut out = vec![];
    push_bulk(&mut out, &data);
    assert_eq!(parse_all(&out), vec![Reply::Bulk(Bytes::from(data))]);
  }

  #[test]
  fn rejects_garbage() {
    for bad in [
      &b"?x\r\n"[..],
      b"$abc\r\n",
      b"$3\r\nabcXY",
      b":99999999999999999999\r\n",
      b"*-5\r\n",
      b"+OK\rX",
    ] {
      let mut buf = BytesMut::from(bad);
      assert!(
        parse(&mut buf).is_err(),
        "{:?}",
        String::from_utf8_lossy(bad)
      );
    }
  }

  /// Random RESP2 replies, parsed by ours and by redis-rs: both must agree.
  #[test]
  fn agrees_with_redis_rs_on_random_replies() {
    fn gen(seed: &mut u64, depth: u32, out: &mut Vec<u8>) {
      *seed ^= *seed << 13;
      *seed ^= *seed >> 7;
      *seed ^= *seed << 17;
      let r = *seed;
      match r % if depth > 3 { 4 } else { 5 } {
        0 => out.extend_from_slice(format!("+s{}\r\n", r % 1000).as_bytes()),
        1 => out.extend_from_slice(format!(":{}\r\n", (r as i64) >> 3).as_bytes()),
        2 => out.extend_from_slice(b"$-1\r\n"),
        3 => {
          let data: Vec<u8> = (0..(r % 40)).map(|i| (r >> (i % 56)) as u8).collect();
          push_bulk(out, &data);
        }
        _ => {
          let n = (r % 5) as usize;
          push_array_header(out, n);
          for _ in 0..n {
            gen(seed, depth + 1, out);
          }
        }
      }
    }
    fn same(a: &Reply, b: &redis::Value) -> bool {
      use redis::Value as V;
      match (a, b) {
        (Reply::Nil, V::Nil) => true,
        (Reply::Int(x), V::Int(y)) => x == y,
        (Reply::Status(x), V::SimpleString(y)) => x[..] == *y.as_bytes(),
        (Reply::Status(x), V::Okay) => &x[..] == b"OK",
        (Reply::Bulk(x), V::BulkString(y)) => x[..] == y[..],
        (Reply::Array(x), V::Array(y)) => {
          x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        _ => false,
      }
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
      let mut wire = Vec::new();
      gen(&mut seed, 0, &mut wire);
      let theirs = redis::parse_redis_value(&wire).expect("redis-rs parses it");
      let mut buf = BytesMut::from(&wire[..]);
      let ours = parse(&mut buf).unwrap().expect("complete");
      assert!(buf.is_empty());
      assert!(same(&ours, &theirs), "{ours:?} vs {theirs:?}");
    }
  }

  #[test]
  fn deep_nesting_is_an_error_not_a_crash() {
    let mut input = Vec::new();
    for _ in 0..10_000 {
      input.extend_from_slice(b"*1\r\n");
    }
    input.extend_from_slice(b":1\r\n");
    let mut buf = BytesMut::from(&input[..]);
    assert!(parse(&mut buf).is_err());
  }
}

/// Stable-Rust stand-in for `fuzz/fuzz_targets/resp_parse.rs` (cargo fuzz needs
/// nightly): about 100,000 seeded inputs — random bytes, valid RESP2/RESP3
/// replies, their truncations and byte-level mutations — through `parse`,
/// checking that it never panics and that it keeps its contract.
#[cfg(test)]
mod fuzz_smoke {
  use super::*;

  use crate::test_rng::Rng;

  const LINE_SAFE: &[u8] = b"abcXYZ019 _-:{}'\"[]()\\*?$+#,.%=!|~>";
  const RESP_BYTES: &[u8] = b"+-:$*_#,(!=%~>|\r\n0123456789-abc";

  /// A random reply (any RESP3 type our parser returns) and its wire form.
  fn gen(rng: &mut Rng, depth: u32, out: &mut Vec<u8>) -> Reply {
    let kinds = if depth >= 4 { 9 } else { 13 };
    match rng.below(kinds) {
      0 => {
        let s = rng.bytes(12, LINE_SAFE);
        out.push(b'+');
        out.extend_from_slice(&s);
        out.extend_from_slice(b"\r\n");
        Reply::Status(Bytes::from(s))
      }
      1 => {
        let s = rng.bytes(12, LINE_SAFE);
        out.push(b'-');
        out.extend_from_slice(&s);
        out.extend_from_slice(b"\r\n");
        Reply::Error(String::from_utf8(s).unwrap())
      }
      2 => {
        let n = match rng.below(6) {
          0 => i64::MAX,
          1 => i64::MAX - 1,
          2 => i64::MIN + 1,
          _ => (rng.next() as i64) >> rng.below(63),
        };
        out.extend_from_slice(format!(":{n}\r\n").as_bytes());
        Reply::Int(n)
      }
      3 => {
        let data = rng.bytes(40, &[]);
        push_bulk(out, &data);
        Reply::Bulk(Bytes::from(data))
      }
      4 => {
        out.extend_from_slice(if rng.below(3) == 0 {
          b"_\r\n".as_slice()
        } else if rng.below(2) == 0 {
          b"$-1\r\n".as_slice()
        } else {
          b"*-1\r\n".as_slice()
        });
        Reply::Nil
      }
      5 => {
        let b = rng.below(2) == 0;
        out.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        Reply::Bool(b)
      }
      6 => {
        let v = match rng.below(5) {
          0 => f64::INFINITY,
          1 => f64::NEG_INFINITY,
          2 => 0.0,
          _ => (rng.next() as i64 as f64) / (1u64 << rng.below(60)) as f64,
        };
        let text = if v == f64::INFINITY {
          "inf".to_string()
        } else if v == f64::NEG_INFINITY {
          "-inf".to_string()
        } else {
          format!("{v}")
        };
        out.extend_from_slice(format!(",{text}\r\n").as_bytes());
        Reply::Double(v)
      }
      7 => {
        let digits = format!("{}{}", if rng.below(2) == 0 { "-" } else { "" }, rng.next());
        out.extend_from_slice(format!("({digits}\r\n").as_bytes());
        Reply::BigNumber(Bytes::from(digits))
      }
      8 => {
        // blob error and verbatim string
        let data = rng.bytes(20, LINE_SAFE);
        if rng.below(2) == 0 {
          out.extend_from_slice(format!("!{}\r\n", data.len()).as_bytes());
          out.extend_from_slice(&data);
          out.extend_from_slice(b"\r\n");
          Reply::Error(String::from_utf8(data).unwrap())
        } else {
          out.extend_from_slice(format!("={}\r\ntxt:", data.len() + 4).as_bytes());
          out.extend_from_slice(&data);
          out.extend_from_slice(b"\r\n");
          Reply::Bulk(Bytes::from(data))
        }
      }
      9 | 10 => {
        let n = rng.below(5) as usize;
        let tag = [b'*', b'~', b'>'][rng.below(3) as usize];
        out.extend_from_slice(format!("{}{n}\r\n", tag as char).as_bytes());
        let items = (0..n).map(|_| gen(rng, depth + 1, out)).collect();
        if tag == b'>' {
          Reply::Push(items)
        } else {
          Reply::Array(items)
        }
      }
      11 => {
        let n = rng.below(4) as usize;
        out.extend_from_slice(format!("%{n}\r\n").as_bytes());
        Reply::Map(
          (0..n)
            .map(|_| (gen(rng, depth + 1, out), gen(rng, depth + 1, out)))
            .collect(),
        )
      }
      _ => {
        // an attribute: metadata, then the reply it annotates (what parse returns)
        let n = rng.below(3) as usize;
        out.extend_from_slice(format!("|{n}\r\n").as_bytes());
        for _ in 0..2 * n {
          let mut skip = Vec::new();
          gen(rng, depth + 1, &mut skip);
          out.extend_from_slice(&skip);
        }
        gen(rng, depth + 1, out)
      }
    }
  }

  /// `parse`'s contract on one input: no panic; `Ok(None)` leaves the buffer
  /// untouched; `Ok(Some)` takes a non-empty prefix and leaves the rest as it was.
  fn check(input: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
    let mut buf = BytesMut::from(input);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(&mut buf)))
      .unwrap_or_else(|_| panic!("parse panicked on {:?}", String::from_utf8_lossy(input)));
    match r {
      Ok(None) => {
        assert_eq!(
          &buf[..],
          input,
          "incomplete input must not be consumed: {:?}",
          String::from_utf8_lossy(input)
        );
        Ok(None)
      }
      Ok(Some(reply)) => {
        let used = input.len() - buf.len();
        assert!(used > 0, "a reply from no bytes");
        assert_eq!(&buf[..], &input[used..], "the rest must stay as it was");
        Ok(Some((reply, used)))
      }
      Err(e) => Err(e),
    }
  }

  #[test]
  fn valid_replies_round_trip_and_every_prefix_waits() {
    let mut rng = Rng(0x5eed_0010);
    let mut checked = 0;
    for _ in 0..20_000 {
      let mut wire = Vec::new();
      let want = gen(&mut rng, 0, &mut wire);
      // followed by another reply: parse takes exactly the first
      let mut two = wire.clone();
      two.extend_from_slice(b"+next\r\n");
      let (got, used) = check(&two)
        .unwrap_or_else(|e| panic!("{e} on {:?}", String::from_utf8_lossy(&wire)))
        .expect("complete");
      assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&wire));
      assert_eq!(used, wire.len());
      // every strict prefix is incomplete, and consumes nothing
      let step = (wire.len() / 16).max(1);
      for cut in (0..wire.len()).step_by(step) {
        assert!(
          matches!(check(&wire[..cut]), Ok(None)),
          "prefix {cut} of {:?}",
          String::from_utf8_lossy(&wire)
        );
        checked += 1;
      }
    }
    assert!(checked > 20_000);
  }

  #[test]
  fn mutated_and_random_input_never_panics() {
    let mut rng = Rng(0x0bad_c0de);
    let mut outcomes = [0usize; 3];
    for i in 0..80_000 {
      let input = if i % 4 == 0 {
        // pure noise, with and without RESP-looking bytes
        let alphabet: &[u8] = if i % 8 == 0 { &[] } else { RESP_BYTES };
        rng.bytes(64, alphabet)
      } else {
        // a valid reply with a few bytes flipped, inserted, deleted or truncated
        let mut wire = Vec::new();
        gen(&mut rng, 0, &mut wire);
        for _ in 0..=rng.below(3) {
          if wire.is_empty() {
            break;
          }
          let at = rng.below(wire.len() as u64) as usize;
          match rng.below(5) {
            0 => wire[at] = RESP_BYTES[rng.below(RESP_BYTES.len() as u64) as usize],
            1 => wire[at] = rng.next() as u8,
            2 => wire.insert(at, RESP_BYTES[rng.below(RESP_BYTES.len() as u64) as usize]),
            3 => {
              wire.remove(at);
            }
            _ => wire.truncate(at),
          }
        }
        wire
      };
      match check(&input) {
        Ok(None) => outcomes[0] += 1,
        Ok(Some(_)) => outcomes[1] += 1,
        Err(_) => outcomes[2] += 1,
      }
      // fed in two pieces, the stream gives the same first reply
      if let Ok(Some((whole, used))) = check(&input) {
        let cut = rng.below(used as u64) as usize;
        let mut buf = BytesMut::from(&input[..cut]);
        assert_eq!(parse(&mut buf).ok().flatten(), None);
        buf.extend_from_slice(&input[cut..]);
        assert_eq!(parse(&mut buf).ok().flatten(), Some(whole));
      }
    }
    // the generator reached all three outcomes
    assert!(outcomes.iter().all(|&n| n > 1000), "{outcomes:?}");
  }

  #[test]
  fn deeply_nested_and_huge_lengths_are_errors_or_waits_not_crashes() {
    for input in [
      b"*2147483647\r\n".to_vec(),
      b"$536870912\r\n".to_vec(),
      b"$536870913\r\n".to_vec(),
      b"%268435456\r\n".to_vec(),
      b"*9223372036854775807\r\n".to_vec(),
      b"$-2\r\n".to_vec(),
      [b"|1\r\n".repeat(100), b":1\r\n".to_vec()].concat(),
      [b"%1\r\n".repeat(100), b":1\r\n".to_vec()].concat(),
      [b">1\r\n".repeat(65), b":1\r\n".to_vec()].concat(),
    ] {
      let _ = check(&input);
    }
  }

  /// Redis sends any 64-bit integer: `INCRBY k -9223372036854775808`, or a Lua
  /// script returning a number below -2^63 (clamped to LLONG_MIN), answer
  /// `:-9223372036854775808`. Refusing it drops the connection and fails every
  /// call in flight on it.
  #[test]
  fn integer_replies_cover_the_whole_i64_range() {
    for n in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX] {
      let wire = format!(":{n}\r\n");
      let got = check(wire.as_bytes());
      assert!(
        matches!(&got, Ok(Some((Reply::Int(v), _))) if *v == n),
        "{wire:?} parsed as {got:?}"
      );
    }
  }
}
