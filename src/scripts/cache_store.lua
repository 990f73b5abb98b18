-- client.cache.wrap(): store a loaded value if, and only if, the load lock is
-- still ours (lib/cache.ts). A lock that is gone or changed hands means the key
-- was invalidated during the load (cache.invalidate removes the lock too), or
-- the load outlived its lock and another caller took over: the value we loaded
-- may be older than what the database holds now, so it is not cached.
--
-- KEYS[1]  the cached value
-- KEYS[2]  its load lock
-- ARGV     token, value (JSON), ttl ms
-- returns  1 stored (and the lock released), 0 not stored
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
