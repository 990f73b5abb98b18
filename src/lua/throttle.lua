-- @nestjs/throttler's in-memory ThrottlerStorageService.increment(), in Redis.
-- Every step mirrors @nestjs/throttler 6.7 (dist/throttler.service.js), with the
-- server's clock; see lib/throttler.ts.
--
-- KEYS[1]  the record of one throttler key (hash): e = expiresAt, b = blockExpiresAt,
--          k = isBlocked (0/1), x = when this hash expires, x:<name> = when that
--          name's hit set expires (all ms)
-- KEYS[2]  the hits of one throttler name under that key (sorted set: score = the
--          hit's expiry in ms, member = the server time it was made, unique)
-- ARGV     ttl ms, limit, blockDuration ms, idle grace ms, throttler name
-- returns  { totalHits, timeToExpire s, isBlocked 0/1, timeToBlockExpire s }, and when
--          blocked (the answer stays the same but for time until one of these moments)
--          also: now, expiresAt, the block's end (or the first hit's expiry when
--          blockDuration <= 0) as strings (ms), then the live hits' expiries
--          (blockDuration > 0 only): what lib/throttler.ts needs to answer the
--          following calls of the block without a round trip
--
-- Idle keys expire between one and two graces after everything in them is over
-- (window, block, every hit of every name), like the in-memory sweep. Their
-- expiry is pushed forward a grace at a time, so a call on a busy key writes
-- nothing but its hit.
local rec, hits = KEYS[1], KEYS[2]
local ttl, limit, block, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local xname = 'x:' .. ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ceil = math.ceil

local r = redis.call('HMGET', rec, 'e', 'b', 'k', 'x', xname)
local e, b, k, x, xn
local dirty = false
if r[1] then
  e, b, k, x, xn = tonumber(r[1]), tonumber(r[2]), tonumber(r[3]), tonumber(r[4]), tonumber(r[5]) or 0
else
  e, b, k, x, xn = now + ttl, 0, 0, 0, 0
  dirty = true
end

-- pruneExpiredHits: keep the hits that expire after now
redis.call('ZREMRANGEBYSCORE', hits, '-inf', now)
local total = redis.call('ZCARD', hits)

-- getExpirationTime, and a new window when it is over
local tte = ceil((e - now) / 1000)
if tte <= 0 then
  e = now + ttl
  tte = ceil(ttl / 1000)
  dirty = true
end

-- fireHitCount: ZADD NX, and another member in the rare case of a second call
-- within the same microsecond
local last_hit, member = 0, t[1] .. '.' .. t[2]
local added = 0

local blocked, ttbe
local until_ms -- while blocked: when the answer stops being a function of time alone
if block <= 0 then
  -- incrementWithoutBlock: the record's block flag is neither read nor written
  blocked = total >= limit
  if not blocked then
    added = redis.call('ZADD', hits, 'NX', now + ttl, member)
    total = total + 1
    last_hit = now + ttl
  end
  ttbe = 0
  if blocked then
    if total > 0 then
      until_ms = tonumber(redis.call('ZRANGE', hits, 0, 0, 'WITHSCORES')[2])
      ttbe = ceil((until_ms - now) / 1000)
    else
      until_ms = e
      ttbe = tte
    end
    total = total + 1
  end
else
  if k == 0 then
    added = redis.call('ZADD', hits, 'NX', now + ttl, member)
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
    redis.call('DEL', hits)
    total, xn = 1, 0
    dirty = true
    added = redis.call('ZADD', hits, 'NX', now + ttl, member)
    last_hit = now + ttl
  end
  blocked = k == 1
  until_ms = b
end

local n = 0
while added == 0 and last_hit > 0 do
  n = n + 1
  added = redis.call('ZADD', hits, 'NX', last_hit, member .. '.' .. n)
end

-- expiry leases: the hit set outlives its last hit by one to two graces; the
-- record outlives the window, the block and every name's hit set the same way
if last_hit > 0 and last_hit + grace > xn then
  xn = ceil(last_hit + 2 * grace) -- whole ms for PEXPIREAT, also with a fractional ttl
  redis.call('PEXPIREAT', hits, xn)
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
  redis.call('HSET', rec, 'e', e, 'b', b, 'k', k, 'x', x, xname, xn)
  redis.call('PEXPIREAT', rec, x)
end

if not blocked then return { total, tte, 0, ttbe } end
local fmt = string.format
local out = { total, tte, 1, ttbe, fmt('%.17g', now), fmt('%.17g', e), fmt('%.17g', until_ms) }
if block > 0 then
  local hs = redis.call('ZRANGE', hits, 0, -1, 'WITHSCORES')
  for i = 2, #hs, 2 do out[#out + 1] = hs[i] end
end
return out
