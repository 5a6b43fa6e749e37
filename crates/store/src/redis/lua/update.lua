-- stream::update, compare-and-set: writes only if the field still holds the text the update was
-- computed from. ARGV[8] item id, ARGV[9] the new value's JSON text, ARGV[10] `absent` or
-- `equals`, ARGV[11] the expected text (for `equals`).
-- Returns nil on conflict, else {seq, timestamp, epoch, body, previous text or nil}.
local item, value = ARGV[8], ARGV[9]
local old = redis.call('HGET', KEYS[1], item)
if ARGV[10] == 'absent' then
  if old then
    return nil
  end
elseif old ~= ARGV[11] then
  return nil
end
redis.call('HSET', KEYS[1], item, value)
local kind, items = 'update', 'kept'
if not old then
  kind, items = 'create', 'created'
  rank(item)
end
local committed = commit('{"type":"' .. kind .. '","data":' .. value .. '}', items)
committed[5] = old
return committed
