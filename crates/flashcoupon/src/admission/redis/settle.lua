-- End in-flight claims of one gate generation. Each is settled once: only
-- while it is still in `pend` (the owner and the reconciler may both try),
-- and only if the claim in flight at that seq is this one (same user, slot,
-- unit and key): a late settle of a claim the reconciler wrote off must not
-- end the live claim that took its seq since.
-- KEYS: meta, free, pend, pinfo, slots, keys, held
-- ARGV: epoch, then per claim: seq, user, user_seq, unit, key ('' none), outcome
--   outcome 'c:<coupon id>' committed; 'f' failed (stock back);
--   'x' the record holds this seq for another claim, or refused it: the
--       claim ends, its slot and key are freed, the seq is not reused (the
--       caller rebuilds the gate from the record when the record refused)
local m = redis.call('HMGET', KEYS[1], 'epoch', 'returns')
if m[1] ~= ARGV[1] then return -1 end
-- A kind whose units can come back remembers who holds each committed seq.
local returns = m[2] == '1'
local done = 0
for i = 2, #ARGV, 6 do
  local seq, user, user_seq, unit, key, out =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local claim = user .. '|' .. user_seq .. '|' .. unit .. '|' .. key
  if redis.call('HGET', KEYS[4], seq) == claim and redis.call('ZREM', KEYS[3], seq) == 1 then
    redis.call('HDEL', KEYS[4], seq)
    done = done + 1
    if string.sub(out, 1, 2) == 'c:' then
      redis.call('HINCRBY', KEYS[1], 'issued', 1)
      if returns then redis.call('HSET', KEYS[7], seq, user .. '|' .. user_seq .. '|' .. string.sub(out, 3)) end
      if key ~= '' then redis.call('HSET', KEYS[6], user .. '|' .. key, 'i:' .. string.sub(out, 3)) end
    else
      if key ~= '' then redis.call('HDEL', KEYS[6], user .. '|' .. key) end
      local rest = {}
      for s in string.gmatch(redis.call('HGET', KEYS[5], user) or '', '%d+') do
        if s ~= user_seq then rest[#rest + 1] = s end
      end
      if #rest == 0 then redis.call('HDEL', KEYS[5], user)
      else redis.call('HSET', KEYS[5], user, table.concat(rest, ' ')) end
      if out == 'f' then redis.call('ZADD', KEYS[2], seq, seq)
      else redis.call('HINCRBY', KEYS[1], 'issued', 1) end
    end
  end
end
return done
