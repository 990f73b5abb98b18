//! Error codes: every failure the package reports is classified here, once.
//!
//! ```
//! use atlas_redis::error::{Error, ErrorCode};
//! let e = Error::invalid("get(): key must be a non-empty string or Buffer");
//! assert_eq!(e.code, ErrorCode::InvalidArgument);
//! assert_eq!(e.code.as_str(), "ERR_INVALID_ARGUMENT");
//! ```

use std::fmt;
use std::io;

/// The `code` carried by every rejection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
  /// Bad input; nothing was sent.
  InvalidArgument,
  /// The server could not be reached, or the connection was lost.
  Connection,
  /// No reply within `commandTimeoutMs`.
  Timeout,
  /// The server refused the credentials (or wants some).
  Auth,
  /// TLS handshake or certificate failure.
  Tls,
  /// The server answered with an error reply; its text is kept.
  Reply,
  /// The client was closed.
  Closed,
  /// A bug in this package (a caught panic).
  Internal,
}

impl ErrorCode {
  /// The string code seen by JavaScript.
  pub fn as_str(self) -> &'static str {
    match self {
      ErrorCode::InvalidArgument => "ERR_INVALID_ARGUMENT",
      ErrorCode::Connection => "ERR_CONNECTION",
      ErrorCode::Timeout => "ERR_TIMEOUT",
      ErrorCode::Auth => "ERR_AUTH",
      ErrorCode::Tls => "ERR_TLS",
      ErrorCode::Reply => "ERR_REPLY",
      ErrorCode::Closed => "ERR_CLOSED",
      ErrorCode::Internal => "ERR_INTERNAL",
    }
  }
}

/// A classified error: a code and a message that never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
  pub code: ErrorCode,
  pub message: String,
  /// For a server's error reply: its first word (`WRONGTYPE`, `NOSCRIPT`, `READONLY`, …).
  pub server_code: Option<String>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
  pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
    Error {
      code,
      message: message.into(),
      server_code: None,
    }
  }

  pub fn invalid(message: impl Into<String>) -> Self {
    Self::new(ErrorCode::InvalidArgument, message)
  }

  pub fn closed() -> Self {
    Self::new(ErrorCode::Closed, "the client is closed")
  }

  /// An error reply from the server. Replies that mean "who are you?" are
  /// auth failures; everything else keeps the server's text as `ERR_REPLY`.
  pub fn from_server(text: &str) -> Self {
    let auth = ["NOAUTH", "WRONGPASS", "NOPERM"]
      .iter()
      .any(|p| text.starts_with(p))
      || text.starts_with("ERR invalid password")
      || text.starts_with("ERR AUTH")
      || text.contains("called without any password configured");
    let code = if auth {
      ErrorCode::Auth
    } else {
      ErrorCode::Reply
    };
    let mut e = Self::new(code, text);
    e.server_code = text
      .split(' ')
      .next()
      .filter(|w| !w.is_empty())
      .map(str::to_string);
    e
  }

  /// Removes every occurrence of `secret` from the message (defence in depth:
  /// no code path puts a password into a message, but a server might echo one).
  pub fn redact(mut self, secret: Option<&str>) -> Self {
    if let Some(s) = secret.filter(|s| !s.is_empty()) {
      if self.message.contains(s) {
        self.message = self.message.replace(s, "***");
      }
    }
    self
  }
}

impl fmt::Display for Error {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}: {}", self.code.as_str(), self.message)
  }
}

impl std::error::Error for Error {}

/// A short lowercase reason for a socket error, as in
/// `cannot reach 127.0.0.1:6390 (connection refused)`.
pub fn io_reason(e: &io::Error) -> String {
  use io::ErrorKind::*;
  match e.kind() {
    ConnectionRefused => "connection refused".into(),
    ConnectionReset => "connection reset by peer".into(),
    ConnectionAborted => "connection aborted".into(),
    NotConnected => "not connected".into(),
    TimedOut => "timed out".into(),
    UnexpectedEof => "connection closed by the server".into(),
    BrokenPipe => "broken pipe".into(),
    AddrNotAvailable => "address not available".into(),
    _ => {
      // Strip the " (os error N)" suffix std adds; keep the OS text.
      let s = e.to_string();
      match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s.to_lowercase(),
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn classifies_server_errors() {
    assert_eq!(
      Error::from_server("NOAUTH Authentication required.").code,
      ErrorCode::Auth
    );
    assert_eq!(
      Error::from_server("WRONGPASS invalid username-password pair or user is disabled.").code,
      ErrorCode::Auth
    );
    let e = Error::from_server("WRONGTYPE Operation against a key holding the wrong kind of value");
    assert_eq!(e.code, ErrorCode::Reply);
    assert_eq!(e.server_code.as_deref(), Some("WRONGTYPE"));
  }

  #[test]
  fn redacts_secrets() {
    let e = Error::new(ErrorCode::Auth, "bad s3cret here").redact(Some("s3cret"));
    assert_eq!(e.message, "bad *** here");
    assert_eq!(e.to_string(), "ERR_AUTH: bad *** here");
  }

  #[test]
  fn io_reasons_are_short() {
    let e = io::Error::from(io::ErrorKind::ConnectionRefused);
    assert_eq!(io_reason(&e), "connection refused");
  }
}
