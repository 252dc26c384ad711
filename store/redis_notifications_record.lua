-- Records a batch of one user's events as unread notifications, then trims
-- and makes every key expire max age ms later. An id already kept is skipped.
-- ARGV: [1] max items, [2] max age ms, then for each event four values:
--       envelope id, stored time (unix ms), notification key ('' for none),
--       value for nd.
-- Returns the unread count.
for i = 3, #ARGV, 4 do
  local id = ARGV[i]
  if redis.call('HSETNX', nd, id, ARGV[i + 3]) == 1 then
    redis.call('ZADD', nl, ARGV[i + 1], notif_member(id))
    if ARGV[i + 2] ~= '' then redis.call('HSET', nk, ARGV[i + 2], id) end
    redis.call('SADD', nu, id)
  end
end
notif_trim(ARGV[1], ARGV[2])
for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, ARGV[2]) end
return redis.call('SCARD', nu)
