-- KEYS: run, lease ; ARGV: token, lease_ms, owner
-- Takes ownership of a queued or resuming run. Refuses while another owner's lease is alive,
-- so a redelivered or duplicate Celery message can never give a run two live owners.
-- Returns {'ok', previous status, Redis time} or why not.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if is_ended(st) then return {'ended', st} end
if st ~= 'queued' and st ~= 'resuming' then return {'state', st} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) == false then return {'busy'} end
local now = now_ms()
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'updated_at', now, 'requeues', 0)
if st == 'resuming' then redis.call('HSET', KEYS[1], 'status', 'waiting') end
return {'ok', st, now}
