-- KEYS: run, output, lease ; ARGV: chunk json, maxlen, token, lease_ms
-- Writes a turn's __turn_start chunk (after take.lua): from here the run is streaming that turn.
fence(KEYS[1], KEYS[3], ARGV[3], ARGV[4])
local id = xadd(KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], 'is_streaming', '1', 'turn_start_id', id, 'updated_at', now_ms())
return id
