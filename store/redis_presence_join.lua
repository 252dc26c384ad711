-- Records that an instance holds a user in a project, and sets the user's name
-- (and the ticket they view, when given).
-- KEYS[1] holds zset (member "<project>\31<user>\31<instance>", score expires
-- ms), KEYS[2] counts hash ("<project>\31<user>" -> holds), KEYS[3] the
-- project's state hash (user -> JSON).
-- ARGV: [1] hold member, [2] expires ms, [3] count field, [4] user, [5] name,
-- [6] viewing ticket as a string ('' leaves the viewing as it is).
-- Returns 1 when no instance held the user in the project before, else 0.
local holds, counts, states = KEYS[1], KEYS[2], KEYS[3]
local added = redis.call('ZADD', holds, ARGV[2], ARGV[1])
local count = 0
if added == 1 then
  count = redis.call('HINCRBY', counts, ARGV[3], 1)
end
local raw = redis.call('HGET', states, ARGV[4])
local state = {}
if raw then state = cjson.decode(raw) end
state.name = ARGV[5]
if ARGV[6] ~= '' then state.viewing = ARGV[6] end
redis.call('HSET', states, ARGV[4], cjson.encode(state))
if count == 1 then return 1 end
return 0
