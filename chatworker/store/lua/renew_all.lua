-- KEYS: lease, run (two per run) ; ARGV: lease_ms, then one token per run
-- ``renew`` for many runs in one call, on one server (a cluster renews run by run, each in its
-- run's slot): 1 for each run this worker still owns (its lease extended), 0 for each it lost.
-- One call per worker beat instead of one per run: with a thousand warm runs per process, the
-- per-run calls were most of Redis's work between tokens.
local ms = ARGV[1]
local out = {}
for i = 1, #KEYS / 2 do
  local lease, run = KEYS[2 * i - 1], KEYS[2 * i]
  if owns(run, lease, ARGV[i + 1], ms) then
    redis.call('PEXPIRE', lease, ms)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
