//! Client counters and a latency histogram, updated without locks.
//!
//! ```
//! use atlas_redis::stats::Stats;
//! let s = Stats::default();
//! for us in [100, 120, 130, 5_000] { s.record_latency_us(us); }
//! let snap = s.snapshot();
//! assert!(snap.p50_us >= 100 && snap.p50_us < 200);
//! assert!(snap.p99_us >= 4_000);
//! ```

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Sub-buckets per power of two: latency is reported within ±12.5 %.
const SUB: u64 = 4;
const BUCKETS: usize = 64 * SUB as usize;

pub struct Stats {
  pub commands: AtomicU64,
  pub errors: AtomicU64,
  pub timeouts: AtomicU64,
  pub reconnects: AtomicU64,
  pub batches: AtomicU64,
  latency: [AtomicU64; BUCKETS],
}

impl Default for Stats {
  fn default() -> Self {
    Stats {
      commands: AtomicU64::new(0),
      errors: AtomicU64::new(0),
      timeouts: AtomicU64::new(0),
      reconnects: AtomicU64::new(0),
      batches: AtomicU64::new(0),
      latency: std::array::from_fn(|_| AtomicU64::new(0)),
    }
  }
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
  pub commands: u64,
  pub errors: u64,
  pub timeouts: u64,
  pub reconnects: u64,
  pub batches: u64,
  pub replies: u64,
  pub p50_us: u64,
  pub p99_us: u64,
  pub max_us: u64,
}

fn bucket(us: u64) -> usize {
  if us < SUB {
    return us as usize;
  }
  let log = 63 - us.leading_zeros() as u64; // floor(log2)
  let sub = (us >> (log - 2)) & (SUB - 1);
  ((log - 1) * SUB + sub) as usize
}

/// Upper bound of a bucket, in µs.
fn bucket_top(b: usize) -> u64 {
  let b = b as u64;
  if b < SUB {
    return b;
  }
  let log = b / SUB + 1;
  let sub = b % SUB;
  ((SUB + sub + 1) << (log - 2)) - 1
}

impl Stats {
  pub fn record_latency_us(&self, us: u64) {
    self.record_replies(us, 1);
  }

  /// `n` replies that each took `us` (the replies of one pipeline).
  pub fn record_replies(&self, us: u64, n: u64) {
    self.latency[bucket(us).min(BUCKETS - 1)].fetch_add(n, Relaxed);
  }

  pub fn snapshot(&self) -> Snapshot {
    let counts: Vec<u64> = self.latency.iter().map(|c| c.load(Relaxed)).collect();
    let total: u64 = counts.iter().sum();
    let pct = |p: f64| -> u64 {
      if total == 0 {
        return 0;
      }
      let want = ((total as f64) * p).ceil().max(1.0) as u64;
      let mut seen = 0;
      for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= want {
          return bucket_top(i);
        }
      }
      0
    };
    let max = counts
      .iter()
      .rposition(|c| *c > 0)
      .map(bucket_top)
      .unwrap_or(0);
    Snapshot {
      commands: self.commands.load(Relaxed),
      errors: self.errors.load(Relaxed),
      timeouts: self.timeouts.load(Relaxed),
      reconnects: self.reconnects.load(Relaxed),
      batches: self.batches.load(Relaxed),
      replies: total,
      p50_us: pct(0.5),
      p99_us: pct(0.99),
      max_us: max,
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn buckets_are_monotonic_and_tight() {
    let mut last = 0;
    for us in 0..100_000u64 {
      let b = bucket(us);
      assert!(b >= last);
      last = b;
      assert!(bucket_top(b) >= us, "{us} -> {b} top {}", bucket_top(b));
      assert!(bucket_top(b) as f64 <= us as f64 * 1.25 + 1.0);
    }
  }
}
