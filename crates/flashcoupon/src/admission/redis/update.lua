-- Change a drop's settings; refused on a missing gate (so a partial meta
-- hash never appears). The stock may drop below seqs handed out whose claims
-- failed (in `free`: they are forgotten), never below a seq a claim holds.
-- KEYS: meta, free
-- ARGV: field ('total' | 'paused' | 'ends'), value
local m = redis.call('HMGET', KEYS[1], 'total', 'next')
if not m[1] then return {'missing'} end
if ARGV[1] == 'total' then
  local want, high = tonumber(ARGV[2]), tonumber(m[2])
  if want < high then
    local held = high
    while held > want and redis.call('ZSCORE', KEYS[2], held) do held = held - 1 end
    if held > want then return {'below', tostring(held)} end
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '(' .. want, '+inf')
    redis.call('HSET', KEYS[1], 'next', want)
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {'ok', m[1]}
