//! The table's shape and its key/blocking rules on the calls Redis documents (each
//! expectation is what `COMMAND GETKEYS` answers on Redis 7.0 for the same call).

use super::*;

/// A command line split on spaces ("" stands for an empty argument).
fn parse(line: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
  let mut words = line.split(' ').map(|w| {
    if w == "\"\"" {
      Vec::new()
    } else {
      w.as_bytes().to_vec()
    }
  });
  let name = words.next().unwrap();
  (name, words.collect())
}

fn with_args<T>(line: &str, f: impl FnOnce(&'static Command, &[&[u8]]) -> T) -> T {
  let (name, args) = parse(line);
  let args: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
  let cmd = lookup(&name, &args).unwrap_or_else(|| panic!("{line}: not in the table"));
  f(cmd, &args)
}

/// The keys of `line`, as strings, in the order found.
fn keys(line: &str) -> Vec<String> {
  with_args(line, |cmd, args| {
    key_positions(cmd, args)
      .into_iter()
      .map(|i| String::from_utf8(args[i].to_vec()).unwrap())
      .collect()
  })
}

fn block(line: &str) -> Option<Option<u64>> {
  with_args(line, block_timeout_ms)
}

fn blocking(line: &str) -> bool {
  with_args(line, is_blocking)
}

#[test]
fn table_is_sorted_lowercase_and_unique() {
  let table = commands();
  assert!(table.len() > 300, "{} entries", table.len());
  for pair in table.windows(2) {
    assert!(
      pair[0].name < pair[1].name,
      "{} before {}",
      pair[0].name,
      pair[1].name
    );
  }
  for c in table {
    assert_eq!(c.name, c.name.to_ascii_lowercase());
    assert!(c.arity != 0, "{}", c.name);
    if let Some((base, _)) = c.name.split_once('|') {
      let container = commands().iter().find(|p| p.name == base).expect(base);
      assert!(container.container, "{base} has subcommands");
    }
  }
}

#[test]
fn lookup_is_case_insensitive_and_resolves_subcommands() {
  assert_eq!(lookup(b"GeT", &[b"k"]).unwrap().name, "get");
  assert!(lookup(b"nosuchcommand", &[]).is_none());
  assert!(lookup(b"", &[]).is_none());
  assert_eq!(
    lookup(b"XGROUP", &[b"Create", b"k", b"g", b"$"])
      .unwrap()
      .name,
    "xgroup|create"
  );
  assert_eq!(
    lookup(b"object", &[b"ENCODING", b"k"]).unwrap().name,
    "object|encoding"
  );
  assert_eq!(
    lookup(b"client", &[b"setname", b"x"]).unwrap().name,
    "client|setname"
  );
  // no subcommand, or an unknown one: the container (Redis answers with an error)
  assert_eq!(lookup(b"xgroup", &[]).unwrap().name, "xgroup");
  assert_eq!(lookup(b"xgroup", &[b"nope"]).unwrap().name, "xgroup");
  // a plain command is not resolved further by its first argument
  assert_eq!(lookup(b"get", &[b"create"]).unwrap().name, "get");
  // the table's own spelling of a subcommand is not a command name
  assert!(lookup(b"xgroup|create", &[]).is_none());
  assert_eq!(lookup(b"xgroup", &[b"|create"]).unwrap().name, "xgroup");
}

#[test]
fn arity() {
  let get = lookup(b"get", &[]).unwrap();
  assert_eq!(get.arity, 2);
  assert!(get.arity_ok(1));
  assert!(!get.arity_ok(0));
  assert!(!get.arity_ok(2));
  let mset = lookup(b"mset", &[]).unwrap();
  assert_eq!(mset.arity, -3);
  assert!(mset.arity_ok(2) && mset.arity_ok(6) && !mset.arity_ok(1));
  let create = lookup(b"xgroup", &[b"create"]).unwrap();
  assert_eq!(create.base_name(), "xgroup");
  assert!(create.arity_ok(4), "CREATE k g $");
  assert!(!create.arity_ok(2));
}

#[test]
fn flags() {
  let get = lookup(b"get", &[]).unwrap();
  assert!(get.has(READONLY | FAST) && !is_write(get));
  assert!(is_write(lookup(b"set", &[]).unwrap()));
  assert!(is_write(lookup(b"xgroup", &[b"create"]).unwrap()));
  assert!(!is_write(lookup(b"eval", &[]).unwrap()));
  assert!(lookup(b"eval", &[])
    .unwrap()
    .has(MAY_REPLICATE | NOSCRIPT | MOVABLEKEYS));
  assert!(lookup(b"subscribe", &[]).unwrap().has(PUBSUB));
  assert!(lookup(b"monitor", &[])
    .unwrap()
    .has(ADMIN | NOSCRIPT | LOADING | STALE));
  assert!(lookup(b"echo", &[]).unwrap().has(FAST | STALE | LOADING));
  assert!(lookup(b"exec", &[]).unwrap().has(SKIP_SLOWLOG));
  assert!(lookup(b"multi", &[]).unwrap().has(ALLOW_BUSY));
  assert!(lookup(b"blpop", &[]).unwrap().has(BLOCKING | WRITE));
  assert!(lookup(b"xread", &[])
    .unwrap()
    .has(BLOCKING | READONLY | MOVABLEKEYS));
  assert!(lookup(b"sync", &[]).unwrap().has(NO_MULTI));
  assert!(lookup(b"auth", &[]).unwrap().has(NO_AUTH));
  assert!(lookup(b"publish", &[]).unwrap().has(MAY_REPLICATE));
  assert!(!lookup(b"get", &[]).unwrap().has(MAY_REPLICATE));
  assert!(lookup(b"keys", &[])
    .unwrap()
    .tips
    .contains(&"request_policy:all_shards"));
}

#[test]
fn connection_changing() {
  for (name, args) in [
    (&b"select"[..], &[][..]),
    (b"auth", &[]),
    (b"hello", &[]),
    (b"multi", &[]),
    (b"exec", &[]),
    (b"discard", &[]),
    (b"watch", &[]),
    (b"unwatch", &[]),
    (b"subscribe", &[]),
    (b"psubscribe", &[]),
    (b"ssubscribe", &[]),
    (b"unsubscribe", &[]),
    (b"punsubscribe", &[]),
    (b"sunsubscribe", &[]),
    (b"monitor", &[]),
    (b"reset", &[]),
    (b"quit", &[]),
    (b"readonly", &[]),
    (b"readwrite", &[]),
    (b"client", &[&b"tracking"[..]]),
    (b"client", &[b"setname"]),
    (b"client", &[b"reply"]),
    (b"client", &[b"no-evict"]),
  ] {
    let cmd = lookup(name, args).unwrap();
    assert!(changes_connection(cmd), "{}", cmd.name);
  }
  for (name, args) in [
    (&b"get"[..], &[][..]),
    (b"client", &[&b"getname"[..]]),
    (b"client", &[b"list"]),
    (b"ping", &[]),
  ] {
    assert!(!changes_connection(lookup(name, args).unwrap()));
  }
}

#[test]
fn keys_at_fixed_positions() {
  assert_eq!(keys("GET k"), ["k"]);
  assert_eq!(keys("SET k v"), ["k"]);
  assert_eq!(keys("SET k v NX GET"), ["k"]);
  assert_eq!(keys("MGET a b c"), ["a", "b", "c"]);
  assert_eq!(keys("DEL a b"), ["a", "b"]);
  assert_eq!(keys("MSET a 1 b 2 c 3"), ["a", "b", "c"]);
  assert_eq!(keys("MSETNX a 1 b 2"), ["a", "b"]);
  assert_eq!(keys("BITOP AND dest a b"), ["dest", "a", "b"]);
  assert_eq!(keys("RENAME a b"), ["a", "b"]);
  assert_eq!(keys("BLMOVE a b LEFT RIGHT 0"), ["a", "b"]);
  assert_eq!(keys("BLPOP a b 0"), ["a", "b"]);
  assert_eq!(keys("BZPOPMIN a b 1.5"), ["a", "b"]);
  assert_eq!(keys("PING"), Vec::<String>::new());
  assert_eq!(keys("BITFIELD k GET u8 0"), ["k"]);
}

#[test]
fn keys_of_subcommands() {
  assert_eq!(keys("XGROUP CREATE k g $"), ["k"]);
  assert_eq!(keys("XGROUP CREATECONSUMER k g c"), ["k"]);
  assert_eq!(keys("OBJECT ENCODING k"), ["k"]);
  assert_eq!(keys("XINFO STREAM s FULL"), ["s"]);
  assert_eq!(keys("MEMORY USAGE k"), ["k"]);
  assert_eq!(keys("CLIENT LIST"), Vec::<String>::new());
}

#[test]
fn keys_after_a_keyword() {
  assert_eq!(keys("XREAD STREAMS a b 0 0"), ["a", "b"]);
  assert_eq!(keys("XREAD COUNT 2 BLOCK 10 STREAMS a b 0 0"), ["a", "b"]);
  assert_eq!(keys("XREADGROUP GROUP g c COUNT 1 STREAMS k >"), ["k"]);
  // a group named STREAMS: the spec searches from the 4th argument on
  assert_eq!(keys("XREADGROUP GROUP streams c STREAMS k >"), ["k"]);
  // an odd count after STREAMS: the first half, rounded down, as Redis' spec gives
  assert_eq!(keys("XREAD STREAMS a b 0"), ["a"]);
  assert_eq!(keys("XREAD COUNT 1"), Vec::<String>::new());
  assert_eq!(keys("GEORADIUS k 0 0 10 km"), ["k"]);
  assert_eq!(keys("GEORADIUS k 0 0 10 km STORE dst"), ["k", "dst"]);
  assert_eq!(keys("GEORADIUS k 0 0 10 km STOREDIST dd"), ["k", "dd"]);
  assert_eq!(
    keys("GEORADIUSBYMEMBER k m 10 km ASC STORE dst"),
    ["k", "dst"]
  );
}

#[test]
fn keys_counted_by_numkeys() {
  assert_eq!(keys("ZUNION 2 a b"), ["a", "b"]);
  assert_eq!(keys("ZUNION 2 a b WEIGHTS 1 2"), ["a", "b"]);
  assert_eq!(keys("ZUNIONSTORE dst 2 a b"), ["dst", "a", "b"]);
  assert_eq!(keys("ZINTERCARD 2 a b LIMIT 1"), ["a", "b"]);
  assert_eq!(keys("SINTERCARD 1 a"), ["a"]);
  assert_eq!(keys("LMPOP 2 a b LEFT"), ["a", "b"]);
  assert_eq!(keys("ZMPOP 1 z MIN"), ["z"]);
  assert_eq!(keys("BLMPOP 0 2 a b LEFT"), ["a", "b"]);
  assert_eq!(keys("BZMPOP 1.5 1 z MAX"), ["z"]);
  assert_eq!(keys("EVAL return 2 a b x y"), ["a", "b"]);
  assert_eq!(keys("EVALSHA 0123 1 a x"), ["a"]);
  assert_eq!(keys("EVAL_RO return 0 x"), Vec::<String>::new());
  assert_eq!(keys("FCALL f 2 a b"), ["a", "b"]);
  assert_eq!(keys("FCALL_RO f 1 a"), ["a"]);
}

#[test]
fn bad_numkeys_falls_back_as_redis_does() {
  // The spec fails (string2ll refuses it), genericGetKeys reads it with atoi.
  assert_eq!(keys("ZUNION 2x a b"), ["a", "b"]);
  assert_eq!(keys("ZUNIONSTORE dst 2x a b"), ["a", "b", "dst"]);
  // Too many or too few: no key (the command reports the error).
  assert_eq!(keys("EVAL return 3 a b"), Vec::<String>::new());
  assert_eq!(keys("ZUNION 0 a"), Vec::<String>::new());
  assert_eq!(keys("ZUNION -1 a"), Vec::<String>::new());
  assert_eq!(keys("LMPOP x a LEFT"), Vec::<String>::new());
}

#[test]
fn incomplete_specs_use_the_commands_own_key_function() {
  // MIGRATE: the key at position 3, or with an empty one, those after KEYS.
  assert_eq!(keys("MIGRATE host 6379 k 0 5000"), ["k"]);
  assert_eq!(
    keys("MIGRATE host 6379 \"\" 0 5000 COPY REPLACE KEYS a b"),
    ["a", "b"]
  );
  assert_eq!(
    keys("MIGRATE host 6379 \"\" 0 5000 AUTH keys KEYS a"),
    ["a"]
  );
  assert_eq!(
    keys("MIGRATE host 6379 \"\" 0 5000 AUTH2 u keys KEYS a b"),
    ["a", "b"]
  );
  // a key AND KEYS: a syntax error, no key
  assert_eq!(
    keys("MIGRATE host 6379 k 0 5000 KEYS a b"),
    Vec::<String>::new()
  );
  // SORT: the key, and the last STORE's destination
  assert_eq!(keys("SORT k"), ["k"]);
  assert_eq!(
    keys("SORT k BY w_* LIMIT 0 10 GET # STORE dst"),
    ["k", "dst"]
  );
  assert_eq!(keys("SORT k STORE d1 STORE d2"), ["k", "d2"]);
  assert_eq!(keys("SORT k GET store"), ["k"]);
  assert_eq!(keys("SORT_RO k BY w_*"), ["k"]);
}

#[test]
fn key_flags_follow_the_access() {
  let refs = |line: &str| with_args(line, key_refs);
  assert_eq!(refs("SET k v")[0].flags, OW | UPDATE);
  assert_eq!(refs("SET k v GET")[0].flags, RW | ACCESS | UPDATE);
  assert_eq!(refs("BITFIELD k GET u8 0")[0].flags, RO | ACCESS);
  assert_eq!(refs("BITFIELD k SET u8 0 1")[0].flags, RW | ACCESS | UPDATE);
  let z = refs("ZUNIONSTORE dst 2 a b");
  assert_eq!(z[0].flags, OW | UPDATE);
  assert_eq!(z[1].flags, RO | ACCESS);
  assert_eq!(refs("SORT k STORE d")[1].flags, OW | UPDATE);
}

#[test]
fn short_calls_give_no_out_of_range_key() {
  for line in [
    "GET",
    "SET",
    "SORT",
    "GEORADIUS",
    "MIGRATE h",
    "EVAL s",
    "XREAD",
    "ZUNIONSTORE d",
    "BITFIELD",
  ] {
    with_args(line, |cmd, args| {
      for i in key_positions(cmd, args) {
        assert!(i < args.len(), "{line}: {i}");
      }
    });
  }
}

#[test]
fn routing_positions_include_shard_channels() {
  let routing = |line: &str| with_args(line, routing_positions);
  assert_eq!(keys("SPUBLISH ch msg"), Vec::<String>::new());
  assert_eq!(routing("SPUBLISH ch msg"), [0]);
  assert_eq!(routing("SSUBSCRIBE a b"), [0, 1]);
  assert_eq!(routing("GET k"), [0]);
  assert_eq!(routing("PUBLISH ch msg"), Vec::<usize>::new());
}

#[test]
fn blocking_commands_and_their_timeouts() {
  assert!(blocking("BLPOP a 0"));
  assert!(!blocking("LPOP a"));
  // XREAD blocks only with BLOCK
  assert!(!blocking("XREAD STREAMS a 0"));
  assert!(blocking("XREAD BLOCK 0 STREAMS a 0"));
  assert!(blocking("XREADGROUP GROUP g c BLOCK 100 STREAMS a >"));
  assert!(!blocking("XREADGROUP GROUP g c COUNT 1 STREAMS block >"));
  assert!(blocking("WAIT 1 0"));

  assert_eq!(block("BLPOP a b 0"), Some(None));
  assert_eq!(block("BLPOP a b 1.5"), Some(Some(1500)));
  assert_eq!(
    block("BRPOP a 0.0001"),
    Some(Some(1)),
    "seconds round up to a ms"
  );
  assert_eq!(block("BZPOPMAX z 2"), Some(Some(2000)));
  assert_eq!(block("BLMOVE a b LEFT RIGHT 0.25"), Some(Some(250)));
  assert_eq!(block("BRPOPLPUSH a b 3"), Some(Some(3000)));
  assert_eq!(block("BLMPOP 0.5 2 a b LEFT"), Some(Some(500)));
  assert_eq!(block("BZMPOP 0 1 z MIN COUNT 2"), Some(None));
  assert_eq!(
    block("XREAD COUNT 1 BLOCK 250 STREAMS a $"),
    Some(Some(250))
  );
  assert_eq!(block("XREAD BLOCK 0 STREAMS a $"), Some(None));
  assert_eq!(
    block("XREAD BLOCK 5 BLOCK 7 STREAMS a $"),
    Some(Some(7)),
    "the last BLOCK counts"
  );
  assert_eq!(
    block("XREADGROUP GROUP g c NOACK BLOCK 2000 STREAMS a >"),
    Some(Some(2000))
  );
  assert_eq!(block("WAIT 1 100"), Some(Some(100)));
  assert_eq!(block("WAIT 1 0"), Some(None));
  // not blocking, or refused by the server at once
  assert_eq!(block("XREAD STREAMS a 0"), None);
  assert_eq!(block("GET k"), None);
  assert_eq!(block("BLPOP a -1"), None);
  assert_eq!(block("BLPOP a abc"), None);
  assert_eq!(block("BLPOP a inf"), None);
  assert_eq!(
    block("XREAD BLOCK 1.5 STREAMS a $"),
    None,
    "BLOCK takes an integer"
  );
  assert_eq!(block("XREAD BLOCK -1 STREAMS a $"), None);
  assert_eq!(block("WAIT 1 +5"), None);
}

#[test]
fn number_parsing_matches_redis() {
  assert_eq!(string2ll(b"0"), Some(0));
  assert_eq!(string2ll(b"-12"), Some(-12));
  assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
  assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
  for bad in [
    &b""[..],
    b"-",
    b"+1",
    b"01",
    b"-0",
    b" 1",
    b"1 ",
    b"9223372036854775808",
    b"1x",
  ] {
    assert_eq!(string2ll(bad), None, "{:?}", std::str::from_utf8(bad));
  }
  assert_eq!(atoi(b" 12x"), 12);
  assert_eq!(atoi(b"-3"), -3);
  assert_eq!(atoi(b"x"), 0);
  assert_eq!(atoi(b""), 0);
}
