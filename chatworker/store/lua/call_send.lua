-- KEYS: call, call output, lease, run ; ARGV: lease_ms, maxlen, entry json
-- What a task tool call's task sends back (a progress chunk, its result), accepted only while
-- the turn that called it still waits for it and its run's owner still holds the lease.
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then
  return redis.error_reply('CALL_CLOSED the chat turn that called this task has ended')
end
local token = redis.call('HGET', KEYS[1], 'token')
if token and token ~= '' then fence(KEYS[4], KEYS[3], token, ARGV[1]) end
local id = xadd(KEYS[2], ARGV[2], ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return id
