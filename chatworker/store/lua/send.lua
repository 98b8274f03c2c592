-- KEYS: run, inbox
-- ARGV: item (payload json), run_id, requeue_ms, policy, stop reason
-- The policy (queue, interrupt, steer, reject) applies only while a turn of this run streams,
-- decided here, atomically with the turn's start (take) and end (marker):
--   queue:     appended to the inbox, answered in order;
--   interrupt: put first in the inbox, and the streaming turn is stopped as a user stop is;
--   steer:     appended to the inbox marked `steer:<inputId>` = the streaming input, so that
--              the turn takes it at its next step boundary (steer_take), or, if the turn ends
--              first, it is answered as a turn of its own (take marks it `turn`);
--   reject:    nothing is written: {'busy', streaming input}.
-- Accepted: {'ok', input id, policy, owner, status, notices...}: the caller publishes the
-- notices to the owner's wake channel (a channel is in another slot); or {'resume', input id, 'queue'} when a
-- suspended run flips to resuming (its start deadline `start_due` set: the caller enqueues it).
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if is_ended(st) then return {'ended', st} end
local streaming = st == 'running' and redis.call('HGET', KEYS[1], 'is_streaming') == '1'
local current = redis.call('HGET', KEYS[1], 'current_input') or ''
local policy = 'queue'
if streaming and current ~= '' then policy = ARGV[4] end
if policy == 'reject' then return {'busy', current} end
local accepted = tonumber(redis.call('HGET', KEYS[1], 'accepted') or '0')
local maxt = tonumber(redis.call('HGET', KEYS[1], 'max_turns') or '0')
if maxt > 0 and accepted >= maxt then return {'full', tostring(maxt)} end
local now = now_ms()
local seq = redis.call('HINCRBY', KEYS[1], 'input_seq', 1)
local input_id = 'i' .. seq
redis.call('HSET', KEYS[1], 'accepted', accepted + 1, 'updated_at', now)
if policy == 'interrupt' then
  redis.call('LPUSH', KEYS[2], input_id .. ' ' .. ARGV[1])
else
  redis.call('RPUSH', KEYS[2], input_id .. ' ' .. ARGV[1])
end
if st == 'suspended' then
  redis.call('HSET', KEYS[1], 'status', 'resuming', 'requeues', 0,
    'start_due', now + tonumber(ARGV[3]))
  return {'resume', input_id, 'queue'}
end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local result = {'ok', input_id, policy, owner, st}
if policy == 'steer' then
  redis.call('HSET', KEYS[1], 'steer:' .. input_id, current)
elseif policy == 'interrupt' then
  redis.call('HSET', KEYS[1], 'stop:' .. current, ARGV[5])
  table.insert(result, 's ' .. ARGV[2] .. ' ' .. current .. ' ' .. ARGV[5])
end
table.insert(result, 'm ' .. ARGV[2])
return result
