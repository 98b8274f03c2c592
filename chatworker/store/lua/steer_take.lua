-- KEYS: run, inbox, processing, lease ; ARGV: token, lease_ms, streaming input id
-- A step boundary of the turn answering ARGV[3]: the messages steered into that turn
-- (`steer:<id>` = ARGV[3]) leave the inbox for the processing list, as part of the input being
-- answered, and are marked `delivered`. Atomic with send (which marks them) and with the end of
-- the turn: a message is either taken here or answered as a turn of its own, never both or
-- neither.
fence(KEYS[1], KEYS[4], ARGV[1], ARGV[2])
if redis.call('HGET', KEYS[1], 'is_streaming') ~= '1'
    or redis.call('HGET', KEYS[1], 'current_input') ~= ARGV[3] then
  return {}
end
local taken = {}
for _, item in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local sp = string.find(item, ' ', 1, true)
  local id = item
  if sp then id = string.sub(item, 1, sp - 1) end
  if redis.call('HGET', KEYS[1], 'steer:' .. id) == ARGV[3] then
    redis.call('LREM', KEYS[2], 1, item)
    redis.call('RPUSH', KEYS[3], item)
    redis.call('HSET', KEYS[1], 'steer:' .. id, 'delivered')
    table.insert(taken, item)
  end
end
return taken
