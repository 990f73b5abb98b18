//! Numbers in and out as Redis 7.0 reads and writes them.

/// C's `%.17g`: how Redis 7.0 writes a double in a reply (ZSCORE, WITHSCORES)
/// and how it turns a Lua number into a command argument.
///
/// ```
/// use atlas_redis::memory::fmt::g17;
/// assert_eq!(g17(0.1), "0.10000000000000001");
/// assert_eq!(g17(1764123516789.5), "1764123516789.5");
/// assert_eq!(g17(1e20), "1e+20");
/// assert_eq!(g17(3.0), "3");
/// ```
pub fn g17(v: f64) -> String {
  g(v, 17)
}

/// C's `%.{precision}g` (precision 1 to 17).
pub fn g(v: f64, precision: usize) -> String {
  let precision = precision.clamp(1, 17);
  if v.is_nan() {
    return "nan".into();
  }
  if v.is_infinite() {
    return if v > 0.0 { "inf".into() } else { "-inf".into() };
  }
  if v == 0.0 {
    return if v.is_sign_negative() {
      "-0".into()
    } else {
      "0".into()
    };
  }
  let sci = format!("{:.*e}", precision - 1, v);
  let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
  let exp: i32 = exp.parse().unwrap_or(0);
  let neg = mant.starts_with('-');
  let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
  let mut out = String::new();
  if neg {
    out.push('-');
  }
  if (-4..precision as i32).contains(&exp) {
    if exp >= 0 {
      let (int, frac) = digits.split_at(exp as usize + 1);
      out.push_str(int);
      let frac = frac.trim_end_matches('0');
      if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
      }
    } else {
      out.push_str("0.");
      for _ in 0..(-exp - 1) {
        out.push('0');
      }
      out.push_str(digits.trim_end_matches('0'));
    }
  } else {
    out.push_str(&digits[..1]);
    let frac = digits[1..].trim_end_matches('0');
    if !frac.is_empty() {
      out.push('.');
      out.push_str(frac);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
      out.push('0');
    }
    out.push_str(&e.to_string());
  }
  out
}

/// The result of INCRBYFLOAT/HINCRBYFLOAT. Redis computes in `long double` and
/// prints `%.17Lf` without trailing zeros; in a double, the closest equivalent
/// is the shortest form, rounded to 15 significant digits when it needs more
/// (so 0.1 + 0.2 reads "0.3" as it does on Redis).
pub fn human(v: f64) -> String {
  let short = format!("{v}");
  let sig = short
    .trim_start_matches('-')
    .chars()
    .filter(|c| c.is_ascii_digit())
    .collect::<String>();
  let sig = sig.trim_start_matches('0').trim_end_matches('0').len();
  let s = if sig > 15 {
    let r: f64 = format!("{:.14e}", v).parse().unwrap_or(v);
    format!("{r}")
  } else {
    short
  };
  if s == "-0" {
    "0".into()
  } else {
    s
  }
}

/// Redis' `string2ll`: an optional '-', digits, no leading zeros, no spaces.
pub fn parse_int(s: &[u8]) -> Option<i64> {
  if s.is_empty() || s.len() > 20 {
    return None;
  }
  if s == b"0" {
    return Some(0);
  }
  let (neg, digits) = match s[0] {
    b'-' => (true, &s[1..]),
    _ => (false, s),
  };
  if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
    return None;
  }
  let mut v: i64 = 0;
  for &d in digits {
    if !d.is_ascii_digit() {
      return None;
    }
    let d = (d - b'0') as i64;
    v = v.checked_mul(10)?;
    v = if neg {
      v.checked_sub(d)?
    } else {
      v.checked_add(d)?
    };
  }
  Some(v)
}

/// Redis' `string2d`/`strtod` check: a float with nothing around it, not NaN.
pub fn parse_float(s: &[u8]) -> Option<f64> {
  let t = std::str::from_utf8(s).ok()?;
  if t.is_empty() || t.starts_with(char::is_whitespace) || t.ends_with(char::is_whitespace) {
    return None;
  }
  let lower = t.to_ascii_lowercase();
  let v = match lower.trim_start_matches(['+', '-']) {
    "inf" | "infinity" => {
      if lower.starts_with('-') {
        f64::NEG_INFINITY
      } else {
        f64::INFINITY
      }
    }
    _ if lower.contains("nan") => return None,
    _ => t.parse::<f64>().ok()?,
  };
  Some(v)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn g17_matches_printf() {
    for (v, s) in [
      (0.1, "0.10000000000000001"),
      (1.5, "1.5"),
      (-2.0, "-2"),
      (1e-5, "1.0000000000000001e-05"),
      (0.0001, "0.0001"),
      (123456789012345680.0, "1.2345678901234568e+17"),
      (12345678901234567.0, "12345678901234568"),
      (1764123516789.0, "1764123516789"),
      (f64::INFINITY, "inf"),
    ] {
      assert_eq!(g17(v), s, "{v}");
    }
  }

  #[test]
  fn human_reads_like_redis() {
    assert_eq!(human(0.1 + 0.2), "0.3");
    assert_eq!(human(10.5 + 0.1), "10.6");
    assert_eq!(human(3.0), "3");
    assert_eq!(human(1e20), "100000000000000000000");
    assert_eq!(human(-1.25), "-1.25");
  }

  #[test]
  fn integers_are_strict() {
    assert_eq!(parse_int(b"-12"), Some(-12));
    assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
      &b"01"[..],
      b"+1",
      b" 1",
      b"1 ",
      b"",
      b"-",
      b"9223372036854775808",
      b"1.0",
    ] {
      assert_eq!(parse_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(parse_float(b"1.5"), Some(1.5));
    assert_eq!(parse_float(b"-inf"), Some(f64::NEG_INFINITY));
    assert_eq!(parse_float(b"nan"), None);
    assert_eq!(parse_float(b" 1"), None);
  }
}
