-- Reads a channel's log after a cursor, with what the caller needs to tell
-- whether the cursor can be answered, all at one instant.
-- KEYS[1] meta hash, KEYS[2] stream.
-- ARGV: [1] cursor epoch ('' from the oldest kept), [2] cursor seq, [3] limit,
--       [4] max age ms, [5] candidate epoch (for a new epoch, see relay_epoch).
-- Returns {epoch ('' for an unknown channel), head seq, oldest kept seq
-- (head+1 when none is), entries}; entries only when the cursor is answerable.
local meta, stream = KEYS[1], KEYS[2]
if redis.call('EXISTS', meta) == 0 then return {'', 0, 0, {}} end
local epoch = relay_epoch(meta, stream, ARGV[5])
local head = tonumber(redis.call('HGET', meta, 's') or '0')
local first = relay_trim_aged(stream, relay_now() - tonumber(ARGV[4])) or head + 1
local from
if ARGV[1] == '' then
  from = first
elseif ARGV[1] == epoch then
  from = tonumber(ARGV[2]) + 1
else
  return {epoch, head, first, {}}
end
local limit = tonumber(ARGV[3])
if limit <= 0 or from < first or from > head then return {epoch, head, first, {}} end
-- ARGV[3], not limit: Lua would pass a large number as '9.2e+18'
return {epoch, head, first, redis.call('XRANGE', stream, relay_id(from), '+', 'COUNT', ARGV[3])}
