-- One claim, atomically: window, pause, Idempotency-Key, the user's limit,
-- stock; then take a seq (a released one first, else the next) and a user
-- slot, and record the claim as in flight.
-- KEYS: meta, free, pend, pinfo, slots, keys (one hash tag: one campaign)
-- ARGV: user, key ('' for none), offset (ms added to Redis's clock for the
--       window: 0 but in tests that move the clock), unit (the id it will have)
-- One clock for every instance: the window and the in-flight ageing read
-- Redis's TIME, so an instance whose clock is off neither opens a drop early
-- nor ages another instance's claims before their time.
local t = redis.call('TIME')
local wall = t[1] * 1000 + math.floor(t[2] / 1000)
local m = redis.call('HMGET', KEYS[1], 'total', 'limit', 'starts', 'ends', 'paused', 'epoch', 'next')
if not m[1] then return {'missing'} end
local user, key, now = ARGV[1], ARGV[2], wall + tonumber(ARGV[3])
local kf = user .. '|' .. key
if key ~= '' then
  local k = redis.call('HGET', KEYS[6], kf)
  if k then
    if string.sub(k, 1, 2) == 'i:' then return {'replay', string.sub(k, 3)} end
    return {'in_flight'}
  end
end
if now < tonumber(m[3]) then return {'not_open'} end
if now >= tonumber(m[4]) then return {'ended'} end
if m[5] == '1' then return {'paused'} end
local held = redis.call('HGET', KEYS[5], user)
local taken, n = {}, 0
if held then
  for s in string.gmatch(held, '%d+') do taken[tonumber(s)] = true; n = n + 1 end
end
if n >= tonumber(m[2]) then return {'limit_reached'} end
local seq
local low = redis.call('ZPOPMIN', KEYS[2])
if low[1] then
  seq = tonumber(low[1])
else
  local high = tonumber(m[7])
  if high >= tonumber(m[1]) then return {'sold_out'} end
  seq = high + 1
  redis.call('HSET', KEYS[1], 'next', seq)
end
local user_seq = 1
while taken[user_seq] do user_seq = user_seq + 1 end
if held then held = held .. ' ' .. user_seq else held = tostring(user_seq) end
redis.call('HSET', KEYS[5], user, held)
redis.call('ZADD', KEYS[3], wall, seq)
redis.call('HSET', KEYS[4], seq, user .. '|' .. user_seq .. '|' .. ARGV[4] .. '|' .. key)
if key ~= '' then redis.call('HSET', KEYS[6], kf, 'p:' .. seq) end
return {'admitted', tostring(seq), tostring(user_seq), m[6]}
