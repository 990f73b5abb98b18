-- @nestjs/throttler's in-memory ThrottlerStorageService.increment(), in Redis,
-- for one or more increments in one call (lib/throttler.ts batches the calls of
-- one tick). Every step mirrors @nestjs/throttler 6.7 (dist/throttler.service.js),
-- with the server's clock.
--
-- Increments run one after another in the order given, all at the moment of the
-- call's one TIME: several increments of one key answer exactly as the same
-- calls made one after another within that millisecond.
--
-- KEYS     two per increment:
--          the record of one throttler key (hash): e = expiresAt, b = blockExpiresAt,
--          k = isBlocked (0/1), x = when this hash expires, x:<name> = when that
--          name's hit set expires (all ms);
--          the hits of one throttler name under that key (sorted set: score = the
--          hit's expiry in ms, member = the server time it was made, unique)
-- ARGV     idle grace ms, then four per increment: ttl ms, limit, blockDuration ms,
--          throttler name
-- returns  one flat array, per increment in order (timeToExpire and timeToBlockExpire
--          as strings when beyond 2^53):
--          not blocked: totalHits, timeToExpire s, 0, timeToBlockExpire s
--          blocked:     totalHits, timeToExpire s, 1, timeToBlockExpire s, then (the
--                       answer stays the same but for time until one of these
--                       moments) now, expiresAt, the block's end (or the first hit's
--                       expiry when blockDuration <= 0) as strings (ms), the number
--                       m of hit expiries that follow, and (blockDuration > 0 only)
--                       the m live hits' expiries: what lib/throttler.ts needs to
--                       answer the following calls of the block without a round trip
--          failed:      the error's text (a string where totalHits would be): a
--                       redis.call of this increment failed (e.g. WRONGTYPE); it
--                       stopped there, as a call of its own would have, and the
--                       other increments ran all the same
--
-- Idle keys expire between one and two graces after everything in them is over
-- (window, block, every hit of every name), like the in-memory sweep. Their
-- expiry is pushed forward a grace at a time, so a call on a busy key writes
-- nothing but its hit.
local call, ceil, floor, fmt, tonumber = redis.call, math.ceil, math.floor, string.format, tonumber
-- A time beyond ±2^53 s (from a ttl or blockDuration beyond ±9e18 ms) goes back
-- as a string: Redis would turn it into a wrong (saturated) integer reply.
local function int(v)
  if v >= -9007199254740992 and v <= 9007199254740992 then return v end
  return fmt('%.17g', v)
end
-- A number as redis.call would send it ('%.17g'), but whole numbers by '%d':
-- glibc's floating-point formatting was a quarter of this script's instructions.
local function str(v)
  if v == floor(v) and v > -1e15 and v < 1e15 then return fmt('%d', v) end
  return fmt('%.17g', v)
end
-- tonumber of a string, once per distinct string of the call (Lua 5.1's tonumber
-- runs strtod twice; the increments of a call mostly share ttl, limit and times)
local parsed = {}
local function num(v)
  if not v then return nil end
  local n = parsed[v]
  if n == nil then
    n = tonumber(v)
    parsed[v] = n
  end
  return n
end
local grace = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stamp = t[1] .. '.' .. t[2]
local snow = str(now)
-- now + ttl as text, once per ttl
local expiries = {}
local function expiry_of(ttl)
  local v = expiries[ttl]
  if v == nil then
    v = str(now + ttl)
    expiries[ttl] = v
  end
  return v
end

-- One increment: KEYS[2i-1], KEYS[2i], ARGV[4i-2 .. 4i+1]. Returns its answer.
local function increment(i)
  local rec, hits = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 4 * i - 2
  local ttl, limit, block, name = num(ARGV[a]), num(ARGV[a + 1]), num(ARGV[a + 2]), ARGV[a + 3]
  local xname = 'x:' .. name

  local r = call('HMGET', rec, 'e', 'b', 'k', 'x', xname)
  local e, b, k, x, xn
  local dirty = false
  if r[1] then
    e, b, k, x, xn = num(r[1]), num(r[2]), num(r[3]), num(r[4]), num(r[5]) or 0
  else
    e, b, k, x, xn = now + ttl, 0, 0, 0, 0
    dirty = true
  end

  -- pruneExpiredHits: keep the hits that expire after now
  call('ZREMRANGEBYSCORE', hits, '-inf', snow)
  local total = call('ZCARD', hits)

  -- getExpirationTime, and a new window when it is over
  local tte = ceil((e - now) / 1000)
  if tte <= 0 then
    e = now + ttl
    tte = ceil(ttl / 1000)
    dirty = true
  end

  -- fireHitCount: ZADD NX with a member unique to this increment of this call,
  -- and another one in the rare case of a clash with an earlier call
  local last_hit, member = 0, i == 1 and stamp or stamp .. '-' .. fmt('%d', i)
  local added = 0

  local blocked, ttbe
  local until_ms -- while blocked: when the answer stops being a function of time alone
  if block <= 0 then
    -- incrementWithoutBlock: the record's block flag is neither read nor written
    blocked = total >= limit
    if not blocked then
      added = call('ZADD', hits, 'NX', expiry_of(ttl), member)
      total = total + 1
      last_hit = now + ttl
    end
    ttbe = 0
    if blocked then
      if total > 0 then
        until_ms = tonumber(call('ZRANGE', hits, 0, 0, 'WITHSCORES')[2])
        ttbe = ceil((until_ms - now) / 1000)
      else
        until_ms = e
        ttbe = tte
      end
      total = total + 1
    end
  else
    if k == 0 then
      added = call('ZADD', hits, 'NX', expiry_of(ttl), member)
      total = total + 1
      last_hit = now + ttl
    end
    if total > limit and k == 0 then
      k = 1
      b = now + block
      dirty = true
    end
    ttbe = ceil((b - now) / 1000)
    if ttbe <= 0 and k == 1 then
      -- resetBlockedRequest, then fireHitCount
      k = 0
      call('DEL', hits)
      total, xn = 1, 0
      dirty = true
      added = call('ZADD', hits, 'NX', expiry_of(ttl), member)
      last_hit = now + ttl
    end
    blocked = k == 1
    until_ms = b
  end

  local n = 0
  while added == 0 and last_hit > 0 do
    n = n + 1
    added = call('ZADD', hits, 'NX', str(last_hit), member .. '.' .. fmt('%d', n))
  end

  -- expiry leases: the hit set outlives its last hit by one to two graces; the
  -- record outlives the window, the block and every name's hit set the same way
  if last_hit > 0 and last_hit + grace > xn then
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
    call('HSET', rec, 'e', str(e), 'b', str(b), 'k', k == 1 and '1' or '0', 'x', str(x), xname, str(xn))
    call('PEXPIREAT', rec, str(x))
  end

  if not blocked then return total, tte, 0, ttbe end
  local hs = block > 0 and call('ZRANGE', hits, 0, -1, 'WITHSCORES') or nil
  return total, tte, 1, ttbe, str(e), str(until_ms), hs
end

local out, o = {}, 0
for i = 1, #KEYS / 2 do
  local ok, total, tte, blocked, ttbe, e, until_ms, hs = pcall(increment, i)
  if not ok then
    -- redis.call raises a table { err = text } (a Lua error: a string)
    out[o + 1] = type(total) == 'table' and tostring(total.err) or tostring(total)
    o = o + 1
  elseif blocked == 0 then
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = total, int(tte), 0, int(ttbe)
    o = o + 4
  else
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = total, int(tte), 1, int(ttbe)
    out[o + 5], out[o + 6], out[o + 7] = snow, e, until_ms
    local m = hs and #hs / 2 or 0
    out[o + 8] = m
    o = o + 8
    for j = 2, 2 * m, 2 do
      o = o + 1
      out[o] = hs[j]
    end
  end
end
return out
