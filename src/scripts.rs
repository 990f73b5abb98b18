//! Lua scripts shipped with the package. Each runs by `EVALSHA`; the caller
//! falls back to `EVAL` with the source when the server answers `NOSCRIPT`
//! (after a restart or `SCRIPT FLUSH`), which is safe because NOSCRIPT means
//! nothing ran.
//!
//! ```
//! use atlas_redis::scripts::{script, SCRIPTS};
//! let s = script(0).unwrap();
//! assert_eq!(s.sha1.len(), 40);
//! assert_eq!(SCRIPTS.len() as u32, atlas_redis::scripts::count());
//! ```

use std::sync::OnceLock;

/// Script names and sources, in id order; TypeScript looks ids up by name.
pub const SCRIPTS: &[(&str, &str)] = &[("ping", "return 'PONG'")];

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

  #[test]
  fn sha1_matches_redis() {
    // SCRIPT LOAD "return 'PONG'" on a real server answers this digest.
    let s = script(0).unwrap();
    assert_eq!(s.name, "ping");
    assert_eq!(
      s.sha1,
      sha1_smol::Sha1::from("return 'PONG'").digest().to_string()
    );
    assert!(script(count()).is_none());
  }
}
