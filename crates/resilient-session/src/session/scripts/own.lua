-- Marks a session as its owner's, at login.
--
-- KEYS[1] the session's hash; ARGV[1] the owner, ARGV[2] what the app recorded about the session
-- (JSON). Only a session that exists: a logout racing the login must not bring it back. Returns
-- 1 when marked, 0 when the session is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], '\0o', ARGV[1], '\0i', ARGV[2])
return 1
