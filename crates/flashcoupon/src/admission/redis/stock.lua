-- A campaign's live numbers: total, remaining, issued, paused, ends.
-- KEYS: meta, free, pend
local m = redis.call('HMGET', KEYS[1], 'total', 'next', 'issued', 'paused', 'ends')
if not m[1] then return {'missing'} end
local remaining = tonumber(m[1]) - tonumber(m[2]) + redis.call('ZCARD', KEYS[2])
return {'ok', m[1], tostring(remaining), m[3], m[4], m[5]}
