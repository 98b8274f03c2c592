-- KEYS: run, inbox, lease, checkpoint
-- ARGV: lease token, lease_ms, timeout_ms, checkpoint json
-- Saves the checkpoint, then suspends only if nothing is waiting in the inbox, with its turn
-- timeout as `deadline`: {1, Redis time}; {0}: a message waits; {-1}: not ours.
if not owns(KEYS[1], KEYS[3], ARGV[1], ARGV[2]) then return {-1} end
redis.call('SET', KEYS[4], ARGV[4])
if redis.call('LLEN', KEYS[2]) > 0 then return {0} end
local now = now_ms()
redis.call('HSET', KEYS[1], 'status', 'suspended', 'owner', '', 'is_streaming', '0',
  'suspended_at', now, 'updated_at', now, 'deadline', now + tonumber(ARGV[3]))
redis.call('DEL', KEYS[3])
return {1, tostring(now)}
