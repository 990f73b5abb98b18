//! The package's one command table: every command and subcommand of Redis, with its
//! arity, flags and key specs as the server itself describes them (`generated.rs`,
//! written from `COMMAND` by `scripts/gen-command-table.js`), and what the engine asks
//! of it: which arguments are keys (cluster routing), whether a call blocks and for
//! how long, whether it writes or changes its connection's state.
//!
//! # Argument convention
//!
//! Every function takes `args`: the arguments AFTER the command name. For a
//! subcommand the subcommand token is `args[0]`: `XGROUP CREATE k g $` is looked up
//! as `lookup(b"XGROUP", &[b"CREATE", b"k", b"g", b"$"])` and its key is `args[1]`.
//! Positions returned are indexes into `args`, so Redis' argv position `p` (where
//! `p = 0` is the command name) is `args[p - 1]`. The key specs in the table keep
//! Redis' own numbering (`BeginSearch::Index { pos: 1 }` is the first argument).

#[rustfmt::skip]
mod generated;

use std::iter;

/// Command flags, one bit each (`Command::flags`). All but the last two are the flags
/// `COMMAND` reports (Redis' `CMD_*`).
pub mod flags {
  pub const WRITE: u32 = 1 << 0;
  pub const READONLY: u32 = 1 << 1;
  pub const DENYOOM: u32 = 1 << 2;
  pub const MODULE: u32 = 1 << 3;
  pub const ADMIN: u32 = 1 << 4;
  pub const PUBSUB: u32 = 1 << 5;
  pub const NOSCRIPT: u32 = 1 << 6;
  pub const BLOCKING: u32 = 1 << 7;
  pub const LOADING: u32 = 1 << 8;
  pub const STALE: u32 = 1 << 9;
  pub const SKIP_MONITOR: u32 = 1 << 10;
  pub const SKIP_SLOWLOG: u32 = 1 << 11;
  pub const ASKING: u32 = 1 << 12;
  pub const FAST: u32 = 1 << 13;
  pub const NO_AUTH: u32 = 1 << 14;
  /// Hidden from `COMMAND` by Redis; the generator sets it from Redis 7.0's command
  /// table (EVAL, EVALSHA, FCALL, PUBLISH, SPUBLISH, PFCOUNT).
  pub const MAY_REPLICATE: u32 = 1 << 15;
  pub const NO_MANDATORY_KEYS: u32 = 1 << 16;
  pub const NO_ASYNC_LOADING: u32 = 1 << 17;
  pub const NO_MULTI: u32 = 1 << 18;
  pub const MOVABLEKEYS: u32 = 1 << 19;
  pub const ALLOW_BUSY: u32 = 1 << 20;
  /// Ours, not Redis': the command changes its connection's state (auth, db,
  /// protocol, name, reply mode, tracking, subscriptions, transaction, ...), so it
  /// cannot ride a shared connection. The list and its reasons are in the generator.
  pub const CONNECTION_CHANGING: u32 = 1 << 21;
}

/// Key-spec flags, one bit each (`KeySpec::flags`), Redis' `CMD_KEY_*`.
pub mod key_flags {
  /// Read only.
  pub const RO: u32 = 1 << 0;
  /// Read and write.
  pub const RW: u32 = 1 << 1;
  /// Overwrite: the old value is not read.
  pub const OW: u32 = 1 << 2;
  /// Removes the key.
  pub const RM: u32 = 1 << 3;
  /// Returns, copies or uses the user data.
  pub const ACCESS: u32 = 1 << 4;
  pub const UPDATE: u32 = 1 << 5;
  pub const INSERT: u32 = 1 << 6;
  pub const DELETE: u32 = 1 << 7;
  /// Not a key (the shard channel of SPUBLISH and friends) though it hashes like one.
  pub const NOT_KEY: u32 = 1 << 8;
  /// The spec may miss keys: Redis then asks the command's own key function.
  pub const INCOMPLETE: u32 = 1 << 9;
  /// The flags depend on the arguments (SET … GET, BITFIELD).
  pub const VARIABLE_FLAGS: u32 = 1 << 10;
}

use flags::*;
use key_flags::*;

/// One command or subcommand of the table.
#[derive(Debug)]
pub struct Command {
  /// Lower case; a subcommand is `"container|sub"` (`"xgroup|create"`).
  pub name: &'static str,
  /// Redis' arity, counting the command name (and the subcommand token): `n` means
  /// exactly `n`, `-n` at least `n`.
  pub arity: i32,
  /// Bits of [`flags`].
  pub flags: u32,
  /// Has subcommands (`XGROUP`, `OBJECT`, `CLIENT` …): [`lookup`] resolves them.
  pub container: bool,
  /// In the server's order; empty when the command takes no key.
  pub key_specs: &'static [KeySpec],
  /// `COMMAND`'s tips, e.g. `"request_policy:all_shards"`, `"nondeterministic_output"`.
  pub tips: &'static [&'static str],
}

/// Where a command's keys are, as Redis 7 describes it: find the start, then the keys.
#[derive(Debug)]
pub struct KeySpec {
  pub begin_search: BeginSearch,
  pub find_keys: FindKeys,
  /// Bits of [`key_flags`].
  pub flags: u32,
}

/// How to find the first argument of a key spec (Redis' positions: 1 = first argument).
#[derive(Debug)]
pub enum BeginSearch {
  /// At a fixed position.
  Index { pos: i32 },
  /// Right after `keyword` (case-insensitive), searched from `startfrom` onward, or
  /// backward from the end when `startfrom` is negative (-1 = the last argument).
  Keyword {
    keyword: &'static str,
    startfrom: i32,
  },
  /// Redis cannot say (SORT's BY/GET/STORE): its own key function decides.
  Unknown,
}

/// Which arguments from the begin-search point are keys.
#[derive(Debug)]
pub enum FindKeys {
  /// Keys from the start to `lastkey` (relative to the start; negative counts from
  /// the end), every `step`; with `limit` > 0 and `lastkey` -1, only the first
  /// 1/`limit` of the remaining arguments (XREAD's keys before their IDs).
  Range { lastkey: i32, step: i32, limit: i32 },
  /// The number of keys is at `keynumidx` (relative to the start); the keys begin at
  /// `firstkey` (relative to the start), every `step`.
  Keynum {
    keynumidx: i32,
    firstkey: i32,
    step: i32,
  },
  /// Redis cannot say: its own key function decides.
  Unknown,
}

/// A key argument: its index in `args` and the key-spec flags of its access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
  pub index: usize,
  /// Bits of [`key_flags`]; 0 where Redis' own key function gives none.
  pub flags: u32,
}

impl Command {
  /// Whether every bit of `flag` is set.
  pub fn has(&self, flag: u32) -> bool {
    self.flags & flag == flag
  }

  /// The command's own name, without a subcommand (`"xgroup"` for `"xgroup|create"`).
  pub fn base_name(&self) -> &'static str {
    self.name.split('|').next().unwrap_or(self.name)
  }

  /// Whether `argc` arguments (after the command name, as everywhere here) satisfy
  /// the arity; Redis refuses the call otherwise.
  pub fn arity_ok(&self, argc: usize) -> bool {
    let total = argc as i64 + 1;
    let arity = self.arity as i64;
    if arity >= 0 {
      total == arity
    } else {
      total >= -arity
    }
  }
}

/// The whole table, sorted by name.
pub fn commands() -> &'static [Command] {
  &generated::COMMANDS
}

/// The entry for `name` (any case). A container command (`XGROUP`, `OBJECT`, `CLIENT`…)
/// resolves to its subcommand named by `args[0]` when the table has it, and stays the
/// container otherwise (Redis then answers "unknown subcommand").
pub fn lookup(name: &[u8], args: &[&[u8]]) -> Option<&'static Command> {
  // A '|' is never part of a name a client sends: "xgroup|create" is not a command.
  if name.contains(&b'|') {
    return None;
  }
  let cmd = find(name.iter().map(u8::to_ascii_lowercase))?;
  if cmd.container {
    if let Some(sub) = args.first() {
      if !sub.contains(&b'|') {
        let full = name
          .iter()
          .chain(iter::once(&b'|'))
          .chain(sub.iter())
          .map(u8::to_ascii_lowercase);
        if let Some(s) = find(full) {
          return Some(s);
        }
      }
    }
  }
  Some(cmd)
}

fn find<I: Iterator<Item = u8> + Clone>(name: I) -> Option<&'static Command> {
  let table = commands();
  table
    .binary_search_by(|c| c.name.bytes().cmp(name.clone()))
    .ok()
    .map(|i| &table[i])
}

/// Whether the command writes (Redis' WRITE flag; EVAL and FCALL are not flagged:
/// what their scripts do is only known when they run).
pub fn is_write(cmd: &Command) -> bool {
  cmd.has(WRITE)
}

/// Whether the command changes its connection's state ([`flags::CONNECTION_CHANGING`]).
pub fn changes_connection(cmd: &Command) -> bool {
  cmd.has(CONNECTION_CHANGING)
}

/// The indexes in `args` of the call's keys, in Redis' order (what `COMMAND GETKEYS`
/// answers). See [`key_refs`].
pub fn key_positions(cmd: &Command, args: &[&[u8]]) -> Vec<usize> {
  key_refs(cmd, args).into_iter().map(|k| k.index).collect()
}

/// The call's keys with their access flags, as Redis 7.0's
/// `getKeysFromCommandWithSpecs` finds them (db.c): the key specs when the command
/// has real-key specs none of which is VARIABLE_FLAGS; when a spec is Unknown or
/// INCOMPLETE, or a numkeys argument is not a number, or a position falls outside
/// the call, the command's own key function instead (ported below for every command
/// that has one in Redis 7.0). NOT_KEY specs (shard channels) are not keys here; see
/// [`routing_positions`]. Arity is not checked (`COMMAND GETKEYS` refuses such a
/// call; see [`Command::arity_ok`]); no index is ever out of `args`.
pub fn key_refs(cmd: &Command, args: &[&[u8]]) -> Vec<KeyRef> {
  let has_key_spec = cmd.key_specs.iter().any(|s| s.flags & NOT_KEY == 0);
  let has_variable_flags = cmd.key_specs.iter().any(|s| s.flags & VARIABLE_FLAGS != 0);
  if has_key_spec && !has_variable_flags {
    if let Some(keys) = keys_by_specs(cmd, args, false) {
      return keys;
    }
  }
  let mut keys = keys_by_function(cmd, &Argv(args));
  // Redis checks arity before it asks for keys; we may be asked first.
  keys.retain(|k| k.index < args.len());
  keys
}

/// The arguments that pick a call's cluster slot: its keys, or for the sharded
/// pub/sub commands (SPUBLISH, SSUBSCRIBE, SUNSUBSCRIBE), whose channels Redis
/// describes as NOT_KEY specs, those channels. Indexes into `args`.
pub fn routing_positions(cmd: &Command, args: &[&[u8]]) -> Vec<usize> {
  let keys = key_positions(cmd, args);
  if keys.is_empty() && cmd.key_specs.iter().any(|s| s.flags & NOT_KEY != 0) {
    return keys_by_specs(cmd, args, true)
      .unwrap_or_default()
      .into_iter()
      .map(|k| k.index)
      .collect();
  }
  keys
}

/// Redis' argv seen through `args` (which lacks the command name): `get(p)` is argv[p].
struct Argv<'a>(&'a [&'a [u8]]);

impl Argv<'_> {
  /// Redis' argc: the arguments plus the command name.
  fn argc(&self) -> i64 {
    self.0.len() as i64 + 1
  }

  /// argv[p] for 1 <= p < argc.
  fn get(&self, p: i64) -> &[u8] {
    self.0[(p - 1) as usize]
  }

  fn is(&self, p: i64, word: &str) -> bool {
    p >= 1 && p < self.argc() && self.get(p).eq_ignore_ascii_case(word.as_bytes())
  }

  fn key(&self, p: i64, flags: u32) -> KeyRef {
    KeyRef {
      index: (p - 1) as usize,
      flags,
    }
  }
}

/// Redis' `getKeysUsingKeySpecs` without GET_KEYSPEC_RETURN_PARTIAL: `None` where
/// Redis returns -1 (an Unknown or INCOMPLETE spec, a bad numkeys, positions out of
/// the call), so the caller falls back as Redis does.
fn keys_by_specs(cmd: &Command, args: &[&[u8]], include_not_keys: bool) -> Option<Vec<KeyRef>> {
  let argv = Argv(args);
  let argc = argv.argc();
  let mut keys = Vec::new();
  for spec in cmd.key_specs {
    if spec.flags & NOT_KEY != 0 && !include_not_keys {
      continue;
    }
    let mut first: i64 = 0;
    match spec.begin_search {
      BeginSearch::Index { pos } => first = pos as i64,
      BeginSearch::Keyword { keyword, startfrom } => {
        let startfrom = startfrom as i64;
        let (start, end) = if startfrom > 0 {
          (startfrom, argc - 1)
        } else {
          (argc + startfrom, 1)
        };
        // As in Redis, `end` itself is not examined (the keyword cannot be the last
        // argument, nor argv[1] when searching backward).
        let mut i = start;
        while i != end {
          if i >= argc || i < 1 {
            break;
          }
          if argv.get(i).eq_ignore_ascii_case(keyword.as_bytes()) {
            first = i + 1;
            break;
          }
          i = if start <= end { i + 1 } else { i - 1 };
        }
        if first == 0 {
          continue; // keyword absent: this spec has no keys in the call
        }
      }
      BeginSearch::Unknown => return None,
    }
    let (last, step) = match spec.find_keys {
      FindKeys::Range {
        lastkey,
        step,
        limit,
      } => {
        let lastkey = lastkey as i64;
        let last = if lastkey >= 0 {
          first + lastkey
        } else if limit == 0 {
          argc + lastkey
        } else {
          // Both truncate toward zero, as C's division does.
          first + ((argc - first) / limit as i64 + lastkey)
        };
        (last, step as i64)
      }
      FindKeys::Keynum {
        keynumidx,
        firstkey,
        step,
      } => {
        // Redis 7.0 checks only keynumidx < argc before reading argv[first + keynumidx];
        // the whole index must be inside the call here.
        let at = first + keynumidx as i64;
        if keynumidx as i64 >= argc || at < 1 || at >= argc {
          return None;
        }
        let numkeys = string2ll(argv.get(at)).filter(|n| *n >= 0)?;
        first += firstkey as i64;
        (first + numkeys - 1, step as i64)
      }
      FindKeys::Unknown => return None,
    };
    if last >= argc || last < first || first >= argc || first < 1 || step < 1 {
      return None;
    }
    let mut i = first;
    while i <= last {
      keys.push(argv.key(i, spec.flags));
      i += step;
    }
    if spec.flags & INCOMPLETE != 0 {
      return None;
    }
  }
  Some(keys)
}

/// The key functions (`getkeys_proc`) of Redis 7.0's commands (db.c), by command name.
/// Redis uses them when the specs cannot answer.
fn keys_by_function(cmd: &Command, argv: &Argv) -> Vec<KeyRef> {
  match cmd.name {
    "set" => set_keys(argv),
    "bitfield" => bitfield_keys(argv),
    "migrate" => migrate_keys(argv),
    "sort" => sort_keys(argv),
    "sort_ro" => vec![argv.key(1, RO | ACCESS)],
    "georadius" | "georadiusbymember" => georadius_keys(argv),
    "xread" | "xreadgroup" => xread_keys(argv),
    // COMMAND [destkey] <numkeys> <key> ...
    "zunionstore" | "zinterstore" | "zdiffstore" => generic_keys(argv, 1, 2, 3, 1),
    "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => {
      generic_keys(argv, 0, 1, 2, 1)
    }
    "blmpop" | "bzmpop" | "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => {
      generic_keys(argv, 0, 2, 3, 1)
    }
    _ => Vec::new(),
  }
}

/// `genericGetKeys`: numkeys read with C's atoi, keys, then the destination (if any).
fn generic_keys(argv: &Argv, store: i64, count_at: i64, first: i64, step: i64) -> Vec<KeyRef> {
  if count_at >= argv.argc() {
    return Vec::new();
  }
  let num = atoi(argv.get(count_at));
  if num < 1 || num > (argv.argc() - first) / step {
    return Vec::new();
  }
  let mut keys: Vec<KeyRef> = (0..num).map(|i| argv.key(first + i * step, 0)).collect();
  if store != 0 {
    keys.push(argv.key(store, 0));
  }
  keys
}

/// `setGetKeys`: the key, read too when a GET option follows the value.
fn set_keys(argv: &Argv) -> Vec<KeyRef> {
  let get = (3..argv.argc()).any(|i| argv.is(i, "get"));
  let flags = if get {
    RW | ACCESS | UPDATE
  } else {
    OW | UPDATE
  };
  vec![argv.key(1, flags)]
}

/// `bitfieldGetKeys`: read-only when every operation is a GET (or OVERFLOW).
fn bitfield_keys(argv: &Argv) -> Vec<KeyRef> {
  let argc = argv.argc();
  let mut readonly = true;
  let mut i = 2;
  while i < argc {
    let remaining = argc - i - 1;
    if argv.is(i, "get") && remaining >= 2 {
      i += 2;
    } else if (argv.is(i, "set") || argv.is(i, "incrby")) && remaining >= 3 {
      readonly = false;
      break;
    } else if argv.is(i, "overflow") && remaining >= 1 {
      i += 1;
    } else {
      readonly = false; // a syntax error: safer not read-only
      break;
    }
    i += 1;
  }
  let flags = if readonly {
    RO | ACCESS
  } else {
    RW | ACCESS | UPDATE
  };
  vec![argv.key(1, flags)]
}

/// `migrateGetKeys`: the key at 3, or with an empty key there, those after KEYS.
fn migrate_keys(argv: &Argv) -> Vec<KeyRef> {
  let argc = argv.argc();
  let (mut first, mut num) = (3, 1);
  if argc > 6 {
    let mut i = 6;
    while i < argc {
      if argv.is(i, "keys") {
        if !argv.get(3).is_empty() {
          num = 0; // a syntax error; MIGRATE itself reports it
        } else {
          first = i + 1;
          num = argc - first;
        }
        break;
      }
      if argv.is(i, "auth") {
        i += 1;
      } else if argv.is(i, "auth2") {
        i += 2;
      }
      i += 1;
    }
  }
  (0..num)
    .map(|k| argv.key(first + k, RW | ACCESS | DELETE))
    .collect()
}

/// `sortGetKeys`: the sorted key, and the last STORE's destination.
fn sort_keys(argv: &Argv) -> Vec<KeyRef> {
  let argc = argv.argc();
  let mut keys = vec![argv.key(1, RO | ACCESS)];
  let mut store = None;
  let mut i = 2;
  while i < argc {
    if argv.is(i, "limit") {
      i += 2;
    } else if argv.is(i, "get") || argv.is(i, "by") {
      i += 1;
    } else if argv.is(i, "store") && i + 1 < argc {
      store = Some(i + 1);
    }
    i += 1;
  }
  keys.extend(store.map(|p| argv.key(p, OW | UPDATE)));
  keys
}

/// `georadiusGetKeys`: the key, and the last STORE/STOREDIST destination.
fn georadius_keys(argv: &Argv) -> Vec<KeyRef> {
  let argc = argv.argc();
  let mut stored = None;
  let mut i = 5;
  while i < argc {
    if (argv.is(i, "store") || argv.is(i, "storedist")) && i + 1 < argc {
      stored = Some(i + 1);
      i += 1;
    }
    i += 1;
  }
  let mut keys = vec![argv.key(1, 0)];
  keys.extend(stored.map(|p| argv.key(p, 0)));
  keys
}

/// `xreadGetKeys`: the first half of what follows STREAMS, options skipped.
fn xread_keys(argv: &Argv) -> Vec<KeyRef> {
  let argc = argv.argc();
  let Some(streams) = xread_streams_at(argv) else {
    return Vec::new();
  };
  let num = argc - streams - 1;
  if num == 0 || num % 2 != 0 {
    return Vec::new();
  }
  (streams + 1..argc - num / 2)
    .map(|p| argv.key(p, 0))
    .collect()
}

/// The argv position of XREAD/XREADGROUP's STREAMS, skipping BLOCK, COUNT, GROUP
/// and NOACK with their values (STREAMS may also name a group or a key).
fn xread_streams_at(argv: &Argv) -> Option<i64> {
  xread_options(argv).0
}

/// (STREAMS position, position of the last BLOCK's value), as XREAD parses them.
fn xread_options(argv: &Argv) -> (Option<i64>, Option<i64>) {
  let argc = argv.argc();
  let mut block = None;
  let mut i = 1;
  while i < argc {
    if argv.is(i, "block") {
      if i + 1 < argc {
        block = Some(i + 1);
      }
      i += 1;
    } else if argv.is(i, "count") {
      i += 1;
    } else if argv.is(i, "group") {
      i += 2;
    } else if argv.is(i, "noack") {
      // no value
    } else if argv.is(i, "streams") {
      return (Some(i), block);
    } else {
      break; // a syntax error
    }
    i += 1;
  }
  (None, block)
}

/// Whether the call may hold its connection until something happens: the BLOCKING
/// flag, except that XREAD and XREADGROUP block only with a BLOCK option; and WAIT and
/// WAITAOF, which wait for replicas (Redis 7.0 does not flag them BLOCKING; later
/// versions do).
pub fn is_blocking(cmd: &Command, args: &[&[u8]]) -> bool {
  match cmd.name {
    "xread" | "xreadgroup" => xread_options(&Argv(args)).1.is_some(),
    "wait" | "waitaof" => true,
    _ => cmd.has(BLOCKING),
  }
}

/// How long a blocking call may hold its connection: `None` when it does not block
/// (not [`is_blocking`], or a timeout the server refuses: it answers at once with an
/// error), `Some(None)` when it may block forever (timeout 0), `Some(Some(ms))`
/// otherwise. Timeouts, read as Redis reads them (seconds are rounded up to a ms):
/// - BLPOP, BRPOP, BZPOPMIN, BZPOPMAX, BRPOPLPUSH, BLMOVE: the last argument, seconds;
/// - BLMPOP, BZMPOP: the first argument, seconds;
/// - XREAD, XREADGROUP: the (last) BLOCK option's value, ms;
/// - WAIT, WAITAOF: the last argument, ms.
///
/// A BLOCKING command with no rule here (a newer server's) gives `Some(None)`.
pub fn block_timeout_ms(cmd: &Command, args: &[&[u8]]) -> Option<Option<u64>> {
  if !is_blocking(cmd, args) {
    return None;
  }
  let ms = match cmd.name {
    "blpop" | "brpop" | "bzpopmin" | "bzpopmax" | "brpoplpush" | "blmove" => {
      seconds_to_ms(args.last()?)
    }
    "blmpop" | "bzmpop" => seconds_to_ms(args.first()?),
    "xread" | "xreadgroup" => {
      let argv = Argv(args);
      milliseconds(argv.get(xread_options(&argv).1?))
    }
    "wait" | "waitaof" => milliseconds(args.last()?),
    _ => return Some(None),
  }?;
  Some(if ms == 0 { None } else { Some(ms) })
}

/// A timeout in seconds as Redis' `getTimeoutFromObjectOrReply` reads it: a float
/// (no spaces, finite), times 1000 rounded up; `None` when Redis refuses it. (Redis
/// parses with strtold, which also takes hexadecimal floats; those are refused here.)
fn seconds_to_ms(arg: &[u8]) -> Option<u64> {
  let s = std::str::from_utf8(arg).ok()?;
  if s.is_empty() || s.starts_with(|c: char| c.is_ascii_whitespace()) {
    return None;
  }
  let secs: f64 = s.parse().ok()?;
  let ms = (secs * 1000.0).ceil();
  if !ms.is_finite() || ms < 0.0 || ms >= i64::MAX as f64 {
    return None;
  }
  Some(ms as u64)
}

/// A timeout in milliseconds: an integer as Redis' string2ll reads it, not negative.
fn milliseconds(arg: &[u8]) -> Option<u64> {
  string2ll(arg).and_then(|n| u64::try_from(n).ok())
}

/// Redis' `string2ll`: an optional '-', then digits with no leading zero ("0" alone
/// is fine), fitting an i64; nothing else (no '+', no spaces).
fn string2ll(s: &[u8]) -> Option<i64> {
  let (negative, digits) = match s.split_first()? {
    (b'-', rest) => (true, rest),
    _ => (false, s),
  };
  match digits {
    [b'0'] if !negative => return Some(0),
    [b'1'..=b'9', ..] => {}
    _ => return None,
  }
  let mut v: i64 = 0;
  for &d in digits {
    if !d.is_ascii_digit() {
      return None;
    }
    let d = (d - b'0') as i64;
    v = if negative {
      v.checked_mul(10)?.checked_sub(d)?
    } else {
      v.checked_mul(10)?.checked_add(d)?
    };
  }
  Some(v)
}

/// C's `atoi`, which `genericGetKeys` uses: leading spaces, a sign, the digits up to
/// the first other byte, 0 when there are none (saturating where C overflows).
fn atoi(s: &[u8]) -> i64 {
  let s = match s
    .iter()
    .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
  {
    Some(i) => &s[i..],
    None => return 0,
  };
  let (negative, s) = match s.first() {
    Some(b'-') => (true, &s[1..]),
    Some(b'+') => (false, &s[1..]),
    _ => (false, s),
  };
  let mut v: i64 = 0;
  for &d in s.iter().take_while(|d| d.is_ascii_digit()) {
    v = v.saturating_mul(10).saturating_add((d - b'0') as i64);
  }
  if negative {
    -v
  } else {
    v
  }
}

#[cfg(test)]
mod tests;
