//! A seeded xorshift64* generator for the stable-Rust fuzz smoke tests
//! (`config::fuzz_smoke`, `resp::fuzz_smoke`): the same inputs on every run.

pub struct Rng(pub u64);

impl Rng {
  pub fn next(&mut self) -> u64 {
    self.0 ^= self.0 >> 12;
    self.0 ^= self.0 << 25;
    self.0 ^= self.0 >> 27;
    self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
  }

  /// Uniform-ish in `0..n` (0 when `n` is 0).
  pub fn below(&mut self, n: u64) -> u64 {
    self.next() % n.max(1)
  }

  pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
    xs[self.below(xs.len() as u64) as usize]
  }

  /// Up to `max` characters of `alphabet`.
  pub fn text(&mut self, max: usize, alphabet: &str) -> String {
    let chars: Vec<char> = alphabet.chars().collect();
    (0..self.below(max as u64 + 1))
      .map(|_| chars[self.below(chars.len() as u64) as usize])
      .collect()
  }

  /// Up to `max` bytes of `alphabet`, or of any value when it is empty.
  pub fn bytes(&mut self, max: usize, alphabet: &[u8]) -> Vec<u8> {
    let n = self.below(max as u64 + 1) as usize;
    (0..n)
      .map(|_| {
        if alphabet.is_empty() {
          self.next() as u8
        } else {
          alphabet[self.below(alphabet.len() as u64) as usize]
        }
      })
      .collect()
  }
}
