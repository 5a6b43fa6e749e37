-- Renews the TTL of an empty group's sequencer state while this instance has subscribers on it,
-- so its epoch does not change under them. Does nothing for groups with items (no TTL) or whose
-- state is already gone (the next event or join starts a new epoch).
--   KEYS[1] data hash  KEYS[2] meta hash  KEYS[3] history list  ARGV[1] TTL (ms)
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[1])
end
return 1
