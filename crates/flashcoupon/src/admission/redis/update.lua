-- Change a campaign's settings; refused on a missing gate (so a partial meta
-- hash never appears) and, for the stock, below the highest seq handed out.
-- KEYS: meta
-- ARGV: field ('total' | 'paused' | 'ends'), value
local m = redis.call('HMGET', KEYS[1], 'total', 'next')
if not m[1] then return {'missing'} end
if ARGV[1] == 'total' and tonumber(ARGV[2]) < tonumber(m[2]) then return {'below', m[2]} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {'ok', m[1]}
