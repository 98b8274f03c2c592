-- KEYS: output, lease, run (three per append) ; ARGV: lease_ms, maxlen, then token, chunk json
-- (two per append). Several fenced appends, of any runs, in one script call: each is the
-- `append` script's fence and XADD, in order. Returns one reply per append: the entry id, or
-- 'LEASE_LOST ...' where the writer no longer owns that run (the others still go in; each run
-- is fenced on its own). A run's ownership is checked once per call.
local ms, maxlen = ARGV[1], ARGV[2]
local out, owned = {}, {}
for i = 1, #KEYS / 3 do
  local stream, lease, run = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local token, chunk = ARGV[2 * i + 1], ARGV[2 * i + 2]
  local mine = owned[lease]
  if mine == nil then
    mine = owns(run, lease, token, ms) and token or false
    owned[lease] = mine
  end
  if mine == token then
    out[i] = xadd(stream, maxlen, chunk)
  else
    out[i] = 'LEASE_LOST this worker no longer owns the run'
  end
end
return out
