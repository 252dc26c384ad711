-- Removes an instance's hold on a user in a project.
-- KEYS as in redis_presence_join.lua: [1] holds, [2] counts, [3] project state.
-- ARGV: [1] hold member, [2] count field, [3] user.
-- Returns 1 when no instance holds the user any more (its state is removed),
-- else 0. A hold already swept returns 0: the sweeper reported the departure.
local holds, counts, states = KEYS[1], KEYS[2], KEYS[3]
if redis.call('ZREM', holds, ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', counts, ARGV[2], -1) > 0 then return 0 end
redis.call('HDEL', counts, ARGV[2])
redis.call('HDEL', states, ARGV[3])
return 1
