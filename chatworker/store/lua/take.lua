-- KEYS: run, inbox, processing, output, lease ; ARGV: turn, maxlen, token, lease_ms
-- Takes the oldest waiting input for a new turn; the turn's __turn_start chunk follows (written
-- by turn_start.lua once the owner has read the message, so it can carry the message itself).
fence(KEYS[1], KEYS[5], ARGV[3], ARGV[4])
local item = redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
if not item then return false end
local sp = string.find(item, ' ', 1, true)
local input_id = item
if sp then input_id = string.sub(item, 1, sp - 1) end
redis.call('HSET', KEYS[1], 'status', 'running', 'turn', ARGV[1],
  'current_input', input_id, 'updated_at', now_ms())
-- A message sent to steer a turn that ended before taking it is answered as a turn of its own.
if redis.call('HEXISTS', KEYS[1], 'steer:' .. input_id) == 1 then
  redis.call('HSET', KEYS[1], 'steer:' .. input_id, 'turn')
end
local stopped = redis.call('HGET', KEYS[1], 'stop:' .. input_id) or ''
return {item, stopped}
