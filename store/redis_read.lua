-- Reads a channel's log after a cursor, with what the caller needs to tell
-- whether the cursor can be answered, all at one instant. It never creates
-- a log.
-- KEYS[1] meta hash, KEYS[2] stream.
-- ARGV: [1] cursor epoch ('' from the oldest kept, '*' from the epoch's
--       first event: an empty position), [2] cursor seq, [3] limit,
--       [4] max age ms, [5] candidate epoch (for a new epoch, see relay_epoch),
--       [6] max events.
-- Returns {epoch ('' for a channel with no log), head seq, oldest kept seq
-- (head+1 when none is), entries, run_id ('' unless the cursor is an empty
-- position), epoch creation time ms (-1 when unknown)}; entries only when
-- the cursor is answerable.
local meta, stream = KEYS[1], KEYS[2]
local run = ''
if redis.call('EXISTS', meta) == 0 then
  if ARGV[1] == '*' then run = relay_run_id() or '' end
  return {'', 0, 0, {}, run, -1}
end
local epoch, current = relay_epoch(meta, stream, ARGV[5])
if ARGV[1] == '*' then run = current or '' end
local created = tonumber(redis.call('HGET', meta, 'c') or '-1')
local head = tonumber(redis.call('HGET', meta, 's') or '0')
local first = relay_trim_aged(stream, relay_now() - tonumber(ARGV[4])) or head + 1
-- Appends trim by count a stream node at a time (redis_publish.lua): what
-- is left beyond max events counts as trimmed.
first = math.max(first, head - tonumber(ARGV[6]) + 1)
local from
if ARGV[1] == '' then
  from = first
elseif ARGV[1] == '*' then
  from = 1
elseif ARGV[1] == epoch then
  from = tonumber(ARGV[2]) + 1
else
  return {epoch, head, first, {}, run, created}
end
local limit = tonumber(ARGV[3])
if limit <= 0 or from < first or from > head then return {epoch, head, first, {}, run, created} end
-- ARGV[3], not limit: Lua would pass a large number as '9.2e+18'
return {epoch, head, first, redis.call('XRANGE', stream, relay_id(from), '+', 'COUNT', ARGV[3]), run, created}
