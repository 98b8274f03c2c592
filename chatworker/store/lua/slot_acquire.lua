-- KEYS: slots, waiting ; ARGV: run_id, limit, lease_ms
-- Takes a slot of a concurrency-limited queue for the run (1), or puts it in line (0).
local now = now_ms()
local expiry = now + tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], expiry, ARGV[1])
  return 1
end
local head = redis.call('LINDEX', KEYS[2], 0)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) and (not head or head == ARGV[1]) then
  if head == ARGV[1] then redis.call('LPOP', KEYS[2]) end
  redis.call('ZADD', KEYS[1], expiry, ARGV[1])
  return 1
end
if not redis.call('LPOS', KEYS[2], ARGV[1]) then redis.call('RPUSH', KEYS[2], ARGV[1]) end
return 0
