-- KEYS: slots, waiting ; ARGV: run_id, limit
-- Frees the run's slot; returns the run that should be started next, if a slot is free for it.
local now = now_ms()
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local head = redis.call('LINDEX', KEYS[2], 0)
if head and redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then return head end
return false
