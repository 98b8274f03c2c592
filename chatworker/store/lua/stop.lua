-- KEYS: run ; ARGV: reason, run_id, input id or ''
-- Without an input id: stop the turn streaming now (or turn 0 before it starts). With one: stop
-- that input if it is streaming, or mark it so its turn is stopped the moment it is taken.
-- Each input has its own stop record (`stop:<inputId>`), so stops never overwrite each other.
-- Returns {verdict} or {'ok', owner, notice}: the caller publishes the notice to the owner.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
local streaming = redis.call('HGET', KEYS[1], 'is_streaming') == '1'
local current = redis.call('HGET', KEYS[1], 'current_input')
local target
if ARGV[3] ~= '' then
  if streaming and current == ARGV[3] then
    target = ARGV[3]
  else
    local wanted = tonumber(string.sub(ARGV[3], 2)) or -1
    local taken = -1
    if current then taken = tonumber(string.sub(current, 2)) or -1 end
    local seq = tonumber(redis.call('HGET', KEYS[1], 'input_seq') or '0')
    if wanted <= taken or wanted > seq or st == 'completed' or st == 'canceled'
        or st == 'failed' then
      return {'idle'}
    end
    redis.call('HSET', KEYS[1], 'stop:' .. ARGV[3], ARGV[1])
    return {'queued'}
  end
elseif streaming then
  target = current
elseif st == 'queued' then
  target = 'i0'
else
  return {'idle'}
end
redis.call('HSET', KEYS[1], 'stop:' .. target, ARGV[1])
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
return {'ok', owner, 's ' .. ARGV[2] .. ' ' .. target .. ' ' .. ARGV[1]}
