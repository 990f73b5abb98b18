//! `Config::from_url` on arbitrary text: never panics; an accepted URL gives a
//! usable config; neither an error nor `Debug` shows the password it held.
#![no_main]
use atlas_redis::engine::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
  let Ok(input) = std::str::from_utf8(data) else { return };
  match Config::from_url(input) {
    Ok(c) => {
      assert!(!c.host.is_empty());
      if let Some(pw) = c.password_str().filter(|p| p.len() >= 6) {
        assert!(!format!("{c:?}").contains(pw), "Debug shows the password");
      }
    }
    Err(e) => {
      assert_eq!(e.code.as_str(), "ERR_INVALID_ARGUMENT");
      // A password written in the usual place (`//user:secret@`) must not be quoted.
      if let Some(pw) = password_of(input).filter(|p| p.len() >= 6) {
        assert!(!e.message.contains(pw), "the error quotes the password: {}", e.message);
      }
    }
  }
});

/// The text between `//user:` and the last `@` of the authority, if any.
fn password_of(url: &str) -> Option<&str> {
  let rest = &url[url.find("://")? + 3..];
  let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
  let userinfo = &authority[..authority.rfind('@')?];
  Some(&userinfo[userinfo.find(':')? + 1..])
}
