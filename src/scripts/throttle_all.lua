-- RedisThrottlerGuard (lib/ratelimit/throttler-guard.ts): the named throttlers
-- of one request in one call, answered exactly as @nestjs/throttler's
-- ThrottlerGuard answers them one after another with RedisThrottlerStorage.
-- This is throttle.lua (read its header: KEYS, records, hit lists, replies),
-- with one addition: increments come in requests, and once an increment of a
-- request is blocked (or fails), the request's later increments are not run,
-- as the stock guard throws at the first throttler that blocks and never
-- counts the ones after it. Keys and records are throttle.lua's, so both
-- scripts (the guard and the storage) count into the same records.
--
-- Keep the two in step: __test__/throttler-guard.spec.ts checks that every
-- line of throttle.lua (comments aside) is here, in order.
--
-- KEYS     as throttle.lua
-- ARGV     idle grace ms; the rule of each increment (as throttle.lua); the
--          request of each increment, one byte each: 1 starts a request, 2
--          continues the request of the increment before it ('' when every
--          increment is a request of its own); then four per rule, as throttle.lua
-- returns  as throttle.lua, and for an increment not run (a request's
--          increment after one that was blocked or failed): false (a nil
--          reply), in its place
local call, ceil, floor, fmt, tonumber = redis.call, math.ceil, math.floor, string.format, tonumber
local sub, byte = string.sub, string.byte
-- The record's numbers as doubles (struct, one of the libraries Redis gives
-- scripts): reading them back costs no text parsing, writing them no formatting.
local pack, unpack_struct = struct.pack, struct.unpack
-- A record starts with FORMAT: a string under our keys that does not, written
-- by another build of this script or by something else, fails with WRONGTYPE
-- rather than being misread.
local FORMAT, FORMAT_U32 = 'thr\1', 1953001985 -- the same 4 bytes as a big-endian u32
local HEAD, HEAD_SIZE = '>dddddd', 52 -- FORMAT and six doubles
-- a name's entry: TAG, the name, TAIL
local TAG, TAIL, ENTRY_SIZE = '>dI4', '>dd', 28
-- what the usual increment reads: the format, u, h, expiresAt, blockExpiresAt
local USUAL = '>I4dddd'
local MIXED = 0 / 0 -- t once the hits of a list have different ttls (equal to nothing)
-- the usual answer's totalHits below HITS, expiresAt - now below SPAN: together
-- below 2^53, exact as a double and as Redis' integer reply
local HITS, SPAN = 2097152, 4294967296
-- A time beyond ±2^53 s (from a ttl or blockDuration beyond ±9e18 ms) goes back
-- as a string: Redis would turn it into a wrong (saturated) integer reply.
local MAX = 9007199254740992
local function int(v)
  if v >= -MAX and v <= MAX then return v end
  return fmt('%.17g', v)
end
-- A number as redis.call would send it ('%.17g'), but whole numbers by '%d':
-- glibc's floating-point formatting was a quarter of this script's instructions.
local function str(v)
  if v == floor(v) and v > -1e15 and v < 1e15 then return fmt('%d', v) end
  return fmt('%.17g', v)
end
local grace = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
local snow = str(now)

-- the rules, each with its hits' expiry (now + ttl) as text
local rules = {}
for a = 4, #ARGV, 4 do
  local ttl = tonumber(ARGV[a])
  local name = ARGV[a + 3]
  local tag = pack(TAG, ttl, #name) .. name
  rules[#rules + 1] = {
    ttl = ttl, limit = tonumber(ARGV[a + 1]), block = tonumber(ARGV[a + 2]), name = name,
    ex = str(now + ttl),
    -- a record whose first entry starts with `tag` (this name, hits of this ttl)
    tag = tag, tag_end = HEAD_SIZE + #tag, expiry = now + ttl, -- ex as a number
  }
end
local which = ARGV[2]
local requests = ARGV[3]

-- Whole-ms expiries as long as now's text compare as text (no tonumber).
local nlen = #snow
local function expired(v)
  if #v == nlen and not v:find('.', 1, true) then return v <= snow end
  return tonumber(v) <= now
end

-- pruneExpiredHits: drops the hits that expire by now from the head of the
-- list. Returns the first live hit's expiry (text), or nil and the number of
-- hits when every one has expired: those stay for add_hit to reuse the list
-- (and its expiry) rather than delete and make it again.
local function prune(hits)
  local vs = call('LRANGE', hits, '0', '3')
  local from, n = 0, 4
  while true do
    for j = 1, #vs do
      if not expired(vs[j]) then
        if from + j > 1 then call('LTRIM', hits, str(from + j - 1), '-1') end
        return vs[j], 0
      end
    end
    if #vs < n then return nil, from + #vs end
    from, n = from + n, n * 4
    vs = call('LRANGE', hits, str(from), str(from + n - 1))
  end
end

-- fireHitCount: one more hit expiring at now + ttl, in expiry order. Appends
-- when every hit in the list has this ttl; otherwise (a throttler whose ttl
-- changed while its hits live) inserts before the first later one. With `dead`
-- expired hits (every one there is) it replaces them. Returns the new number
-- of hits, and whether the list was made (it then has no expiry yet).
local function add_hit(hits, rule, appends, dead)
  local ex = rule.ex
  if dead > 0 then
    if dead > 1 then call('LTRIM', hits, '-1', '-1') end
    call('LSET', hits, '0', ex)
    return 1, false
  end
  if not appends then
    local vs = call('LRANGE', hits, '0', '-1')
    local at = rule.expiry
    for j = 1, #vs do
      if tonumber(vs[j]) > at then return call('LINSERT', hits, 'BEFORE', vs[j], ex), false end
    end
  end
  local total = call('RPUSH', hits, ex)
  return total, total == 1
end

-- The records as they stand: read by one MGET, then as the increments left
-- them (a record written is written for every later increment of its key).
local n = #KEYS / 2
local recs = call('MGET', unpack(KEYS, 1, n))

-- A key of ours holding something else (another type, or a string that is not
-- a record) fails its increment as Redis fails a command on the wrong type.
local WRONGTYPE = { err = 'WRONGTYPE Operation against a key holding the wrong kind of value' }

-- The name entry of record `s` at `at`: xn, h, t, where its name starts and
-- ends (exclusive), and where the next entry starts.
local function entry(s, at)
  if at + ENTRY_SIZE - 1 > #s then error(WRONGTYPE) end
  local tn, len, from = unpack_struct(TAG, s, at)
  local stop = from + len
  if stop + 15 > #s then error(WRONGTYPE) end
  local xn, h = unpack_struct(TAIL, s, stop)
  return xn, h, tn, from, stop, stop + 16
end

-- The numbers of record `s` (or false): e, b, k, x, then xn, h, t of `name`
-- (0, 0, nil when it has none).
local function decode(s, name, ttl)
  if not s then return now + ttl, 0, 0, 0, 0, 0, nil end
  local size = #s
  if size < HEAD_SIZE or sub(s, 1, 4) ~= FORMAT then error(WRONGTYPE) end
  local _, _, e, b, k, x = unpack_struct(HEAD, s, 5)
  local xn, h, tn = 0, 0, nil
  local at = HEAD_SIZE + 1
  while at <= size do
    local xn1, h1, tn1, from, stop, next_at = entry(s, at)
    if sub(s, from, stop - 1) == name then xn, h, tn = xn1, h1, tn1 end
    at = next_at
  end
  return e, b, k, x, xn, h, tn
end

-- `s` with the record's numbers and `name`'s entry, first, replaced; the
-- entries of names whose hit lists have expired are dropped. Until u, the
-- usual increment may run: the record is not blocked, its hits all have ttl
-- tn, the window lasts and the list's lease covers one more hit; times beyond
-- 2^53 or a fractional window end never take that path.
local function encode(s, name, e, b, k, x, xn, h, tn)
  local u = 0
  if k == 0 and tn == tn and e == floor(e) and e <= MAX and b <= MAX and b >= -MAX then
    u = xn - tn - grace
    if e < u then u = e end
  end
  local parts = { FORMAT, pack(HEAD, u, h, e, b, k, x), pack(TAG, tn, #name), name, pack(TAIL, xn, h) }
  if s then
    local at = HEAD_SIZE + 1
    while at <= #s do
      local other_xn, _, _, from, stop, next_at = entry(s, at)
      if other_xn > now and sub(s, from, stop - 1) ~= name then parts[#parts + 1] = sub(s, at, next_at - 1) end
      at = next_at
    end
  end
  return table.concat(parts)
end

-- Increment i: its record, hit list `hits`, `rule`. Returns its answer.
local function increment(i, hits, rule)
  local ttl, limit, block, name = rule.ttl, rule.limit, rule.block, rule.name
  local rec, s = KEYS[i], recs[i]
  -- MGET answers nil for a key of another type
  if not s and call('EXISTS', rec) == 1 then error(WRONGTYPE) end
  local e, b, k, x, xn, h, tn = decode(s, name, ttl)
  local dirty = not s

  -- pruneExpiredHits, unless no hit expires before h (then none has expired
  -- yet: the first ttl of a tracker's traffic pays no prune)
  local first, dead, empty = nil, 0, false
  if h <= now then
    first, dead = prune(hits)
    empty = first == nil
    h = empty and now + ttl or tonumber(first)
  end
  if empty then
    if tn ~= ttl then
      tn = ttl
      dirty = true
    end
  elseif tn ~= ttl and tn == tn then
    tn = MIXED
    dirty = true
  end
  local appends = tn == ttl
  if now + ttl < h then
    -- a hit earlier than every other: h stays a lower bound
    h = now + ttl
    dirty = true
  end

  -- getExpirationTime, and a new window when it is over
  local tte = ceil((e - now) / 1000)
  if tte <= 0 then
    e = now + ttl
    tte = ceil(ttl / 1000)
    dirty = true
  end

  local total, made, last_hit = 0, false, 0
  local blocked, ttbe
  local until_ms -- while blocked: when the answer stops being a function of time alone
  if block <= 0 then
    -- incrementWithoutBlock: the record's block flag is neither read nor written.
    -- Denied when the hits before this one reach the limit: the hit is taken
    -- back, and the answer holds until the first hit expires.
    total, made = add_hit(hits, rule, appends, dead)
    blocked = total - 1 >= limit
    ttbe = 0
    if blocked then
      call('LREM', hits, '-1', rule.ex)
      if total > 1 then
        until_ms = tonumber(first or call('LINDEX', hits, '0'))
        ttbe = ceil((until_ms - now) / 1000)
      else
        until_ms = e
        ttbe = tte
      end
    else
      last_hit = now + ttl
    end
  else
    if k == 0 then
      total, made = add_hit(hits, rule, appends, dead)
      last_hit = now + ttl
      if total > limit then
        k = 1
        b = now + block
        dirty = true
      end
    end
    ttbe = ceil((b - now) / 1000)
    if k == 1 and ttbe <= 0 then
      -- resetBlockedRequest, then fireHitCount
      k = 0
      call('DEL', hits)
      tn, h = ttl, now + ttl
      dirty = true
      total, made = add_hit(hits, rule, true, 0)
      last_hit = now + ttl
    elseif k == 1 and last_hit == 0 then
      -- blocked: no hit is counted, and the expired ones go
      if dead > 0 then call('DEL', hits) else total = call('LLEN', hits) end
    end
    blocked = k == 1
    until_ms = b
  end

  -- expiry leases: the hit list outlives its last hit by one to two graces (a
  -- list just made has none yet); the record outlives the window, the block and
  -- every name's hit list the same way
  if last_hit > 0 and (made or last_hit + grace > xn) then
    xn = ceil(last_hit + 2 * grace) -- whole ms for PEXPIREAT, also with a fractional ttl
    call('PEXPIREAT', hits, str(xn))
    dirty = true
  end
  local need = e + grace
  if k == 1 and b + grace > need then need = b + grace end
  if xn > need then need = xn end
  if need > x then
    x = e + 2 * grace
    if k == 1 and b + 2 * grace > x then x = b + 2 * grace end
    if xn > x then x = xn end
    x = ceil(x)
    dirty = true
  end
  if dirty then
    if x > now then
      s = encode(s, name, e, b, k, x, xn, h, tn)
      call('SET', rec, s, 'PXAT', str(x))
    else
      -- all over already (absurd negative ttls): nothing to keep
      call('DEL', rec)
      s = false
    end
    for j = i, n do
      if KEYS[j] == rec then recs[j] = s end
    end
  end

  if not blocked then return total, tte, 0, ttbe end
  local hs = block > 0 and call('LRANGE', hits, '0', '-1') or nil
  return total, tte, 1, ttbe, str(e), str(until_ms), hs
end

-- The increments from `from` on, their answers appended to `out`. A failed
-- redis.call raises out of it: `current` says whose increment that was.
local out, o, current = { now }, 1, 0
-- whether the current request had an increment blocked or failed
local stopped = false
local function run(from)
  local r, rule, limit, block, ex, expiry, tag, tag_end = 0
  for i = from, n do
    current = i
    if requests == '' or byte(requests, i) == 1 then stopped = false end
    if stopped then
      out[o + 1] = false
      o = o + 1
    else
      local ri = which == '' and 1 or byte(which, i)
      if ri ~= r then
        r, rule = ri, rules[ri]
        limit, block, ex, expiry, tag, tag_end = rule.limit, rule.block, rule.ex, rule.expiry, rule.tag, rule.tag_end
      end
      local s, hits, total = recs[i], KEYS[n + i], nil
      -- The usual increment: the record's first name is this one, with hits of
      -- this ttl, none expiring after this one's, and now is before u. It trims
      -- the hits that have expired from the head (under steady traffic, a hit or
      -- two; when every one it reads has, the general increment decides), then
      -- appends its own. A push that makes the list anew (it needs an expiry) or
      -- goes over the limit is taken back, for the general increment to redo.
      if s and #s >= HEAD_SIZE + ENTRY_SIZE then
        local format, u, h, e, b = unpack_struct(USUAL, s)
        if now < u and h <= expiry and format == FORMAT_U32 and sub(s, HEAD_SIZE + 1, tag_end) == tag then
          local live = true
          if h <= now then
            local vs = call('LRANGE', hits, '0', '3')
            local j = 0
            while j < #vs and expired(vs[j + 1]) do
              j = j + 1
            end
            if j == #vs then
              live = false
            elseif j > 0 then
              call('LTRIM', hits, j, '-1')
            end
          end
          if live then total = call('RPUSH', hits, ex) end
        end
        if total ~= nil then
          if total > 1 and total <= limit then
            local d = e - now
            if (b == 0 or block <= 0) and d < SPAN and total < HITS then
              out[o + 1] = d * HITS + total
              o = o + 1
            else
              out[o + 1], out[o + 2], out[o + 3], out[o + 4] = 0, total, ceil(d / 1000), block > 0 and ceil((b - now) / 1000) or 0
              o = o + 4
            end
          else
            call('RPOP', hits)
            total = nil
          end
        end
      end
      if total == nil then
        local tte, blocked, ttbe, e, until_ms, hs
        total, tte, blocked, ttbe, e, until_ms, hs = increment(i, hits, rule)
        if tte > MAX or tte < -MAX or ttbe > MAX or ttbe < -MAX then tte, ttbe = int(tte), int(ttbe) end
        if blocked == 0 then
          out[o + 1], out[o + 2], out[o + 3], out[o + 4] = 0, total, tte, ttbe
          o = o + 4
        else
          out[o + 1], out[o + 2], out[o + 3] = -1 - total, tte, ttbe
          local m = hs and #hs or 0
          out[o + 4], out[o + 5], out[o + 6] = e, until_ms, m
          for j = 1, m do
            out[o + 6 + j] = hs[j]
          end
          o = o + 6 + m
          stopped = true
        end
      end
    end
  end
end

local from = 1
while true do
  local ok, err = pcall(run, from)
  if ok then break end
  -- that increment stops there, as a call of its own would have; the others run
  -- (redis.call raises a table { err = text }, a Lua error is a string)
  out[o + 1] = type(err) == 'table' and tostring(err.err) or tostring(err)
  o = o + 1
  stopped = true
  from = current + 1
end
return out
