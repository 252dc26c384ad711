-- Functions shared by the notification scripts; prepended to each of them,
-- after redis_lib.lua. Every script gets one user's four keys, in one hash slot:
-- KEYS[1] nl: sorted set, members "<seq, 20 digits>:<envelope id>", scores the
--             stored time in unix ms; equal times fall back to the member, so
--             the set is in publish order.
-- KEYS[2] nd: hash, envelope id -> "<len(key)>:<key><envelope JSON>".
-- KEYS[3] nk: hash, notification key -> envelope id (the last recorded).
-- KEYS[4] nu: set of the unread envelope ids.
local nl, nd, nk, nu = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- notif_member returns the sorted-set member of an envelope id ("<epoch>-<seq>").
local function notif_member(id)
  local seq = string.match(id, '%-(%d+)$') or ''
  return string.rep('0', 20 - #seq) .. seq .. ':' .. id
end

-- notif_id returns the envelope id of a sorted-set member.
local function notif_id(member)
  return string.sub(member, 22)
end

-- notif_key returns the notification key stored in a value of nd.
local function notif_key(value)
  local n = string.match(value, '^(%d+):')
  return string.sub(value, #n + 2, #n + 1 + tonumber(n))
end

-- notif_forget removes what the hashes and the unread set hold of the
-- notifications of members (the caller removes them from nl).
local function notif_forget(members)
  for _, m in ipairs(members) do
    local id = notif_id(m)
    local value = redis.call('HGET', nd, id)
    if value then
      local key = notif_key(value)
      if key ~= '' and redis.call('HGET', nk, key) == id then
        redis.call('HDEL', nk, key)
      end
      redis.call('HDEL', nd, id)
    end
    redis.call('SREM', nu, id)
  end
end

-- notif_trim drops the notifications stored before now - max_age ms, then the
-- oldest beyond max_items.
local function notif_trim(max_items, max_age)
  local cutoff = '(' .. string.format('%d', relay_now() - tonumber(max_age))
  local aged = redis.call('ZRANGEBYSCORE', nl, '-inf', cutoff)
  if #aged > 0 then
    notif_forget(aged)
    redis.call('ZREMRANGEBYSCORE', nl, '-inf', cutoff)
  end
  local extra = redis.call('ZCARD', nl) - tonumber(max_items)
  if extra > 0 then
    notif_forget(redis.call('ZRANGE', nl, 0, extra - 1))
    redis.call('ZREMRANGEBYRANK', nl, 0, extra - 1)
  end
end
