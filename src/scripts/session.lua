-- One session of client.sessions (lib/sessions.ts), by the SHA-256 of its token.
--
-- KEYS[1]  the session: a string, so that a plain GET reads all of it (and a
--          client-side cache can hold it). A fixed-width header, then JSON:
--            e  15 digits  expires (ms); the key expires then too
--            x  15 digits  bound (ms): the user's index keeps this session's entry
--                          until at least x, so e never goes past x; x is raised
--                          only after the index was (lib/sessions.ts), which keeps
--                          revokeAll() complete
--            c  18 digits  created (µs)
--            [userId, data] as JSON (opaque here)
-- ARGV[1]  the operation:
--   create  ARGV[2] the JSON tail, ARGV[3] ttl ms, ARGV[4] headroom ms (x = e + headroom;
--           the index entry was written with more) -> the value
--   check   ARGV[2] slide ms (0: none): e = max(e, min(now + slide, x)), written only
--           when it moves by a step (a second, or a tenth of the slide if less)
--           -> { value, wanted } or nil; wanted > 0: the slide wanted e = wanted but
--           x stopped it (the caller raises x, then calls 'extend')
--   touch   ARGV[2] ttl ms: e = now + ttl when that is within x -> { value, wanted } or nil
--   extend  ARGV[2] new bound, ARGV[3] wanted e (ms, absolute): x = max(x, bound),
--           e = max(e, min(wanted, x)) -> the value, or nil when the session is gone
--   revoke  ARGV[2] (optional) the tail's start for the user it must belong to
--           -> the value it deleted, or nil
-- Time is the server's (TIME), in ms. A session whose e has passed is deleted
-- when it is read, even in the millisecond before Redis expires the key itself.
local key, op = KEYS[1], ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local HEAD = 48
local min, max = math.min, math.max
local function int(v)
  return string.format('%.0f', v)
end
local function field(v)
  return string.format('%015.0f', v)
end

if op == 'create' then
  local e = now + tonumber(ARGV[3])
  local c = string.format('%018.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]))
  local v = field(e) .. field(e + tonumber(ARGV[4])) .. c .. ARGV[2]
  if not redis.call('SET', key, v, 'NX', 'PXAT', int(e)) then
    return redis.error_reply('ERR session exists')
  end
  return v
end

local v = redis.call('GET', key)
if not v then
  return nil
end

if op == 'revoke' then
  if ARGV[2] and string.sub(v, HEAD + 1, HEAD + #ARGV[2]) ~= ARGV[2] then
    return nil
  end
  redis.call('DEL', key)
  return v
end

local e, x = tonumber(string.sub(v, 1, 15)), tonumber(string.sub(v, 16, 30))
if #v <= HEAD or not e or not x then
  return nil -- not a session of this package
end
if e <= now then
  redis.call('DEL', key)
  return nil
end

-- rewrites the header (e, and x when given) and the key's expiry
local function store(ne, nx)
  if nx then
    v = field(ne) .. field(nx) .. string.sub(v, 31)
  else
    v = field(ne) .. string.sub(v, 16)
  end
  redis.call('SET', key, v, 'PXAT', int(ne))
end

if op == 'check' then
  local slide = tonumber(ARGV[2])
  local wanted = 0
  if slide > 0 then
    local want = now + slide
    if want - e >= min(1000, math.floor(slide / 10)) then
      local ne = min(want, x)
      if ne > e then
        store(ne)
      end
      if want > x then
        wanted = want
      end
    end
  end
  return { v, int(wanted) }
end

if op == 'touch' then
  local want = now + tonumber(ARGV[2])
  if want <= x then
    store(want)
    return { v, '0' }
  end
  return { v, int(want) }
end

if op == 'extend' then
  local nx = max(x, tonumber(ARGV[2]))
  store(max(e, min(tonumber(ARGV[3]), nx)), nx)
  return v
end

return redis.error_reply('ERR unknown session operation')
