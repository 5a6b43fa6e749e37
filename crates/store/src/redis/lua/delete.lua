-- stream::delete. ARGV[8] item id.
-- Returns nil when the item is missing (no event, no seq), else
-- {seq, timestamp, epoch, body, removed text}.
local item = ARGV[8]
local old = redis.call('HGET', KEYS[1], item)
if not old then
  return nil
end
redis.call('HDEL', KEYS[1], item)
redis.call('ZREM', KEYS[2], item)
-- A value that is not JSON (written by another tool) must not break the frame: it is deleted,
-- and the frame says null.
local data = old
if not pcall(cjson.decode, old) then
  data = 'null'
end
local committed = commit('{"type":"delete","data":' .. data .. '}', 'removed')
committed[5] = old
return committed
