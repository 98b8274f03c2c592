-- KEYS: run, lease, processing, inbox, output ; ARGV: maxlen, requeue_ms
-- A run whose owner's lease lapsed (the worker died): put the interrupted message, and those
-- steered into its turn, back at the head of the inbox (unless only its on_turn_complete was
-- left), close a partial reply with `abort`, and mark the run resuming (with a start deadline)
-- so another worker picks it up from its checkpoint. Returns {1, Redis time} (recovered),
-- {'later', lease expiry} (the lease is alive) or 'gone' (nothing to recover: a stale hint).
local now = now_ms()
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then return {'later', tostring(now + ttl)} end
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'running' and st ~= 'waiting' then return 'gone' end
local hook_pending = redis.call('HGET', KEYS[1], 'hook_pending')
if not hook_pending or hook_pending == '' then
  -- the input, and any messages steered into its turn, go back first in the inbox, in order
  while redis.call('LMOVE', KEYS[3], KEYS[4], 'RIGHT', 'LEFT') do end
end
if redis.call('HGET', KEYS[1], 'is_streaming') == '1' then
  xadd(KEYS[5], ARGV[1], cjson.encode({type='abort', reason='worker lost'}))
end
redis.call('HSET', KEYS[1], 'status', 'resuming', 'owner', '', 'is_streaming', '0',
  'updated_at', now, 'requeues', 0, 'start_due', now + tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[1], 'recoveries', 1)
return {1, tostring(now)}
