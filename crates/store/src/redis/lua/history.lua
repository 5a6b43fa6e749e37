-- The frames of a group after a given seq, read atomically with its epoch and seq (resume across
-- instances, and catch-up after a pub/sub reconnect).
--   KEYS[1] meta hash  KEYS[2] history list  ARGV[1] the last seq already seen
-- Returns nil when the group has no sequencer state, else
-- {epoch, seq, now (ms), frame bodies after ARGV[1] in order, or nil if the history no longer
-- holds all of them}.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  return nil
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq')) or 0
local missing = seq - tonumber(ARGV[1])
local frames = {}
if missing > 0 then
  if missing > redis.call('LLEN', KEYS[2]) then
    frames = false
  else
    frames = redis.call('LRANGE', KEYS[2], -missing, -1)
  end
end
return {epoch, int(seq), int(now_ms()), frames}
