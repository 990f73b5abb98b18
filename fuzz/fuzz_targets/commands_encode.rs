//! `commands::encode` (argument checks, key prefixing, the redis-rs command of
//! every method) on arbitrary arguments: never panics; a refusal is
//! ERR_INVALID_ARGUMENT; a command packs to exactly one RESP array of bulk
//! strings (read back with memory://'s parser).
#![no_main]
use atlas_redis::commands::{arity, encode, Arg, Op};
use atlas_redis::memory::resp::{parse, Reply};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
  let Some((&op, rest)) = data.split_first() else { return };
  let Some(op) = Op::from_code(op as u32 % Op::ALL.len() as u32) else { return };
  let (prefix, mut rest) = match rest.split_first() {
    Some((&n, r)) if (n as usize) <= r.len() && n < 8 => (&r[..n as usize], &r[n as usize..]),
    _ => (&b""[..], rest),
  };
  let mut args = Vec::new();
  for _ in 0..arity(op) {
    args.push(arg(&mut rest, 0));
  }
  match encode(op, &args, prefix) {
    Err(e) => {
      assert_eq!(e.code.as_str(), "ERR_INVALID_ARGUMENT");
    }
    Ok((cmd, _)) => {
      let mut buf = BytesMut::from(&cmd.get_packed_command()[..]);
      match parse(&mut buf) {
        Ok(Some(Reply::Array(items))) => {
          assert!(!items.is_empty());
          assert!(items.iter().all(|i| matches!(i, Reply::Bulk(_))));
        }
        other => panic!("encoded {op:?} does not parse back: {other:?}"),
      }
      assert!(buf.is_empty(), "more than one command encoded");
    }
  }
});

/// An argument read off the front of `data`.
fn arg<'a>(data: &mut &'a [u8], depth: u32) -> Arg<'a> {
  let Some((&tag, rest)) = data.split_first() else { return Arg::Undefined };
  *data = rest;
  let take = |data: &mut &'a [u8]| -> &'a [u8] {
    let n = data.first().map_or(0, |&n| (n % 16) as usize);
    let n = n.min(data.len().saturating_sub(1));
    let s = &data[1.min(data.len())..1.min(data.len()) + n];
    *data = &data[(1 + n).min(data.len())..];
    s
  };
  match tag % 10 {
    0 => Arg::Undefined,
    1 => Arg::Null,
    2 => Arg::Bool(tag & 0x80 != 0),
    3 => {
      let b = take(data);
      let mut raw = [0u8; 8];
      raw[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
      Arg::Number(match tag >> 4 {
        0 => f64::from_le_bytes(raw),
        1 => f64::NAN,
        2 => f64::INFINITY,
        3 => -0.0,
        _ => i64::from_le_bytes(raw) as f64 / 1000.0,
      })
    }
    4 | 5 => Arg::Str(take(data)),
    6 => Arg::Buf(take(data)),
    7 if depth < 3 => {
      let n = (tag >> 4) as usize % 5;
      Arg::Array((0..n).map(|_| arg(data, depth + 1)).collect())
    }
    8 if depth < 3 => {
      let n = (tag >> 4) as usize % 4;
      Arg::Object((0..n).map(|_| (take(data), arg(data, depth + 1))).collect())
    }
    _ => Arg::Other("symbol"),
  }
}
