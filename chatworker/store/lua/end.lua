-- KEYS: run, inbox, processing, output, checkpoint, lease
-- ARGV: status, reason, maxlen, token, retention_s
-- A worker that lost the run (its lease is another's, or recovery handed the run on) must not
-- end it: only the lease holder, or the owner whose lease merely lapsed, may.
local st = redis.call('HGET', KEYS[1], 'status')
if not st or is_ended(st) then return false end
local holder = redis.call('GET', KEYS[6])
if holder ~= ARGV[4] then
  local me = string.match(ARGV[4], '^(.*):[^:]*$')
  if holder or st == 'resuming' or st == 'suspended'
      or redis.call('HGET', KEYS[1], 'owner') ~= me then
    return false
  end
end
local now = now_ms()
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'reason', ARGV[2], 'is_streaming', '0',
  'owner', '', 'ended_at', now, 'updated_at', now)
redis.call('DEL', KEYS[6])
local id = xadd(KEYS[4], ARGV[3], cjson.encode({type='__run_end', status=ARGV[1], reason=ARGV[2]}))
retain(ARGV[5], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return id
