-- Claims in flight for longer than `age` (ms, by Redis's clock, the one
-- claim.lua stamped them with): the reconciler's work list. Returns the
-- generation, then seq and "user|user_seq|unit|key" pairs.
-- KEYS: meta, pend, pinfo
-- ARGV: age, limit
local t = redis.call('TIME')
local cutoff = t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(ARGV[1])
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {} end
local out = {epoch}
for _, seq in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff, 'LIMIT', 0, ARGV[2])) do
  out[#out + 1] = seq
  out[#out + 1] = redis.call('HGET', KEYS[3], seq) or ''
end
return out
