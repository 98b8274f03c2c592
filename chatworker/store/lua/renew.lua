-- KEYS: active, lease..., run... ; ARGV: token..., run_id..., lease_ms (tokens, ids and run keys
-- in the order of the lease keys). Returns the lease keys this worker lost. A lease that is
-- simply gone (it lapsed while this worker could not reach Redis: an outage, a restart) is taken
-- back by ``owns`` when nobody else took the run over. Without this, a Redis restart longer than
-- the lease made every live run on every worker "lose" its lease and end itself as canceled.
local n = (#KEYS - 1) / 2
local ms = tonumber(ARGV[2 * n + 1])
local now = now_ms()
local lost = {}
for i = 1, n do
  local key = KEYS[i + 1]
  if owns(KEYS[n + i + 1], key, ARGV[i], ms) then
    redis.call('PEXPIRE', key, ms)
    redis.call('ZADD', KEYS[1], now + ms, ARGV[n + i])
  else
    table.insert(lost, key)
  end
end
return lost
