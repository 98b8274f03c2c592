-- KEYS: output[, lease, run] ; ARGV: token, lease_ms, maxlen, chunk json
-- One chunk of a turn, appended only while the writer still owns the run: a worker that lost
-- its lease (recovery handed the run on) can never write after the `abort{worker lost}`.
-- Given the output stream alone, the append is not fenced (a write outside a run's turns).
if #KEYS > 1 then fence(KEYS[3], KEYS[2], ARGV[1], ARGV[2]) end
return xadd(KEYS[1], ARGV[3], ARGV[4])
