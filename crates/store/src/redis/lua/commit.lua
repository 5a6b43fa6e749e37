-- The commit step shared by every write script. Key and argument layout of all write scripts:
--   KEYS[1] data hash     KEYS[2] order zset    KEYS[3] meta hash
--   KEYS[4] history list  KEYS[5] streams set   KEYS[6] the stream's groups set
--   ARGV[1] channel       ARGV[2] fresh epoch (used only when the meta hash is absent)
--   ARGV[3] history.max_events                  ARGV[4] TTL (ms) of an empty group's state
--   ARGV[5] stream name   ARGV[6] group id      ARGV[7] frame head (pre-escaped names)
--   ARGV[8...] specific to the script

-- Gives an item that has no insertion rank the next one (the end of the listing).
local function rank(item)
  if redis.call('ZSCORE', KEYS[2], item) then
    return
  end
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  local next_rank = 1
  if last[2] then
    next_rank = tonumber(last[2]) + 1
  end
  redis.call('ZADD', KEYS[2], next_rank, item)
end

-- Numbers the event, stamps it, keeps it in the history, maintains the index and the TTLs, and
-- publishes it: all inside the caller's script, so that write, seq, history and publication are
-- one atomic step and frames of a group are published in seq order.
-- `items` says what the write did to the group's item set: 'created' (an item was added),
-- 'removed' (an item was deleted) or 'kept'; the index and TTLs only change with the first two
-- (and TTLs of an empty group are renewed by every event).
-- Returns {seq, timestamp, epoch, body}.
local function commit(event, items)
  local meta, hist = KEYS[3], KEYS[4]
  local epoch = ensure_meta(meta, hist, ARGV[2])
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local last = tonumber(redis.call('HGET', meta, 'ts')) or 0
  local ts = math.max(now_ms(), last + 1)
  redis.call('HSET', meta, 'ts', int(ts))
  -- Key order and spelling of iii_stream_protocol::frame::FrameBody.
  local body = '{"type":"stream","timestamp":' .. int(ts) .. ',' .. ARGV[7] .. ',"event":' .. event
    .. ',"seq":' .. int(seq) .. ',"epoch":"' .. epoch .. '"}'
  local max_events = tonumber(ARGV[3])
  if max_events > 0 then
    redis.call('RPUSH', hist, body)
    redis.call('LTRIM', hist, -max_events, -1)
  end
  if items == 'created' then
    redis.call('SADD', KEYS[6], ARGV[6])
    redis.call('SADD', KEYS[5], ARGV[5])
    keep_alive(KEYS[1], meta, hist, ARGV[4])
  elseif redis.call('EXISTS', KEYS[1]) == 0 then
    -- Emptied by this delete, or an event on a group without items.
    if items == 'removed' then
      redis.call('SREM', KEYS[6], ARGV[6])
      if redis.call('SCARD', KEYS[6]) == 0 then
        redis.call('SREM', KEYS[5], ARGV[5])
      end
    end
    keep_alive(KEYS[1], meta, hist, ARGV[4])
  end
  redis.call('PUBLISH', ARGV[1], body)
  return {seq, int(ts), epoch, body}
end
