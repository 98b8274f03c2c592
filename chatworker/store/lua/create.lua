-- KEYS: run, inbox ; ARGV: record field/value pairs..., then initial item or '', requeue_ms
-- A new run: its record, its first message, and its start deadline (`start_due`: a lost Celery
-- message is noticed and sent again). The runs index, the chat's latest run and the start hint
-- are written by the caller (other slots).
local n = #ARGV
local now = now_ms()
redis.call('HSET', KEYS[1], 'created_at', now, 'updated_at', now,
  'start_due', now + tonumber(ARGV[n]), unpack(ARGV, 1, n - 2))
if ARGV[n - 1] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[n - 1]) end
return now
