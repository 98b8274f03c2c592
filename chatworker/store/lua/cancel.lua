-- KEYS: run, inbox, processing, output, checkpoint, lease, deadlines, resuming
-- ARGV: reason, maxlen, wake channel prefix, run_id, retention_s
-- A run nobody is executing ends here at once; a live one is told to end itself.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'missing' end
if is_ended(st) then return 'ended' end
redis.call('HSET', KEYS[1], 'cancel', '1', 'cancel_reason', ARGV[1])
if st == 'suspended' or st == 'queued' or st == 'resuming'
    or redis.call('EXISTS', KEYS[6]) == 0 then
  local now = now_ms()
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'is_streaming', '0', 'owner', '',
    'ended_at', now, 'updated_at', now, 'reason', ARGV[1])
  redis.call('ZREM', KEYS[7], ARGV[4])
  redis.call('ZREM', KEYS[8], ARGV[4])
  xadd(KEYS[4], ARGV[2], cjson.encode({type='__run_end', status='canceled', reason=ARGV[1]}))
  retain(ARGV[5], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
  return 'ended-now'
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' then
  redis.call('PUBLISH', ARGV[3] .. owner, 'c ' .. ARGV[4])
end
return 'ok'
