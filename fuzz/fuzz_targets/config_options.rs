//! `Config::from_options_json` (what `RedisClient.connect({...})` hands the
//! engine) on arbitrary text: never panics; an accepted object gives a usable
//! config; a string password is never quoted by an error or by `Debug`.
#![no_main]
use atlas_redis::engine::config::Config;
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
  let Ok(json) = std::str::from_utf8(data) else { return };
  let password = password_of(json);
  match Config::from_options_json(json) {
    Ok(c) => {
      assert!(!c.host.is_empty());
      assert!(c.reconnect_min <= c.reconnect_max);
      assert!(c.command_timeout >= Duration::from_millis(1));
      assert!(c.connect_timeout >= Duration::from_millis(1));
      if let Some(pw) = &password {
        assert!(!format!("{c:?}").contains(pw.as_str()), "Debug shows the password");
      }
    }
    Err(e) => {
      assert_eq!(e.code.as_str(), "ERR_INVALID_ARGUMENT");
      if let Some(pw) = &password {
        assert!(!e.message.contains(pw.as_str()), "the error quotes the password: {}", e.message);
      }
    }
  }
});

/// What serde may legitimately quote: the names of the fields.
const FIELD_NAMES: &str = "url host port username password db tls keyPrefix connectTimeoutMs commandTimeoutMs reconnect clientCache ca cert key servername rejectUnauthorized minDelayMs maxDelayMs prefixes maxEntries ttlMs";

/// A plain `"password":"…"` string value of at least 8 characters, if the input has one.
fn password_of(json: &str) -> Option<String> {
  let at = json.find("\"password\":\"")? + 12;
  let end = at + json[at..].find('"')?;
  let pw = &json[at..end];
  // (and only there: text that is also a field name of the input may be quoted as one)
  let once = json.matches(pw).count() == 1;
  (pw.len() >= 8 && once && !pw.contains('\\') && !FIELD_NAMES.contains(pw)).then(|| pw.to_string())
}
