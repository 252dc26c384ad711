-- Functions shared by relay's scripts; prepended to each of them.
-- A channel's stream holds entries "<seq>-0" with fields d (the event's fields),
-- t (its time, unix ms, never decreasing along the stream) and y (its type).

-- relay_now is Redis's clock in unix ms, so every relay process agrees.
local function relay_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function relay_id(seq)
  return string.format('%d-0', seq)
end

local function relay_seq(id)
  return tonumber(string.match(id, '^(%d+)'))
end

local function relay_ts(entry)
  local f = entry[2]
  for i = 1, #f, 2 do
    if f[i] == 't' then return tonumber(f[i + 1]) end
  end
  return 0
end

-- relay_trim_aged removes the entries older than cutoff (unix ms) from the
-- front of stream and returns the sequence number and time of the oldest
-- entry kept (nil when none is). Entries have consecutive ids and times that
-- never decrease, so a binary search finds the first one to keep: O(log n)
-- commands, and one XRANGE when nothing has aged. An idle channel's keys
-- expire instead.
local function relay_trim_aged(stream, cutoff)
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #oldest == 0 then return nil end
  local lo, lots = relay_seq(oldest[1][1]), relay_ts(oldest[1])
  if lots >= cutoff then return lo, lots end
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  local hits = relay_ts(newest[1])
  if hits < cutoff then
    redis.call('XTRIM', stream, 'MAXLEN', 0)
    return nil
  end
  local hi = relay_seq(newest[1][1])
  -- entry lo has aged, entry hi has not
  while hi - lo > 1 do
    local mid = math.floor((lo + hi) / 2)
    local e = redis.call('XRANGE', stream, relay_id(mid), relay_id(mid))
    if #e == 0 or relay_ts(e[1]) < cutoff then lo = mid else hi, hits = mid, relay_ts(e[1]) end
  end
  redis.call('XTRIM', stream, 'MINID', relay_id(hi))
  return hi, hits
end

-- relay_run_id is the run_id of the Redis server running the script: a new
-- one after every restart, and another on the replica promoted by a failover.
local function relay_run_id()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end

-- relay_epoch_of returns the channel's epoch, given the meta hash's e and r,
-- starting a new one with candidate (seq 0, its stale stream dropped, its
-- creation time c recorded) when the channel is new, was forgotten, or was
-- last written by another Redis server run: a restart from a snapshot or a
-- promoted replica may have lost its newest writes, so its seq may be behind
-- ids already handed out. A meta hash without a run_id (an older relay's)
-- adopts the current one and keeps its epoch. Its second result is the current run_id, its third true when
-- the epoch is new.
local function relay_epoch_of(meta, stream, candidate, epoch, run)
  local current = relay_run_id()
  if epoch and run == current then return epoch, current end
  if epoch and not run then
    redis.call('HSET', meta, 'r', current)
    return epoch, current
  end
  redis.call('DEL', stream)
  -- t stays: event times never go back, even across epochs
  redis.call('HSET', meta, 'e', candidate, 's', 0, 'r', current, 'c', string.format('%d', relay_now()))
  return candidate, current, true
end

-- relay_epoch is relay_epoch_of reading e and r itself.
local function relay_epoch(meta, stream, candidate)
  local m = redis.call('HMGET', meta, 'e', 'r')
  return relay_epoch_of(meta, stream, candidate, m[1], m[2])
end
