-- KEYS: one index bucket ; ARGV: member, upto
-- Drops a hint only if its score is at most `upto`: a sweep drops the stale hint it saw (its
-- own score) and a transition the hint of its own past (so a hint written meanwhile, for a later
-- transition of the same run, stays).
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
