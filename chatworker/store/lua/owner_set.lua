-- KEYS: run, lease ; ARGV: token, lease_ms, field, value [, field, value ...]
-- Fields of the run record that only its owner sets (waiting, parked, max_turns).
fence(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], 'updated_at', now_ms(), unpack(ARGV, 3))
return 1
