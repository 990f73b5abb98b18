-- Better Auth's SecondaryStorage.increment(key, ttl) (lib/better-auth.ts): the
-- counter goes up by one; a new counter starts at 1 and expires ttl seconds
-- later, and later increments leave its expiry alone (a fixed window from the
-- first hit). A counter found without any expiry (written by something else)
-- gets one, so that it cannot lock its key out for ever.
--
-- KEYS[1]  the counter
-- ARGV[1]  ttl in seconds (a positive integer)
-- returns  the counter after the increment
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('TTL', KEYS[1]) == -1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return n
