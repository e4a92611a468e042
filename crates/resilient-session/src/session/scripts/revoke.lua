-- A logout: the hash goes and a "revoked" tombstone stays.
--
-- KEYS[1] the session's hash, KEYS[2] its tombstone; ARGV[1] the tombstone's lifetime in seconds
-- (0: none). When the tombstone it replaces named a successor ("moved:<digest>:…", or a
-- "revoked:<digest>" left by an earlier attempt of this logout whose answer was lost), the new
-- one names it too ("revoked:<digest>"), so that every attempt learns the successor to revoke
-- in turn. Returns the tombstone that was there, and the session's owner (for its index), if it
-- had one.
-- A key that is not a hash (corrupt data) has no owner: it goes all the same.
local owner = redis.pcall('HGET', KEYS[1], '\0o')
if type(owner) == 'table' then
  owner = false
end
redis.call('DEL', KEYS[1])
local previous = redis.call('GET', KEYS[2])
local secs = tonumber(ARGV[1])
if secs > 0 then
  local value = 'revoked'
  if previous then
    local successor = string.match(previous, '^moved:([^:]+)')
      or string.match(previous, '^revoked:(.+)$')
    if successor then
      value = 'revoked:' .. successor
    end
  end
  redis.call('SET', KEYS[2], value, 'EX', secs)
end
return {previous, owner}
