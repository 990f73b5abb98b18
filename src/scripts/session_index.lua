-- A user's index of client.sessions (lib/sessions.ts): a sorted set whose members
-- are the session ids (SHA-256 of the tokens, base64url) and whose scores are
-- the moment (ms) after which the session is certainly over: its bound x plus a
-- grace. Entries past their score are pruned by every operation; the key itself
-- expires with its last entry.
--
-- KEYS[1]  the index (its hash tag is the user's, so it can live on any cluster node)
-- ARGV[1]  the operation:
--   add     ARGV[2] id, ARGV[3] bound as ms from now: score = now + bound + grace
--   raise   ARGV[2] id, ARGV[3] bound as an absolute time (ms): score = bound +
--           grace, if higher (added when absent) -> the bound
--   list    -> { now, id, id, ... }
--   take    -> { now, id, id, ... }, and the index is deleted (revokeAll)
--   remove  ARGV[2..] ids -> how many were removed
-- Time is the server's (TIME), in ms.
local key, op = KEYS[1], ARGV[1]
local GRACE = 60000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ms(v)
  return string.format('%.0f', v)
end

redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ms(now))

if op == 'add' or op == 'raise' then
  local bound = tonumber(ARGV[3])
  if op == 'add' then
    bound = now + bound
  end
  redis.call('ZADD', key, 'GT', ms(bound + GRACE), ARGV[2])
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', key, last[2])
  return ms(bound)
end

if op == 'list' or op == 'take' then
  local ids = redis.call('ZRANGE', key, 0, -1)
  if op == 'take' then
    redis.call('DEL', key)
  end
  table.insert(ids, 1, ms(now))
  return ids
end

if op == 'remove' then
  local n = 0
  for i = 2, #ARGV do
    n = n + redis.call('ZREM', key, ARGV[i])
  end
  return n
end

return redis.error_reply('ERR unknown session index operation')
