-- Appends one event to a channel's log and publishes it, unless its
-- idempotency key says it is a repeat.
-- KEYS[1] meta hash (e = epoch, s = last seq, t = last time), KEYS[2] stream,
-- KEYS[3] (only for a draft with an idempotency key) the key's string,
-- "<prefix>{<channel>}:i:<key>", holding "<epoch> <seq> <ms>" of the first
-- append for one window.
-- ARGV: [1] candidate epoch, [2] type, [3] fields, [4] max events,
--       [5] max age ms, [6] pub/sub channel, [7] channel name,
--       [8] idempotency window ms.
-- Returns {epoch, seq, time ms, 1 for a repeat (nothing stored or published)
-- else 0}.
local meta, stream, seen = KEYS[1], KEYS[2], KEYS[3]
local epoch = relay_epoch(meta, stream, ARGV[1])
if seen then
  -- A repeat answers the first append's id, even from an epoch since ended.
  local first = redis.call('GET', seen)
  if first then
    local e, s, t = string.match(first, '^(%S+) (%d+) (%d+)$')
    if e then return {e, tonumber(s), t, 1} end
  end
end
local seq = redis.call('HINCRBY', meta, 's', 1)
local last = tonumber(redis.call('HGET', meta, 't') or '0')
local ts = string.format('%d', math.max(relay_now(), last))
redis.call('HSET', meta, 't', ts)
redis.call('XADD', stream, 'MAXLEN', ARGV[4], relay_id(seq), 'd', ARGV[3], 't', ts, 'y', ARGV[2])
relay_trim_aged(stream, tonumber(ts) - tonumber(ARGV[5]))
redis.call('PEXPIRE', meta, ARGV[5])
redis.call('PEXPIRE', stream, ARGV[5])
if seen then
  redis.call('SET', seen, table.concat({epoch, string.format('%d', seq), ts}, ' '), 'PX', ARGV[8])
end
-- Message: "r1\n<channel>\n<epoch>\n<seq>\n<ms>\n<len(type)>\n<type><fields>".
redis.call('PUBLISH', ARGV[6], table.concat({'r1', ARGV[7], epoch, string.format('%d', seq), ts,
  string.format('%d', #ARGV[2]), ARGV[2] .. ARGV[3]}, '\n'))
return {epoch, seq, ts, 0}
