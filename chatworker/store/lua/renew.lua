-- KEYS: lease, run ; ARGV: token, lease_ms
-- Renews one run's lease (1), or 0 when this worker lost it. A lease that is simply gone (it
-- lapsed while this worker could not reach Redis: an outage, a restart) is taken back by
-- ``owns`` when nobody else took the run over. Without this, a Redis restart longer than the
-- lease made every live run on every worker "lose" its lease and end itself as canceled.
if owns(KEYS[2], KEYS[1], ARGV[1], ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
