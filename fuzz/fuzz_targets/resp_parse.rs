//! `memory::resp::parse` (memory:// reads every command its clients send with it) on arbitrary
//! bytes: never panics; `Ok(None)` (incomplete) consumes nothing; a reply takes
//! a non-empty prefix and leaves the rest as it was; fed in two pieces, the
//! stream gives the same reply. Error replies go through `Error::from_server`
//! (the reply conversion behind `ERR_REPLY` / `ERR_AUTH`).
#![no_main]
use atlas_redis::error::Error;
use atlas_redis::memory::resp::{parse, Reply};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
  let mut buf = BytesMut::from(data);
  let mut rest: &[u8] = data;
  // every reply in the input, one after the other
  loop {
    match parse(&mut buf) {
      Ok(None) => {
        assert_eq!(&buf[..], rest, "incomplete input was consumed");
        break;
      }
      Ok(Some(reply)) => {
        let used = rest.len() - buf.len();
        assert!(used > 0);
        assert_eq!(&buf[..], &rest[used..]);
        // the same reply when the frame arrives in two pieces
        let cut = used / 2;
        let mut split = BytesMut::from(&rest[..cut]);
        assert_eq!(parse(&mut split).ok().flatten(), None);
        split.extend_from_slice(&rest[cut..used]);
        assert_eq!(parse(&mut split).ok().flatten().as_ref(), Some(&reply));
        convert(&reply);
        rest = &rest[used..];
      }
      Err(_) => break,
    }
  }
});

fn convert(r: &Reply) {
  match r {
    Reply::Error(text) => {
      let e = Error::from_server(text);
      assert!(matches!(e.code.as_str(), "ERR_REPLY" | "ERR_AUTH"));
    }
    Reply::Array(items) | Reply::Push(items) => items.iter().for_each(convert),
    Reply::Map(pairs) => pairs.iter().for_each(|(k, v)| {
      convert(k);
      convert(v)
    }),
    _ => {}
  }
}
