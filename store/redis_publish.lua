-- Appends events to one channel's log and publishes them, in the order
-- given, skipping those whose idempotency key says they are repeats. One
-- call serves every event of the channel in a pipeline (redis_batch.go):
-- the epoch check (INFO server), the clock, the trim, the expiries and the
-- Pub/Sub message run once per call, not once per event.
-- KEYS[1] meta hash (e = epoch, s = last seq, t = last time, o = a time no
-- later than the oldest entry's), KEYS[2] stream, then one key per event
-- that has an idempotency key, in order: its string
-- "<prefix>{<channel>}:i:<key>", holding "<epoch> <seq> <ms>" of the first
-- append for one window.
-- ARGV: [1] candidate epoch, [2] max events, [3] max age ms, [4] PUBLISH, or
--       SPUBLISH on Cluster, [5] channel name, [6] idempotency window ms, then three per
--       event: type, fields, "1" when it has an idempotency key else "0".
-- Returns the epoch, the first seq and the time ms of the events stored
-- ('', 0, '0' when none is), then one value per event: 0 when it was stored
-- (the stored ones have consecutive seqs from the first), or, for a repeat
-- (nothing stored or published), the first append's "<epoch> <seq> <ms>".
-- Three values and a small integer per stored event, not four values each:
-- the reply is made and read once per call.
local meta, stream = KEYS[1], KEYS[2]
-- One read of the meta hash serves the epoch check and the appends.
local m = redis.call('HMGET', meta, 'e', 'r', 's', 't', 'o')
local epoch, _, fresh = relay_epoch_of(meta, stream, ARGV[1], m[1], m[2])
if fresh then m[3] = nil end -- a new epoch starts at seq 0
local out, key = {'', 0, '0'}, 2
local seq, ts -- set by the first event stored
local msg -- the parts of the one message of every event stored
for i = 7, #ARGV, 3 do
  local typ, fields, seen = ARGV[i], ARGV[i + 1], nil
  if ARGV[i + 2] == '1' then
    key = key + 1
    seen = KEYS[key]
  end
  -- A repeat answers the first append's id, even from an epoch since ended.
  local first
  if seen then
    first = redis.call('GET', seen)
    if first and not string.match(first, '^%S+ %d+ %d+$') then first = nil end
  end
  if first then
    out[#out + 1] = first
  else
    if not ts then
      seq = tonumber(m[3] or '0')
      ts = string.format('%d', math.max(relay_now(), tonumber(m[4] or '0')))
      -- Message: "r2\n<channel>\n<epoch>\n<first seq>\n<ms>\n", then for
      -- each event stored (seqs consecutive from the first)
      -- "<len(type)> <len(fields)>\n<type><fields>" (redis_watch.go).
      msg = {'r2\n', ARGV[5], '\n', epoch, '\n', string.format('%d', seq + 1), '\n', ts, '\n'}
      out[1], out[2], out[3] = epoch, seq + 1, ts
    end
    seq = seq + 1
    local id = string.format('%d', seq)
    -- MAXLEN ~ drops whole stream nodes: trimming one entry at a time
    -- walks the first node on every append. Up to a node more than max
    -- events stays; reads count those as trimmed (redis_read.lua).
    redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], id .. '-0', 'd', fields, 't', ts, 'y', typ)
    if seen then
      redis.call('SET', seen, epoch .. ' ' .. id .. ' ' .. ts, 'PX', ARGV[6])
    end
    local n = #msg
    msg[n + 1], msg[n + 2], msg[n + 3], msg[n + 4], msg[n + 5], msg[n + 6] = #typ, ' ', #fields, '\n', typ, fields
    out[#out + 1] = 0
  end
end
if ts then
  -- On the channel's Pub/Sub channel "<prefix>{<channel>}:p", in its slot.
  redis.call(ARGV[4], string.sub(meta, 1, -2) .. 'p', table.concat(msg))
  -- Trim by age only when the oldest entry may have aged: o is a lower
  -- bound of its time (entries only leave from the front, and come with
  -- times never below t), so while o is within max age nothing has.
  local cutoff = tonumber(ts) - tonumber(ARGV[3])
  if not m[5] or tonumber(m[5]) < cutoff then
    local _, oldest = relay_trim_aged(stream, cutoff)
    redis.call('HSET', meta, 's', string.format('%d', seq), 't', ts, 'o', string.format('%d', oldest or tonumber(ts)))
  else
    redis.call('HSET', meta, 's', string.format('%d', seq), 't', ts)
  end
  redis.call('PEXPIRE', meta, ARGV[3])
  redis.call('PEXPIRE', stream, ARGV[3])
end
return out
