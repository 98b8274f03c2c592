-- KEYS: run, output, checkpoint, processing, lease
-- ARGV: marker json, checkpoint json, maxlen, input_id or '' (the input whose on_turn_complete
-- is still to run), token, lease_ms, answered input id
-- The end of a turn, atomically: the marker, the checkpoint, and what recovery needs to know.
fence(KEYS[1], KEYS[5], ARGV[5], ARGV[6])
local id = xadd(KEYS[2], ARGV[3], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[1], 'is_streaming', '0', 'last_event_id', id, 'updated_at', now_ms(),
  'hook_pending', ARGV[4])
redis.call('HDEL', KEYS[1], 'stop:' .. ARGV[7])
if ARGV[4] == '' then redis.call('DEL', KEYS[4]) end
return id
