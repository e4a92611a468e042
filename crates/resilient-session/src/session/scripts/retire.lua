-- The second half of a login in a Redis Cluster, where the old hash is in another slot than
-- the new one (written first): the old hash goes and its tombstone says "cycled".
--
-- KEYS[1] the old hash, KEYS[2] its tombstone; ARGV[1] the tombstone value, ARGV[2] its
-- lifetime in seconds (0: none). Returns 1, or 0 when the old session was gone already (a
-- logout raced the login) and not by an earlier attempt of this very call.
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
end
return 1
