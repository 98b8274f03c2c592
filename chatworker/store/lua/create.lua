-- KEYS: run, inbox, resuming, runs, chat ; ARGV: record field/value pairs..., then
-- initial item or '', run_id, requeue_ms, chat_ttl_s
-- A new run: its record, its first message, the runs index and the chat's latest run, and a
-- start deadline (so a lost Celery message is noticed and sent again).
local n = #ARGV
local now = now_ms()
redis.call('HSET', KEYS[1], 'created_at', now, 'updated_at', now, unpack(ARGV, 1, n - 4))
if ARGV[n - 3] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[n - 3]) end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[n - 1]), ARGV[n - 2])
redis.call('ZADD', KEYS[4], now, ARGV[n - 2])
redis.call('SET', KEYS[5], ARGV[n - 2], 'EX', ARGV[n])
return now
