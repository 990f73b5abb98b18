-- Rate limits checked together: if any rule denies, none is charged.
--
-- KEYS[i]  the state of rule i (a hash; all keys of one call share a hash tag)
-- ARGV     6 per rule: algorithm (1 gcra, 2 fixed window, 3 sliding window), limit,
--          window ms, burst (gcra), cost, block ms
-- returns  4 per rule: verdict (1 allowed, 0 denied by its limit, 2 denied by a block,
--          3 within its limit but not charged because another rule denied), remaining,
--          reset ms (until the limit is whole again), retry-after ms
--
-- State fields: b = blocked until (ms); gcra: t = theoretical arrival time (ms);
-- windows: w = window number (epoch-aligned), c = count in it, p = count in the one
-- before (sliding). Time is the server's (TIME), in ms with microseconds as fraction.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local floor, ceil, max = math.floor, math.ceil, math.max
local EPS = 1e-6
local out, plans = {}, {}
local all_ok = true

for i = 1, #KEYS do
  local a = (i - 1) * 6
  local algo, limit, win = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local burst, cost, blockms = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local st = redis.call('HMGET', KEYS[i], 'b', 't', 'w', 'c', 'p')
  local p = { algo = algo, win = win, cost = cost, blockms = blockms }
  -- p.ok: within the limit; p.rem/p.reset: if charged; p.rem0/p.reset0: if not
  local retry = 0

  if algo == 1 then
    local T = win / limit
    local tau = T * burst
    local tat = max(tonumber(st[2]) or now, now)
    local new_tat = tat + cost * T
    p.ok = new_tat - tau - now <= EPS
    p.rem0, p.reset0 = floor((tau - (tat - now)) / T + EPS), tat - now
    p.rem, p.reset = floor((tau - (new_tat - now)) / T + EPS), new_tat - now
    p.tat = new_tat
    if not p.ok then retry = new_tat - tau - now end
  else
    local idx = floor(now / win)
    local left = win - (now - idx * win)
    local w = tonumber(st[3])
    local c, prev = 0, 0
    if w == idx then
      c, prev = tonumber(st[4]) or 0, tonumber(st[5]) or 0
    elseif w == idx - 1 then
      prev = tonumber(st[4]) or 0
    end
    p.idx, p.c, p.prev, p.left = idx, c + cost, prev, left
    if algo == 2 then
      p.ok = c + cost <= limit
      p.rem0, p.reset0 = limit - c, left
      p.rem, p.reset = limit - c - cost, left
      if not p.ok then retry = left end
    else
      -- the previous window counts by the share of it the sliding window still covers
      local est = prev * (left / win) + c
      p.ok = est + cost <= limit + EPS
      local function reset_of(cc)
        if cc > 0 then return left + win elseif prev > 0 then return left end
        return 0
      end
      p.rem0, p.reset0 = floor(limit - est + EPS), reset_of(c)
      p.rem, p.reset = floor(limit - est - cost + EPS), reset_of(c + cost)
      if not p.ok then
        if c + cost <= limit then
          -- later in this window, once prev * left' / win + c + cost <= limit
          retry = left - (limit - c - cost) * win / prev
        else
          -- in the next window, where this window's count is the previous one
          retry = left + win * (1 - (limit - cost) / c)
        end
      end
    end
  end

  local blocked_until = tonumber(st[1]) or 0
  if blocked_until > now then
    p.verdict = 2
    retry = max(retry, blocked_until - now)
  elseif p.ok then
    p.verdict = 1
  else
    p.verdict = 0
  end
  if p.verdict ~= 1 then all_ok = false end
  p.retry = retry
  plans[i] = p
end

for i = 1, #KEYS do
  local p, key = plans[i], KEYS[i]
  local verdict, rem, reset, retry = p.verdict, p.rem0, p.reset0, p.retry
  if all_ok then
    rem, reset = p.rem, p.reset
    if p.cost > 0 then
      if p.algo == 1 then
        redis.call('HSET', key, 't', string.format('%.3f', p.tat))
        redis.call('PEXPIRE', key, max(ceil(p.tat - now), 1))
      else
        redis.call('HSET', key, 'w', p.idx, 'c', p.c, 'p', p.prev)
        -- the count matters until this window ends (and the next one, for sliding)
        local life = p.left + (p.algo == 3 and p.win or 0)
        redis.call('PEXPIRE', key, max(ceil(life), 1))
      end
    end
  elseif verdict == 1 then
    verdict = 3
  elseif verdict == 0 and p.blockms > 0 then
    -- denied by its limit: blocked for blockMs (the only write a denial makes)
    redis.call('HSET', key, 'b', string.format('%.3f', now + p.blockms))
    if redis.call('PTTL', key) < p.blockms then redis.call('PEXPIRE', key, ceil(p.blockms)) end
    retry = max(retry, p.blockms)
  end
  if verdict == 2 then rem = 0 end
  local o = (i - 1) * 4
  out[o + 1], out[o + 2], out[o + 3], out[o + 4] = verdict, max(rem, 0), max(ceil(reset), 0), max(ceil(retry), 0)
end
return out
