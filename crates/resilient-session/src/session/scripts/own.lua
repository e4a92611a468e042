-- Marks a session as its owner's: at login, or when a listing follows a session of the owner to
-- the id it moved to (re-seeded from its cookie, which does not carry the mark).
--
-- KEYS[1] the session's hash; ARGV[1] the owner, ARGV[2] what the app recorded about the session
-- (JSON), ARGV[3] 'login', or 'adopt' (only a session no one else owns). Only a session that
-- exists: a logout racing the login must not bring it back. Returns 1 when marked, 0 when not.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[3] == 'adopt' then
  -- What the app recorded is not known here: only the owner is set back.
  local current = redis.call('HGET', KEYS[1], '\0o')
  if current and current ~= ARGV[1] then
    return 0
  end
  redis.call('HSET', KEYS[1], '\0o', ARGV[1])
  return 1
end
redis.call('HSET', KEYS[1], '\0o', ARGV[1], '\0i', ARGV[2])
return 1
