-- KEYS: run, processing, lease ; ARGV: token, lease_ms
-- ``on_turn_complete`` returned: the answered message leaves the processing list.
fence(KEYS[1], KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], 'hook_pending', '')
redis.call('DEL', KEYS[2])
return 1
