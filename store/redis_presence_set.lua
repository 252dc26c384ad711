-- Sets members of a held user's state; a user not held is left alone.
-- KEYS[1] the project's state hash (user -> JSON).
-- ARGV: [1] user, then pairs [name, value]; an empty value removes the member.
-- Values are strings, so cjson never rounds a ticket id.
-- Returns 1 when the user was held, else 0.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local state = cjson.decode(raw)
for i = 2, #ARGV - 1, 2 do
  if ARGV[i + 1] == '' then state[ARGV[i]] = nil else state[ARGV[i]] = ARGV[i + 1] end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(state))
return 1
