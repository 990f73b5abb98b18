//! RESP2/RESP3 wire format: an encoder for requests and an incremental,
//! zero-copy parser for replies (bulk strings are slices of the read buffer).
//!
//! ```
//! use atlas_redis::resp::{encode_command, parse, Reply};
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
    v = v
      .checked_mul(10)
      .and_then(|v| v.checked_add((d - b'0') as i64))
      .ok_or_else(|| ProtocolError("integer overflow".into()))?;
  }
  Ok(if neg { -v } else { v })
}

fn check_len(n: i64) -> Result<(), ProtocolError> {
  if n > MAX_LEN || n < -1 {
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
