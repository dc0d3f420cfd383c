-- Give a committed unit back to the stock (an order never paid): its seq
-- goes to `free` (handed out again, lowest first) and its user's slot is
-- freed; its key still replays it. Only the unit named, once: its seq must
-- be held by exactly it in `held`, or, if its commit has not been settled
-- here yet (the owner could not reach Redis), be in flight as it, which
-- this ends (a late settle then finds nothing in flight).
-- KEYS: meta, free, pend, pinfo, slots, keys, held
-- ARGV: seq, user, user_seq, unit
-- Returns {'returned'}, {'absent'} (nothing to do) or {'missing'} (no gate:
-- the caller rebuilds it from the record and asks again, since a rebuild
-- already under way may have read the unit before it ended).
if not redis.call('HGET', KEYS[1], 'total') then return {'missing'} end
local seq, user, user_seq, unit = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local who = user .. '|' .. user_seq .. '|' .. unit
if redis.call('HGET', KEYS[7], seq) == who then
  redis.call('HDEL', KEYS[7], seq)
  redis.call('HINCRBY', KEYS[1], 'issued', -1)
else
  local p = redis.call('HGET', KEYS[4], seq)
  if not p or string.sub(p, 1, #who + 1) ~= who .. '|' then return {'absent'} end
  redis.call('ZREM', KEYS[3], seq)
  redis.call('HDEL', KEYS[4], seq)
  local key = string.sub(p, #who + 2)
  if key ~= '' then redis.call('HSET', KEYS[6], user .. '|' .. key, 'i:' .. unit) end
end
local rest = {}
for s in string.gmatch(redis.call('HGET', KEYS[5], user) or '', '%d+') do
  if s ~= user_seq then rest[#rest + 1] = s end
end
if #rest == 0 then redis.call('HDEL', KEYS[5], user)
else redis.call('HSET', KEYS[5], user, table.concat(rest, ' ')) end
redis.call('ZADD', KEYS[2], seq, seq)
return {'returned'}
