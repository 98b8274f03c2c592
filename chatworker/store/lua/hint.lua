-- KEYS: one index bucket ; ARGV: delay_ms, member...
-- Hints for the sweeps: each member scored at Redis's time plus delay_ms. Returns that score.
local t = redis.call('TIME')
local score = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], score, ARGV[i]) end
return tostring(score)
