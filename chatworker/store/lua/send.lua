-- KEYS: run, inbox, deadlines, resuming
-- ARGV: item (payload json), wake channel prefix, run_id, requeue_ms, policy, stop reason
-- The policy (queue, interrupt, steer, reject) applies only while a turn of this run streams,
-- decided here, atomically with the turn's start (take) and end (marker):
--   queue:     appended to the inbox, answered in order;
--   interrupt: put first in the inbox, and the streaming turn is stopped as a user stop is;
--   steer:     appended to the inbox marked `steer:<inputId>` = the streaming input, so that
--              the turn takes it at its next step boundary (steer_take), or, if the turn ends
--              first, it is answered as a turn of its own (take marks it `turn`);
--   reject:    nothing is written: {'busy', streaming input}.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if is_ended(st) then return {'ended', st} end
local streaming = st == 'running' and redis.call('HGET', KEYS[1], 'is_streaming') == '1'
local current = redis.call('HGET', KEYS[1], 'current_input') or ''
local policy = 'queue'
if streaming and current ~= '' then policy = ARGV[5] end
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
  redis.call('HSET', KEYS[1], 'status', 'resuming', 'requeues', 0)
  redis.call('ZREM', KEYS[3], ARGV[3])
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[4]), ARGV[3])
  return {'resume', input_id, 'queue'}
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if policy == 'steer' then
  redis.call('HSET', KEYS[1], 'steer:' .. input_id, current)
elseif policy == 'interrupt' then
  redis.call('HSET', KEYS[1], 'stop:' .. current, ARGV[6])
  if owner and owner ~= '' then
    redis.call('PUBLISH', ARGV[2] .. owner, 's ' .. ARGV[3] .. ' ' .. current .. ' ' .. ARGV[6])
  end
end
if owner and owner ~= '' then
  redis.call('PUBLISH', ARGV[2] .. owner, 'm ' .. ARGV[3])
end
return {'ok', input_id, policy}
