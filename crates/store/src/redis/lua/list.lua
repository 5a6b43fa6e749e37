-- stream::list: the items of a group in insertion order, as {id, value, id, value, ...}.
--   KEYS[1] data hash  KEYS[2] order zset
return items_in_order(KEYS[1], KEYS[2])
