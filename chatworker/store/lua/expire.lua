-- KEYS: run, inbox, processing, output, checkpoint, lease, deadlines
-- ARGV: maxlen, run_id, retention_s
-- Ends a suspended run whose turn timeout passed, unless a message arrived meanwhile.
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'suspended' then redis.call('ZREM', KEYS[7], ARGV[2]) return 0 end
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
local now = now_ms()
local due = redis.call('ZSCORE', KEYS[7], ARGV[2])
if due and tonumber(due) > now then return 0 end
redis.call('HSET', KEYS[1], 'status', 'completed', 'ended_at', now, 'updated_at', now,
  'reason', 'turn_timeout')
redis.call('ZREM', KEYS[7], ARGV[2])
xadd(KEYS[4], ARGV[1], cjson.encode({type='__run_end', status='completed', reason='turn_timeout'}))
retain(ARGV[3], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return 1
