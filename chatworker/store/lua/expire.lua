-- KEYS: run, inbox, processing, output, checkpoint, lease ; ARGV: maxlen, retention_s
-- Ends a suspended run whose turn timeout (`deadline`, set by suspend) passed, unless a message
-- arrived meanwhile. Returns 1 (ended), {'later', deadline} (not due yet), 'gone' (not
-- suspended: the deadlines hint is stale) or 0 (a message waits).
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'suspended' then return 'gone' end
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
local now = now_ms()
local due = tonumber(redis.call('HGET', KEYS[1], 'deadline') or '0')
if due > now then return {'later', tostring(due)} end
redis.call('HSET', KEYS[1], 'status', 'completed', 'ended_at', now, 'updated_at', now,
  'reason', 'turn_timeout')
xadd(KEYS[4], ARGV[1], cjson.encode({type='__run_end', status='completed', reason='turn_timeout'}))
retain(ARGV[2], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return 1
