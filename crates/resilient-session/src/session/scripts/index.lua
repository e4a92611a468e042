-- Adds a session to its owner's index (a sorted set, in a slot of its own).
--
-- KEYS[1] the index; ARGV[1] the session's deadline (unix milliseconds: the score), ARGV[2] its
-- handle, ARGV[3] now (unix milliseconds), ARGV[4] the most sessions the owner may have (0: no
-- limit), ARGV[5] the handle the session had before ('' for none): it goes first. Members past their deadline go first; beyond the limit, the oldest others go too (in
-- this one script: two logins at once cannot both pass it). The index expires with its last
-- member's deadline, so that it never outlives the sessions it lists. Returns the handles of the
-- sessions pushed out, for the caller to end.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
if ARGV[5] ~= '' then
  redis.call('ZREM', KEYS[1], ARGV[5])
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local limit = tonumber(ARGV[4])
local evicted = {}
if limit > 0 then
  local excess = redis.call('ZCARD', KEYS[1]) - limit
  if excess > 0 then
    -- The oldest first; never the one just added, whatever the order of equal scores.
    for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess)) do
      if #evicted < excess and member ~= ARGV[2] then
        evicted[#evicted + 1] = member
      end
    end
    for _, member in ipairs(evicted) do
      redis.call('ZREM', KEYS[1], member)
    end
  end
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]) + 1000)
return evicted
