-- Helpers shared by every iii-stream script. Each script is this file followed by its own body
-- (see scripts.rs), because Redis scripts cannot include one another.

-- Redis server time in Unix milliseconds: one clock for every instance.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An integral Lua number as decimal text (tostring would switch to exponent notation).
local function int(n)
  return string.format('%.0f', n)
end

-- The group's epoch, creating its sequencer state if Redis has none (a new numbering; history of
-- an older numbering is dropped so that it can never be replayed into this one).
local function ensure_meta(meta, hist, fresh_epoch)
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch then
    return epoch
  end
  redis.call('DEL', meta, hist)
  redis.call('HSET', meta, 'epoch', fresh_epoch, 'seq', 0, 'ts', 0)
  return fresh_epoch
end

-- A group with items keeps its sequencer state for ever; an empty one only for `ttl` ms after its
-- last event (or join), so abandoned groups do not accumulate.
local function keep_alive(data, meta, hist, ttl)
  if redis.call('EXISTS', data) == 1 then
    redis.call('PERSIST', meta)
    redis.call('PERSIST', hist)
  else
    redis.call('PEXPIRE', meta, ttl)
    redis.call('PEXPIRE', hist, ttl)
  end
end

-- The items of a group as a flat {id, value, id, value, ...} list in insertion order. Fields
-- without a rank (written by other tools) follow in hash order; ranks without a field are ignored.
local function items_in_order(data, order)
  local all = redis.call('HGETALL', data)
  local values = {}
  for i = 1, #all, 2 do
    values[all[i]] = all[i + 1]
  end
  local out = {}
  for _, id in ipairs(redis.call('ZRANGE', order, 0, -1)) do
    local v = values[id]
    if v then
      out[#out + 1] = id
      out[#out + 1] = v
      values[id] = nil
    end
  end
  for i = 1, #all, 2 do
    if values[all[i]] then
      out[#out + 1] = all[i]
      out[#out + 1] = all[i + 1]
    end
  end
  return out
end
