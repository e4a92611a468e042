-- One save of a session, atomically. See backend.rs for when each part is used.
--
-- KEYS[1]  the session's hash
-- KEYS[2]  the session's own tombstone (a create is refused if it exists: a retried save of a
--          session that ended since its first attempt)
-- KEYS[3]  the predecessor's hash (cycle: copied, then deleted; claim), or the imported app's
--          key (retire)
-- KEYS[4]  the predecessor's tombstone (cycle, claim)
-- ARGV[1]  TTL in seconds
-- ARGV[2]  'update': only if the hash still exists; 'create': a new hash
-- ARGV[3]  the stamp a cookie's view was merged against ('' when there is none): its fields
--          (the guarded ones) are written only if the hash (a login's: the old one) still is
--          at that stamp
-- ARGV[4]  a floor: the new stamp is above the current one and above this
-- ARGV[5]  the exact stamp to set instead ('' to count one more write)
-- ARGV[6]  '', 'cycle' (a login: the predecessor is copied, then goes), 'clean-cycle' (a login
--          that cleared the session: the predecessor goes, nothing of it is copied), 'claim' (a
--          move: the predecessor's id is claimed with a tombstone, once) or 'retire' (an import:
--          the old key goes)
-- ARGV[7]  the predecessor's tombstone value (cycle, claim)
-- ARGV[8]  the tombstone's lifetime in seconds (0: none)
-- ARGV[9..12]  counts: fields to delete, field/value pairs to set, guarded fields to delete,
--          guarded pairs to set
-- ARGV[13] what one write adds to a stamp
-- ARGV[14] the merged view's own stamp
-- ARGV[15] the stamp the request loaded ('' for a create): a save that finds another one (on
--          the hash, or a login's old one) has missed writes, and answers the mirrored fields
--          as they are now
-- ARGV[16] how many mirrored field names follow the fields
-- ARGV[17] when the session was created, unix seconds (a create keeps it)
-- then the guarded fields, the other fields, and the mirrored field names, in that order.
--
-- Returns {'ok', stamp}; {'moved-on', stamp, mirrored values...} (written, over writes this
-- request had not seen); {'gone', ''} (the session ended meanwhile: nothing written); or
-- {'taken', tombstone} (a claim found another's tombstone: nothing written).
local hash = KEYS[1]
local kind = ARGV[6]
local cycle = kind == 'cycle' or kind == 'clean-cycle'
local tombstone = ARGV[7]
local tombstone_secs = tonumber(ARGV[8])

-- HDEL / HSET / HMGET with at most 1000 arguments at a time: Lua's stack is limited.
local function chunked(command, first, count)
  local last = first + count - 1
  local answers = {}
  while first <= last do
    local upto = math.min(first + 999, last)
    local answer = redis.call(command, hash, unpack(ARGV, first, upto))
    if type(answer) == 'table' then
      for _, value in ipairs(answer) do answers[#answers + 1] = value end
    end
    first = upto + 1
  end
  return answers
end

if ARGV[2] == 'create' and redis.call('EXISTS', KEYS[2]) == 1 then
  return {'gone', ''}
end
if kind == 'claim' then
  local previous = redis.call('GET', KEYS[4])
  if previous and previous ~= tombstone then
    return {'taken', previous}
  end
  redis.call('SET', KEYS[4], tombstone, 'EX', tombstone_secs)
elseif cycle then
  -- The predecessor gone, and not by an earlier attempt of this very save: a logout raced.
  if redis.call('EXISTS', KEYS[3]) == 0 and redis.call('GET', KEYS[4]) ~= tombstone then
    return {'gone', ''}
  end
end
-- EXISTS, not an EXPIRE that would also say so: under maxmemory, Redis checks a script for
-- memory at its first write, and an EXPIRE (which needs none) first would let every later write
-- past a full Redis.
if ARGV[2] == 'update' and redis.call('EXISTS', hash) == 0 then
  return {'gone', ''}
end
-- Where the state the request loaded is now: the hash's stamp, or a login's old hash's (read
-- once, and only when asked: an update learns it from its HINCRBY).
local loaded_from = hash
if cycle then loaded_from = KEYS[3] end
local before
local function stamp_now()
  before = before or tonumber(redis.call('HGET', loaded_from, '\0v') or '0')
  return before
end
local missed = cycle and ARGV[15] ~= '' and stamp_now() ~= tonumber(ARGV[15])
if kind == 'cycle' then
  -- A login copies the old session as it is now (a write that landed after the login's load
  -- included); the login's own changes follow.
  local old = redis.call('HGETALL', KEYS[3])
  local batch = {}
  for i = 1, #old, 2 do
    if string.byte(old[i], 1) ~= 0 then
      batch[#batch + 1] = old[i]
      batch[#batch + 1] = old[i + 1]
      if #batch >= 1000 then
        redis.call('HSET', hash, unpack(batch))
        batch = {}
      end
    end
  end
  if #batch > 0 then
    redis.call('HSET', hash, unpack(batch))
  end
end

local deletes, sets = tonumber(ARGV[9]), tonumber(ARGV[10])
local guarded_deletes, guarded_sets = tonumber(ARGV[11]), tonumber(ARGV[12])
local guarded_at = 18
local at = guarded_at + guarded_deletes + 2 * guarded_sets
local names_at = at + deletes + 2 * sets

-- One more write on the stamp: above the current one, and above the floor.
local function count_write()
  local write = tonumber(ARGV[13])
  local stamp = redis.call('HINCRBY', hash, '\0v', write)
  if not cycle and ARGV[15] ~= '' and stamp - write ~= tonumber(ARGV[15]) then
    missed = true
  end
  local floor = tonumber(ARGV[4])
  if stamp <= floor then
    stamp = floor + write
    redis.call('HSET', hash, '\0v', string.format('%d', stamp))
  end
  return string.format('%d', stamp)
end

local stamp
if ARGV[5] ~= '' then
  stamp = ARGV[5]
  redis.call('HSET', hash, '\0v', stamp)
elseif ARGV[3] ~= '' then
  -- A cookie's view merged over the hash as it was at ARGV[3]: only if it still is. A save of
  -- nothing but that view leaves the hash at the view's own stamp (ARGV[14]), so that a newer
  -- copy of the same cookie (more writes taken in while Redis was down) still wins over it; a
  -- login starts a history of its own.
  if stamp_now() == tonumber(ARGV[3]) then
    if guarded_deletes > 0 then chunked('HDEL', guarded_at, guarded_deletes) end
    if guarded_sets > 0 then chunked('HSET', guarded_at + guarded_deletes, 2 * guarded_sets) end
    if deletes == 0 and sets == 0 and not cycle then
      stamp = ARGV[14]
      redis.call('HSET', hash, '\0v', stamp)
    end
  else
    missed = true
  end
  stamp = stamp or count_write()
else
  stamp = count_write()
end

if deletes > 0 then chunked('HDEL', at, deletes) end
if sets > 0 then chunked('HSET', at + deletes, 2 * sets) end
if ARGV[2] == 'create' then
  redis.call('HSET', hash, '\0c', ARGV[17])
end
redis.call('EXPIRE', hash, ARGV[1])

if cycle then
  redis.call('DEL', KEYS[3])
  if tombstone_secs > 0 then
    redis.call('SET', KEYS[4], tombstone, 'EX', tombstone_secs)
  end
elseif kind == 'retire' then
  redis.call('DEL', KEYS[3])
end

local names = tonumber(ARGV[16])
if missed then
  local answer = {'moved-on', stamp}
  if names > 0 then
    for _, value in ipairs(chunked('HMGET', names_at, names)) do
      answer[#answer + 1] = value
    end
  end
  return answer
end
return {'ok', stamp}
