//! Lua scripts shipped with the package. Each runs by `EVALSHA`; the caller
//! falls back to `EVAL` with the source when the server answers `NOSCRIPT`
//! (after a restart or `SCRIPT FLUSH`), which is safe because NOSCRIPT means
//! nothing ran.
//!
//! ```
//! use atlas_redis::scripts::{script, SCRIPTS};
//! let s = script(0).unwrap();
//! assert_eq!(s.name, "throttle");
//! assert_eq!(s.sha1.len(), 40);
//! assert!(s.source.contains("redis.call('TIME')"));
//! assert_eq!(SCRIPTS.len() as u32, atlas_redis::scripts::count());
//! ```

use std::sync::OnceLock;

/// Script names and sources, in id order; TypeScript looks ids up by name.
pub const SCRIPTS: &[(&str, &str)] = &[
  // @nestjs/throttler's in-memory storage semantics, for the increments of one
  // tick in one call, one after another (lib/throttler.ts)
  ("throttle", include_str!("throttle.lua")),
  // RedisThrottlerGuard: the named throttlers of each request in one call; a
  // request's increments after a blocked one are not run (lib/ratelimit/throttler-guard.ts)
  ("throttle_all", include_str!("throttle_all.lua")),
  // GCRA, fixed and sliding windows, several rules at once (lib/ratelimit.ts)
  ("ratelimit", include_str!("ratelimit.lua")),
  // client.cache.wrap(): value-or-lock, store-if-still-locked, release (lib/cache.ts)
  ("cache_lock", include_str!("cache_lock.lua")),
  ("cache_store", include_str!("cache_store.lua")),
  ("cache_unlock", include_str!("cache_unlock.lua")),
  // client.sessions: one session by its token's hash; a user's index (lib/sessions.ts)
  ("session", include_str!("session.lua")),
  ("session_index", include_str!("session_index.lua")),
  // Better Auth's SecondaryStorage.increment (lib/better-auth.ts)
  ("better_auth_incr", include_str!("better_auth_incr.lua")),
];

/// A script with its SHA-1 (as `SCRIPT LOAD` would report it).
pub struct Script {
  pub name: &'static str,
  pub source: &'static str,
  pub sha1: String,
}

fn all() -> &'static [Script] {
  static ALL: OnceLock<Vec<Script>> = OnceLock::new();
  ALL.get_or_init(|| {
    SCRIPTS
      .iter()
      .map(|(name, source)| Script {
        name,
        source,
        sha1: sha1_smol::Sha1::from(source.as_bytes())
          .digest()
          .to_string(),
      })
      .collect()
  })
}

pub fn script(id: u32) -> Option<&'static Script> {
  all().get(id as usize)
}

pub fn count() -> u32 {
  SCRIPTS.len() as u32
}

#[cfg(test)]
mod tests {
  use super::*;

  /// Scripts that never compute a moment: their only times are TTLs handed to
  /// `SET … PX`, so they need no clock (the others must read the server's).
  const CLOCKLESS: &[&str] = &[
    "cache_lock",
    "cache_store",
    "cache_unlock",
    "better_auth_incr",
  ];

  #[test]
  fn every_script_has_a_unique_name_and_a_sha1() {
    let mut names = std::collections::HashSet::new();
    for id in 0..count() {
      let s = script(id).unwrap();
      assert!(names.insert(s.name), "duplicate script name {}", s.name);
      assert_eq!(s.sha1.len(), 40);
      assert!(s
        .sha1
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
      // keys only ever arrive as KEYS, the clock only from the server
      assert!(s.source.contains("KEYS["), "{} reads no KEYS", s.name);
      assert!(
        CLOCKLESS.contains(&s.name) || s.source.contains("redis.call('TIME')"),
        "{} must use the server's clock",
        s.name
      );
    }
    assert!(script(count()).is_none());
  }

  #[test]
  fn sha1_matches_redis() {
    // SCRIPT LOAD "return 'PONG'" on a real server answers this digest: EVALSHA
    // names a script by the SHA-1 of its exact source bytes.
    assert_eq!(
      sha1_smol::Sha1::from("return 'PONG'").digest().to_string(),
      "7814fe8768dc7e582b000899dbd910a0a03a95b4"
    );
  }
}
