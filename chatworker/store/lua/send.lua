-- KEYS: run, inbox, deadlines, resuming
-- ARGV: item (payload json), wake channel prefix, run_id, requeue_ms
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if is_ended(st) then return {'ended', st} end
local accepted = tonumber(redis.call('HGET', KEYS[1], 'accepted') or '0')
local maxt = tonumber(redis.call('HGET', KEYS[1], 'max_turns') or '0')
if maxt > 0 and accepted >= maxt then return {'full', tostring(maxt)} end
local now = now_ms()
local seq = redis.call('HINCRBY', KEYS[1], 'input_seq', 1)
local input_id = 'i' .. seq
redis.call('HSET', KEYS[1], 'accepted', accepted + 1, 'updated_at', now)
redis.call('RPUSH', KEYS[2], input_id .. ' ' .. ARGV[1])
if st == 'suspended' then
  redis.call('HSET', KEYS[1], 'status', 'resuming', 'requeues', 0)
  redis.call('ZREM', KEYS[3], ARGV[3])
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[4]), ARGV[3])
  return {'resume', input_id}
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' then
  redis.call('PUBLISH', ARGV[2] .. owner, 'm ' .. ARGV[3])
end
return {'ok', input_id}
