-- stream::set. ARGV[8] item id, ARGV[9] the new value's JSON text.
-- Returns {seq, timestamp, epoch, body, previous text or nil}.
local item, value = ARGV[8], ARGV[9]
local old = redis.call('HGET', KEYS[1], item)
redis.call('HSET', KEYS[1], item, value)
local kind, items = 'update', 'kept'
if not old then
  kind, items = 'create', 'created'
  rank(item)
end
local committed = commit('{"type":"' .. kind .. '","data":' .. value .. '}', items)
committed[5] = old
return committed
