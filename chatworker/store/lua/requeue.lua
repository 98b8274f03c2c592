-- KEYS: run ; ARGV: requeue_ms, max_delay_ms
-- A run queued or resuming whose start (`start_due`) is overdue: its Celery message may be lost
-- (a worker died after taking it and before claiming the run). Returns {'send', next due} to the
-- one sweeper that should send another message now; the next check backs off (requeue_ms,
-- doubling up to max_delay_ms) so a run merely waiting behind a busy queue costs few duplicates
-- (CLAIM refuses them). {'later', due}: not overdue yet; 'gone': not waiting to start.
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'queued' and st ~= 'resuming' then return 'gone' end
local now = now_ms()
local due = tonumber(redis.call('HGET', KEYS[1], 'start_due') or '0')
if due > now then return {'later', tostring(due)} end
local n = redis.call('HINCRBY', KEYS[1], 'requeues', 1)
local delay = math.min(tonumber(ARGV[1]) * 2 ^ (n - 1), tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'start_due', now + delay)
return {'send', tostring(now + delay)}
