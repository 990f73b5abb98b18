-- client.cache.wrap(): release a load lock after a failed load, if it is still
-- ours (lib/cache.ts), so that a waiting caller can take it over at once.
-- Compare and delete: a lock that expired and was taken by another caller is
-- left alone.
--
-- KEYS[1]  the load lock
-- ARGV     token
-- returns  1 released, 0 not ours (any more)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
