-- Returns a channel's epoch and newest seq, starting its log if new, and
-- keeps the channel for another max age.
-- KEYS[1] meta hash, KEYS[2] stream. ARGV: [1] candidate epoch, [2] max age ms.
local meta, stream = KEYS[1], KEYS[2]
local epoch = relay_epoch(meta, stream, ARGV[1])
local seq = tonumber(redis.call('HGET', meta, 's') or '0')
redis.call('PEXPIRE', meta, ARGV[2])
redis.call('PEXPIRE', stream, ARGV[2])
return {epoch, seq}
