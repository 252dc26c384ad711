-- Returns a channel's epoch and newest seq; for a channel with no log,
-- {'', 0, run_id, now ms} (an empty position's parts), writing nothing.
-- Reading keeps nothing alive either: only appends set the keys' expiry.
-- KEYS[1] meta hash, KEYS[2] stream. ARGV: [1] candidate epoch (for a log
-- last written by another server run, see relay_epoch).
local meta, stream = KEYS[1], KEYS[2]
if redis.call('EXISTS', meta) == 0 then
  return {'', 0, relay_run_id() or '', relay_now()}
end
local epoch = relay_epoch(meta, stream, ARGV[1])
return {epoch, tonumber(redis.call('HGET', meta, 's') or '0')}
