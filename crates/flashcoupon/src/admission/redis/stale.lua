-- Claims in flight since before `cutoff` (real time, ms): the reconciler's
-- work list. Returns the generation, then seq and "user|user_seq|coupon|key" pairs.
-- KEYS: meta, pend, pinfo
-- ARGV: cutoff, limit
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {} end
local out = {epoch}
for _, seq in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])) do
  out[#out + 1] = seq
  out[#out + 1] = redis.call('HGET', KEYS[3], seq) or ''
end
return out
