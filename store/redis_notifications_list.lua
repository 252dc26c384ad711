-- Lists a page of one user's notifications, newest first, after trimming.
-- ARGV: [1] max items, [2] max age ms, [3] before (envelope id, '' for the
--       newest), [4] limit (≥ 1).
-- Returns {-1} when before is not one of the user's notifications, else
-- {unread count, 1 if older ones exist, then for each item four values:
--  envelope id, stored time ms, nd value, 1 if read}.
notif_trim(ARGV[1], ARGV[2])
local start = 0
if ARGV[3] ~= '' then
  local rank = redis.call('HEXISTS', nd, ARGV[3]) == 1 and redis.call('ZREVRANK', nl, notif_member(ARGV[3]))
  if not rank then return {-1} end
  start = rank + 1
end
local limit = tonumber(ARGV[4])
local got = redis.call('ZREVRANGE', nl, start, start + limit, 'WITHSCORES')
local out = {redis.call('SCARD', nu), #got > 2 * limit and 1 or 0}
for i = 1, math.min(#got, 2 * limit), 2 do
  local id = notif_id(got[i])
  out[#out + 1] = id
  out[#out + 1] = got[i + 1]
  out[#out + 1] = redis.call('HGET', nd, id) or '0:'
  out[#out + 1] = 1 - redis.call('SISMEMBER', nu, id)
end
return out
