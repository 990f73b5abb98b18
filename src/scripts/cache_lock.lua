-- client.cache.wrap(), on a miss: the cached value, or the load lock, atomically
-- (lib/cache.ts). Checking both in one step closes the gap in which another
-- instance stores the value and releases its lock between our GET and SET NX.
--
-- KEYS[1]  the cached value (a JSON string)
-- KEYS[2]  its load lock (a string: the owner's token)
-- ARGV     token, lock ms
-- returns  {1, value}       the value is there (stored since our GET)
--          {2}              the lock is ours: load, then cache_store
--          {0, lock pttl}   another caller holds the lock: wait for its value
local v = redis.call('GET', KEYS[1])
if v then
  return {1, v}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2}
end
return {0, redis.call('PTTL', KEYS[2])}
