"""Run records in Redis and the atomic scripts that move a run between states.

A run is a hash (:func:`keys.run`) plus an input list, a processing list, an output stream, a
checkpoint and a lease. Every transition that can race with an arriving message (send, take,
suspend, stop, cancel, expire) is one Lua script, so "suspend only if no message is waiting" and
"push the message and, if the run is suspended, flip it to resuming" cannot interleave.

Statuses: queued → running ⇄ waiting → suspended → resuming → running … → completed | canceled |
failed. ``is_streaming`` is 1 from the moment a turn takes its input until its marker is written.

Every write a run's owner makes is fenced by its lease in the same script (:data:`LEASE_LOST`),
and every script takes the time from Redis, never from the caller's clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from . import keys

ENDED = ("completed", "canceled", "failed")
STATUSES = ("queued", "running", "waiting", "suspended", "resuming", *ENDED)

#: The error a fenced script answers when the caller no longer owns the run.
LEASE_LOST = "LEASE_LOST"

# Shared Lua prelude. Times come from Redis (``TIME``), never from the caller, so deadlines and
# lease expiries mean the same on every machine however far apart their clocks are.
_PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function xadd(stream, maxlen, chunk)
  return redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'c', chunk)
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
"""

# The keys of one run, in this order, for the scripts that end a run (their retention).
# KEYS: run, inbox, processing, output, checkpoint, lease

# KEYS: run, inbox, deadlines, resuming ; ARGV: item (payload json), prefix, run_id, requeue_ms
SEND = _PRELUDE + """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if is_ended(st) then return {'ended', st} end
local accepted = tonumber(redis.call('HGET', KEYS[1], 'accepted') or '0')
local maxt = tonumber(redis.call('HGET', KEYS[1], 'max_turns') or '0')
if maxt > 0 and accepted >= maxt then return {'full', tostring(maxt)} end
local now = now_ms()
local seq = redis.call('HINCRBY', KEYS[1], 'input_seq', 1)
local input_id = 'i' .. seq
redis.call('HSET', KEYS[1], 'accepted', accepted + 1, 'updated_at', now)
redis.call('RPUSH', KEYS[2], input_id .. ' ' .. ARGV[1])
if st == 'suspended' then
  redis.call('HSET', KEYS[1], 'status', 'resuming', 'requeues', 0)
  redis.call('ZREM', KEYS[3], ARGV[3])
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[4]), ARGV[3])
  return {'resume', input_id}
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' then
  redis.call('PUBLISH', ARGV[2] .. ':wake:' .. owner, 'm ' .. ARGV[3])
end
return {'ok', input_id}
"""

# KEYS: run, inbox, processing, output, lease ; ARGV: turn, maxlen, token, lease_ms
# Takes the oldest waiting input for a new turn and writes the turn's __turn_start chunk.
TAKE = _PRELUDE + """
fence(KEYS[1], KEYS[5], ARGV[3], ARGV[4])
local item = redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
if not item then return false end
local sp = string.find(item, ' ', 1, true)
local input_id = item
if sp then input_id = string.sub(item, 1, sp - 1) end
local start = {type='__turn_start', turn=tonumber(ARGV[1])}
if input_id ~= 'i0' then start['inputId'] = input_id end
local id = xadd(KEYS[4], ARGV[2], cjson.encode(start))
redis.call('HSET', KEYS[1], 'status', 'running', 'is_streaming', '1', 'turn', ARGV[1],
  'current_input', input_id, 'turn_start_id', id, 'updated_at', now_ms())
local stopped = redis.call('HGET', KEYS[1], 'stop:' .. input_id) or ''
return {item, stopped}
"""

# KEYS: output, lease, run ; ARGV: token, lease_ms, maxlen, chunk json
# One chunk of a turn, appended only while the writer still owns the run: a worker that lost
# its lease (recovery handed the run on) can never write after the `abort{worker lost}`.
APPEND = _PRELUDE + """
fence(KEYS[3], KEYS[2], ARGV[1], ARGV[2])
return xadd(KEYS[1], ARGV[3], ARGV[4])
"""

# KEYS: run, lease ; ARGV: token, lease_ms, field, value [, field, value ...]
# Fields of the run record that only its owner sets (waiting, parked, max_turns).
OWNER_SET = _PRELUDE + """
fence(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], 'updated_at', now_ms(), unpack(ARGV, 3))
return 1
"""

# KEYS: run, inbox, deadlines, lease, active, checkpoint
# ARGV: lease token, lease_ms, timeout_ms, run_id, checkpoint json
# Saves the checkpoint, then suspends only if nothing is waiting in the inbox.
SUSPEND = _PRELUDE + """
if not owns(KEYS[1], KEYS[4], ARGV[1], ARGV[2]) then return -1 end
redis.call('SET', KEYS[6], ARGV[5])
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
local now = now_ms()
redis.call('HSET', KEYS[1], 'status', 'suspended', 'owner', '', 'is_streaming', '0',
  'suspended_at', now, 'updated_at', now)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[4])
redis.call('ZREM', KEYS[5], ARGV[4])
redis.call('DEL', KEYS[4])
return 1
"""

# KEYS: run ; ARGV: reason, prefix, run_id, input id or ''
# Without an input id: stop the turn streaming now (or turn 0 before it starts). With one: stop
# that input if it is streaming, or mark it so its turn is stopped the moment it is taken.
# Each input has its own stop record (`stop:<inputId>`), so stops never overwrite each other.
STOP = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'missing' end
local streaming = redis.call('HGET', KEYS[1], 'is_streaming') == '1'
local current = redis.call('HGET', KEYS[1], 'current_input')
local target
if ARGV[4] ~= '' then
  if streaming and current == ARGV[4] then
    target = ARGV[4]
  else
    local wanted = tonumber(string.sub(ARGV[4], 2)) or -1
    local taken = -1
    if current then taken = tonumber(string.sub(current, 2)) or -1 end
    local seq = tonumber(redis.call('HGET', KEYS[1], 'input_seq') or '0')
    if wanted <= taken or wanted > seq or st == 'completed' or st == 'canceled'
        or st == 'failed' then
      return 'idle'
    end
    redis.call('HSET', KEYS[1], 'stop:' .. ARGV[4], ARGV[1])
    return 'queued'
  end
elseif streaming then
  target = current
elseif st == 'queued' then
  target = 'i0'
else
  return 'idle'
end
redis.call('HSET', KEYS[1], 'stop:' .. target, ARGV[1])
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' then
  local notice = 's ' .. ARGV[3] .. ' ' .. target .. ' ' .. ARGV[1]
  redis.call('PUBLISH', ARGV[2] .. ':wake:' .. owner, notice)
end
return 'ok'
"""

# KEYS: run, inbox, processing, output, checkpoint, lease, deadlines, resuming
# ARGV: reason, maxlen, prefix, run_id, retention_s
# A run nobody is executing ends here at once; a live one is told to end itself.
CANCEL = _PRELUDE + """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'missing' end
if is_ended(st) then return 'ended' end
redis.call('HSET', KEYS[1], 'cancel', '1', 'cancel_reason', ARGV[1])
if st == 'suspended' or st == 'queued' or st == 'resuming'
    or redis.call('EXISTS', KEYS[6]) == 0 then
  local now = now_ms()
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'is_streaming', '0', 'owner', '',
    'ended_at', now, 'updated_at', now, 'reason', ARGV[1])
  redis.call('ZREM', KEYS[7], ARGV[4])
  redis.call('ZREM', KEYS[8], ARGV[4])
  xadd(KEYS[4], ARGV[2], cjson.encode({type='__run_end', status='canceled', reason=ARGV[1]}))
  retain(ARGV[5], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
  return 'ended-now'
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' then
  redis.call('PUBLISH', ARGV[3] .. ':wake:' .. owner, 'c ' .. ARGV[4])
end
return 'ok'
"""

# KEYS: run, inbox, processing, output, checkpoint, lease, deadlines
# ARGV: maxlen, run_id, retention_s
# Ends a suspended run whose turn timeout passed, unless a message arrived meanwhile.
EXPIRE = _PRELUDE + """
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'suspended' then redis.call('ZREM', KEYS[7], ARGV[2]) return 0 end
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
local now = now_ms()
local due = redis.call('ZSCORE', KEYS[7], ARGV[2])
if due and tonumber(due) > now then return 0 end
redis.call('HSET', KEYS[1], 'status', 'completed', 'ended_at', now, 'updated_at', now,
  'reason', 'turn_timeout')
redis.call('ZREM', KEYS[7], ARGV[2])
xadd(KEYS[4], ARGV[1], cjson.encode({type='__run_end', status='completed', reason='turn_timeout'}))
retain(ARGV[3], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return 1
"""

# KEYS: run, lease, resuming, active ; ARGV: token, lease_ms, owner, run_id
# Takes ownership of a queued or resuming run. Refuses while another owner's lease is alive,
# so a redelivered or duplicate Celery message can never give a run two live owners.
CLAIM = _PRELUDE + """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if is_ended(st) then return {'ended', st} end
if st ~= 'queued' and st ~= 'resuming' then return {'state', st} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) == false then return {'busy'} end
local now = now_ms()
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'updated_at', now, 'requeues', 0)
if st == 'resuming' then redis.call('HSET', KEYS[1], 'status', 'waiting') end
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), ARGV[4])
return {'ok', st}
"""

# KEYS: resuming, run ; ARGV: run_id, requeue_ms, max_delay_ms
# A run queued or resuming whose start is overdue: its Celery message may be lost (a worker
# died after taking it and before claiming the run). Returns 1 to the one sweeper that should
# send another message now; the next check backs off (requeue_ms, doubling up to max_delay_ms)
# so a run merely waiting behind a busy queue costs few duplicates (CLAIM refuses them).
REQUEUE = _PRELUDE + """
local st = redis.call('HGET', KEYS[2], 'status')
if st ~= 'queued' and st ~= 'resuming' then redis.call('ZREM', KEYS[1], ARGV[1]) return 0 end
local now = now_ms()
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) > now then return 0 end
local n = redis.call('HINCRBY', KEYS[2], 'requeues', 1)
local delay = math.min(tonumber(ARGV[2]) * 2 ^ (n - 1), tonumber(ARGV[3]))
redis.call('ZADD', KEYS[1], now + delay, ARGV[1])
return 1
"""

# KEYS: run, output, checkpoint, processing, lease
# ARGV: marker json, checkpoint json, maxlen, input_id or '' (the input whose on_turn_complete
# is still to run), token, lease_ms, answered input id
# The end of a turn, atomically: the marker, the checkpoint, and what recovery needs to know.
MARKER = _PRELUDE + """
fence(KEYS[1], KEYS[5], ARGV[5], ARGV[6])
local id = xadd(KEYS[2], ARGV[3], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[1], 'is_streaming', '0', 'last_event_id', id, 'updated_at', now_ms(),
  'hook_pending', ARGV[4])
redis.call('HDEL', KEYS[1], 'stop:' .. ARGV[7])
if ARGV[4] == '' then redis.call('DEL', KEYS[4]) end
return id
"""

# KEYS: run, processing, lease ; ARGV: token, lease_ms
# ``on_turn_complete`` returned: the answered message leaves the processing list.
HOOK_DONE = _PRELUDE + """
fence(KEYS[1], KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], 'hook_pending', '')
redis.call('DEL', KEYS[2])
return 1
"""

# KEYS: run, lease, processing, inbox, output, active, resuming
# ARGV: maxlen, run_id, requeue_ms
# A run whose owner's lease lapsed (the worker died): put the interrupted message back at the
# head of the inbox (unless only its on_turn_complete was left), close a partial reply with
# `abort`, and mark the run resuming so another worker picks it up from its checkpoint.
RECOVER = _PRELUDE + """
local now = now_ms()
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then
  redis.call('ZADD', KEYS[6], now + ttl, ARGV[2])
  return 0
end
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'running' and st ~= 'waiting' then
  redis.call('ZREM', KEYS[6], ARGV[2])
  return 0
end
local hook_pending = redis.call('HGET', KEYS[1], 'hook_pending')
if not hook_pending or hook_pending == '' then
  redis.call('LMOVE', KEYS[3], KEYS[4], 'RIGHT', 'LEFT')
end
if redis.call('HGET', KEYS[1], 'is_streaming') == '1' then
  xadd(KEYS[5], ARGV[1], cjson.encode({type='abort', reason='worker lost'}))
end
redis.call('HSET', KEYS[1], 'status', 'resuming', 'owner', '', 'is_streaming', '0',
  'updated_at', now, 'requeues', 0)
redis.call('HINCRBY', KEYS[1], 'recoveries', 1)
redis.call('ZREM', KEYS[6], ARGV[2])
redis.call('ZADD', KEYS[7], now + tonumber(ARGV[3]), ARGV[2])
return 1
"""

# KEYS: active, lease..., run... ; ARGV: token..., run_id..., lease_ms (tokens, ids and run keys
# in the order of the lease keys). Returns the lease keys this worker lost. A lease that is
# simply gone (it lapsed while this worker could not reach Redis: an outage, a restart) is taken
# back by ``owns`` when nobody else took the run over. Without this, a Redis restart longer than
# the lease made every live run on every worker "lose" its lease and end itself as canceled.
RENEW = _PRELUDE + """
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
"""

# KEYS: run, inbox, processing, output, checkpoint, lease, deadlines, resuming, active
# ARGV: status, reason, maxlen, token, run_id, retention_s
# A worker that lost the run (its lease is another's, or recovery handed the run on) must not
# end it: only the lease holder, or the owner whose lease merely lapsed, may.
END = _PRELUDE + """
local st = redis.call('HGET', KEYS[1], 'status')
if not st or is_ended(st) then return false end
local holder = redis.call('GET', KEYS[6])
if holder ~= ARGV[4] then
  local me = string.match(ARGV[4], '^(.*):[^:]*$')
  if holder or st == 'resuming' or st == 'suspended'
      or redis.call('HGET', KEYS[1], 'owner') ~= me then
    return false
  end
end
local now = now_ms()
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'reason', ARGV[2], 'is_streaming', '0',
  'owner', '', 'ended_at', now, 'updated_at', now)
redis.call('ZREM', KEYS[7], ARGV[5])
redis.call('ZREM', KEYS[8], ARGV[5])
redis.call('ZREM', KEYS[9], ARGV[5])
redis.call('DEL', KEYS[6])
local id = xadd(KEYS[4], ARGV[3], cjson.encode({type='__run_end', status=ARGV[1], reason=ARGV[2]}))
retain(ARGV[6], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return id
"""

# KEYS: run, inbox, resuming, runs, chat ; ARGV: record field/value pairs..., then
# initial item or '', run_id, requeue_ms, chat_ttl_s
# A new run: its record, its first message, the runs index and the chat's latest run, and a
# start deadline (so a lost Celery message is noticed and sent again).
CREATE = _PRELUDE + """
local n = #ARGV
local now = now_ms()
redis.call('HSET', KEYS[1], 'created_at', now, 'updated_at', now, unpack(ARGV, 1, n - 4))
if ARGV[n - 3] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[n - 3]) end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[n - 1]), ARGV[n - 2])
redis.call('ZADD', KEYS[4], now, ARGV[n - 2])
redis.call('SET', KEYS[5], ARGV[n - 2], 'EX', ARGV[n])
return now
"""


class LeaseLost(BaseException):
    """This worker no longer owns the run (its lease lapsed and recovery handed the run on):
    it must write nothing more. A BaseException so ``except Exception`` in user code cannot
    swallow it and carry on writing."""


def raise_if_lease_lost(exc: BaseException) -> None:
    """Turn a fenced script's ``LEASE_LOST`` error reply into :class:`LeaseLost`."""
    if isinstance(exc, redis.ResponseError) and str(exc).startswith(LEASE_LOST):
        raise LeaseLost(str(exc)) from exc


def redis_now_ms(client: redis.Redis) -> int:
    """Redis's clock in milliseconds: the time scripts use for deadlines and leases."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


class Scripts:
    """The Lua scripts registered on one Redis client (EVALSHA with automatic reload)."""

    def __init__(self, client: redis.Redis) -> None:
        self.send = client.register_script(SEND)
        self.take = client.register_script(TAKE)
        self.suspend = client.register_script(SUSPEND)
        self.stop = client.register_script(STOP)
        self.cancel = client.register_script(CANCEL)
        self.expire = client.register_script(EXPIRE)
        self.claim = client.register_script(CLAIM)
        self.renew = client.register_script(RENEW)
        self.end = client.register_script(END)
        self.recover = client.register_script(RECOVER)
        self.marker = client.register_script(MARKER)
        self.append = client.register_script(APPEND)
        self.owner_set = client.register_script(OWNER_SET)
        self.hook_done = client.register_script(HOOK_DONE)
        self.requeue = client.register_script(REQUEUE)
        self.create = client.register_script(CREATE)


_scripts: dict[int, Scripts] = {}


def scripts(client: redis.Redis) -> Scripts:
    """The scripts bound to ``client`` (cached per client)."""
    found = _scripts.get(id(client))
    if found is None:
        found = _scripts[id(client)] = Scripts(client)
    return found


@dataclass
class RunInfo:
    """A snapshot of a run record, as ``GET /runs/<id>`` and ``chatworker runs`` show it."""

    run_id: str
    task_id: str
    chat_id: str
    status: str
    turn: int
    is_streaming: bool
    last_event_id: str | None
    turn_start_id: str | None
    owner: str | None
    created_at: float
    updated_at: float
    reason: str | None
    previous_run_id: str | None
    pending_inputs: int = 0

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @classmethod
    def from_hash(cls, run_id: str, data: dict[str, Any]) -> RunInfo:
        def opt(name: str) -> str | None:
            value = data.get(name)
            return str(value) if value else None

        return cls(
            run_id=run_id,
            task_id=str(data.get("task_id", "")),
            chat_id=str(data.get("chat_id", "")),
            status=str(data.get("status", "")),
            turn=int(data.get("turn", 0) or 0),
            is_streaming=data.get("is_streaming") == "1",
            last_event_id=opt("last_event_id"),
            turn_start_id=opt("turn_start_id") if data.get("is_streaming") == "1" else None,
            owner=opt("owner"),
            created_at=int(data.get("created_at", 0) or 0) / 1000,
            updated_at=int(data.get("updated_at", 0) or 0) / 1000,
            reason=opt("reason"),
            previous_run_id=opt("previous_run_id"),
        )

    def to_json(self) -> dict[str, Any]:
        """The camelCase shape of ``GET /runs/<runId>``."""
        body: dict[str, Any] = {
            "runId": self.run_id,
            "taskId": self.task_id,
            "chatId": self.chat_id,
            "status": self.status,
            "turn": self.turn,
            "isStreaming": self.is_streaming,
            "lastEventId": self.last_event_id,
            "turnStartId": self.turn_start_id,
            "pendingInputs": self.pending_inputs,
        }
        if self.reason:
            body["reason"] = self.reason
        return body


def load_info(
    client: redis.Redis, run_id: str, *, with_pending: bool = False
) -> RunInfo | None:
    """The run's record, or None if there is no such run; ``with_pending`` also counts the
    messages accepted but not yet taken by a turn."""
    if not with_pending:
        data = client.hgetall(keys.run(run_id))
        return RunInfo.from_hash(run_id, data) if data else None
    pipe = client.pipeline(transaction=True)
    pipe.hgetall(keys.run(run_id))
    pipe.llen(keys.inbox(run_id))
    data, pending = pipe.execute()
    if not data:
        return None
    info = RunInfo.from_hash(run_id, data)
    info.pending_inputs = int(pending)
    return info


def load_checkpoint(client: redis.Redis, run_id: str) -> dict[str, Any] | None:
    raw = client.get(keys.checkpoint(run_id))
    return json.loads(raw) if raw else None


def split_item(item: str) -> tuple[str, str]:
    """``"i3 {json}"`` → ``("i3", "{json}")``: an inbox entry is the input id and the payload."""
    input_id, _, body = item.partition(" ")
    return input_id, body
