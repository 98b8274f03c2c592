-- KEYS: run, inbox, processing, output, checkpoint, lease
-- ARGV: reason, maxlen, run_id, retention_s
-- A run nobody is executing ends here at once; a live one is told to end itself (the caller
-- publishes the returned notice to the owner: {'ok', owner, notice}).
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if is_ended(st) then return {'ended'} end
redis.call('HSET', KEYS[1], 'cancel', '1', 'cancel_reason', ARGV[1])
if st == 'suspended' or st == 'queued' or st == 'resuming'
    or redis.call('EXISTS', KEYS[6]) == 0 then
  local now = now_ms()
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'is_streaming', '0', 'owner', '',
    'ended_at', now, 'updated_at', now, 'reason', ARGV[1])
  xadd(KEYS[4], ARGV[2], cjson.encode({type='__run_end', status='canceled', reason=ARGV[1]}))
  retain(ARGV[4], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
  return {'ended-now'}
end
return {'ok', redis.call('HGET', KEYS[1], 'owner') or '', 'c ' .. ARGV[3]}
