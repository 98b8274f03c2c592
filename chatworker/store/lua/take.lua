-- KEYS: run, inbox, processing, output, lease ; ARGV: turn, maxlen, token, lease_ms
-- Takes the oldest waiting input for a new turn and writes the turn's __turn_start chunk.
fence(KEYS[1], KEYS[5], ARGV[3], ARGV[4])
local item = redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
if not item then return false end
local sp = string.find(item, ' ', 1, true)
local input_id = item
if sp then input_id = string.sub(item, 1, sp - 1) end
local start = {type='__turn_start', turn=tonumber(ARGV[1])}
if input_id ~= 'i0' then start['inputId'] = input_id end
local id = xadd(KEYS[4], ARGV[2], cjson.encode(start))
redis.call('HSET', KEYS[1], 'status', 'running', 'is_streaming', '1', 'turn', ARGV[1],
  'current_input', input_id, 'turn_start_id', id, 'updated_at', now_ms())
-- A message sent to steer a turn that ended before taking it is answered as a turn of its own.
if redis.call('HEXISTS', KEYS[1], 'steer:' .. input_id) == 1 then
  redis.call('HSET', KEYS[1], 'steer:' .. input_id, 'turn')
end
local stopped = redis.call('HGET', KEYS[1], 'stop:' .. input_id) or ''
return {item, stopped}
