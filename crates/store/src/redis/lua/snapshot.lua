-- A join snapshot read atomically with the group's epoch and seq; creates the sequencer state
-- (with the empty-group TTL) when the group has none, so the sync carries the epoch its later
-- events will use.
--   KEYS[1] data hash  KEYS[2] order zset  KEYS[3] meta hash  KEYS[4] history list
--   ARGV[1] fresh epoch  ARGV[2] TTL (ms) of an empty group's state
--   ARGV[3] `group` or `item`  ARGV[4] item id (for `item`)
-- Returns {epoch, seq, sync timestamp, value text or nil | {id, value, ...}}.
local epoch = ensure_meta(KEYS[3], KEYS[4], ARGV[1])
keep_alive(KEYS[1], KEYS[3], KEYS[4], ARGV[2])
local seq = tonumber(redis.call('HGET', KEYS[3], 'seq')) or 0
local last = tonumber(redis.call('HGET', KEYS[3], 'ts')) or 0
local ts = math.max(now_ms(), last)
local data
if ARGV[3] == 'item' then
  data = redis.call('HGET', KEYS[1], ARGV[4])
else
  data = items_in_order(KEYS[1], KEYS[2])
end
return {epoch, int(seq), int(ts), data}
