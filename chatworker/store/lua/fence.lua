-- KEYS: run, lease ; ARGV: token, lease_ms
-- Refuses (LEASE_LOST) unless the token still owns the run: the check before a write to a key
-- outside the run's slot (a chat's recorded tool results).
fence(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return 1
