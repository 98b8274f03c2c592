-- KEYS: resuming, run ; ARGV: run_id, requeue_ms, max_delay_ms
-- A run queued or resuming whose start is overdue: its Celery message may be lost (a worker
-- died after taking it and before claiming the run). Returns 1 to the one sweeper that should
-- send another message now; the next check backs off (requeue_ms, doubling up to max_delay_ms)
-- so a run merely waiting behind a busy queue costs few duplicates (CLAIM refuses them).
local st = redis.call('HGET', KEYS[2], 'status')
if st ~= 'queued' and st ~= 'resuming' then redis.call('ZREM', KEYS[1], ARGV[1]) return 0 end
local now = now_ms()
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) > now then return 0 end
local n = redis.call('HINCRBY', KEYS[2], 'requeues', 1)
local delay = math.min(tonumber(ARGV[2]) * 2 ^ (n - 1), tonumber(ARGV[3]))
redis.call('ZADD', KEYS[1], now + delay, ARGV[1])
return 1
