-- Removes expired holds of the given projects and reports the users no
-- instance holds any more, removing their state.
-- KEYS[1] holds zset, KEYS[2] counts hash, KEYS[2 + i] the state hash of
-- project ARGV[2 + i].
-- ARGV: [1] now ms (holds that expire before it go), [2] batch size, [3…]
-- projects. Expired holds of other projects are left for the next call: the
-- caller names every key a call touches, read from the holds just before.
-- Returns {project, user, name, …}, one triple for each departure.
local holds, counts = KEYS[1], KEYS[2]
local states = {}
for i = 3, #KEYS do states[ARGV[i]] = KEYS[i] end
local out = {}
local expired = redis.call('ZRANGEBYSCORE', holds, '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(expired) do
  local project, user = string.match(member, '^([^\31]*)\31([^\31]*)\31')
  local stateKey = project and states[project]
  if stateKey then
    redis.call('ZREM', holds, member)
    local field = project .. '\31' .. user
    if redis.call('HINCRBY', counts, field, -1) <= 0 then
      redis.call('HDEL', counts, field)
      local name = ''
      local raw = redis.call('HGET', stateKey, user)
      if raw then name = cjson.decode(raw).name or '' end
      redis.call('HDEL', stateKey, user)
      out[#out + 1] = project
      out[#out + 1] = user
      out[#out + 1] = name
    end
  end
end
return out
