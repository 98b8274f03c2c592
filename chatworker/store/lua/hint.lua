-- KEYS: one index bucket ; ARGV: delay_ms, only_new ('1': keep a member's existing hint),
-- member... Hints for the sweeps: each member scored at Redis's time plus delay_ms.
-- Returns {that score, how many members were added}.
local t = redis.call('TIME')
local score = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local added = 0
for i = 3, #ARGV do
  if ARGV[2] == '1' then
    added = added + redis.call('ZADD', KEYS[1], 'NX', score, ARGV[i])
  else
    added = added + redis.call('ZADD', KEYS[1], score, ARGV[i])
  end
end
return {tostring(score), added}
