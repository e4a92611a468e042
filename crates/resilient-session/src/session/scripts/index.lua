-- Adds a session to its owner's index (a sorted set, in a slot of its own).
--
-- KEYS[1] the index; ARGV[1] the session's deadline (unix seconds: the score), ARGV[2] its
-- handle, ARGV[3] now. Members past their deadline go first; the index itself expires with its
-- last member's deadline, so that it never outlives the sessions it lists.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], tonumber(last[2]) + 1)
return 1
