-- KEYS: run, inbox, deadlines, lease, active, checkpoint
-- ARGV: lease token, lease_ms, timeout_ms, run_id, checkpoint json
-- Saves the checkpoint, then suspends only if nothing is waiting in the inbox.
if not owns(KEYS[1], KEYS[4], ARGV[1], ARGV[2]) then return -1 end
redis.call('SET', KEYS[6], ARGV[5])
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
local now = now_ms()
redis.call('HSET', KEYS[1], 'status', 'suspended', 'owner', '', 'is_streaming', '0',
  'suspended_at', now, 'updated_at', now)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[4])
redis.call('ZREM', KEYS[5], ARGV[4])
redis.call('DEL', KEYS[4])
return 1
