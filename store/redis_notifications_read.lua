-- Marks one user's notifications read, all or nothing, after trimming.
-- ARGV: [1] max items, [2] max age ms, [3] '1' to mark every one, then the
--       ids (envelope ids or notification keys) when [3] is '0'.
-- Returns {-1, id} when an id is not one of the user's notifications (nothing
-- changed), else {unread count, {envelope ids that were unread, in the order
-- given (newest first for all), each once}}.
notif_trim(ARGV[1], ARGV[2])
local changed = {}
if ARGV[3] == '1' then
  local unread = {}
  for _, id in ipairs(redis.call('SMEMBERS', nu)) do unread[id] = true end
  if next(unread) then
    for _, m in ipairs(redis.call('ZREVRANGE', nl, 0, -1)) do
      local id = notif_id(m)
      if unread[id] then changed[#changed + 1] = id end
    end
    redis.call('DEL', nu)
  end
  return {0, changed}
end
local ids = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HEXISTS', nd, id) == 0 then
    id = redis.call('HGET', nk, id)
    if not id or redis.call('HEXISTS', nd, id) == 0 then return {-1, ARGV[i]} end
  end
  ids[#ids + 1] = id
end
for _, id in ipairs(ids) do
  if redis.call('SREM', nu, id) == 1 then changed[#changed + 1] = id end
end
return {redis.call('SCARD', nu), changed}
