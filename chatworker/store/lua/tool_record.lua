-- KEYS: run, lease, tool outputs ; ARGV: token, lease_ms, approval id, result json, ttl_s
-- Record an executed tool call's result, first write wins, only while the writer owns the run:
-- returns the result kept (an earlier one when the call was recorded already).
fence(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
redis.call('HSETNX', KEYS[3], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return redis.call('HGET', KEYS[3], ARGV[3])
