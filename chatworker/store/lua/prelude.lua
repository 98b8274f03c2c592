-- Shared by every script: the time from Redis, appends, the lease fence and retention.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Every append to an output stream also publishes the entry, `<id>\n<chunk json>`, on the
-- channel named like the stream (keys.output_channel): readers are told of it (the gateway's
-- hub) instead of polling. It is in the stream before it is published, by the same script.
local function xadd(stream, maxlen, chunk)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'c', chunk)
  redis.call('PUBLISH', stream, id .. '\n' .. chunk)
  return id
end
local function is_ended(st)
  return st == 'completed' or st == 'canceled' or st == 'failed'
end
-- Does the lease token still own the run? A lease that merely lapsed (Redis was unreachable or
-- stalled longer than the lease) is taken back when the run still names this worker as its
-- owner: recovery clears `owner` and a new claim sets another, so then nobody else drives it.
local function owns(run, lease, token, lease_ms)
  local holder = redis.call('GET', lease)
  if holder then return holder == token end
  local me = string.match(token, '^(.*):[^:]*$')
  local st = redis.call('HGET', run, 'status')
  if redis.call('HGET', run, 'owner') == me
      and (st == 'running' or st == 'waiting' or st == 'queued') then
    redis.call('SET', lease, token, 'PX', lease_ms)
    return true
  end
  return false
end
local function fence(run, lease, token, lease_ms)
  if not owns(run, lease, token, lease_ms) then
    error({err = 'LEASE_LOST this worker no longer owns the run'})
  end
end
-- An ended run's keys are kept for the retention period, then expire.
local function retain(ttl, ...)
  for _, key in ipairs({...}) do redis.call('EXPIRE', key, ttl) end
end
