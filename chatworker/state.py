"""Run records in Redis and the atomic scripts that move a run between states.

A run is a hash (:func:`keys.run`) plus an input list, a processing list, an output stream, a
checkpoint and a lease. Every transition that can race with an arriving message (send, take,
suspend, stop, cancel, expire) is one Lua script, so "suspend only if no message is waiting" and
"push the message and, if the run is suspended, flip it to resuming" cannot interleave.

Statuses: queued → running ⇄ waiting → suspended → resuming → running … → completed | canceled |
failed. ``is_streaming`` is 1 from the moment a turn takes its input until its marker is written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from . import keys

ENDED = ("completed", "canceled", "failed")
STATUSES = ("queued", "running", "waiting", "suspended", "resuming", *ENDED)

# Shared Lua prelude: append a chunk to the run's output stream.
_XADD = """
local function xadd(stream, maxlen, chunk)
  return redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'c', chunk)
end
"""

# KEYS: run, inbox, deadlines ; ARGV: item (payload json), now_ms, prefix, run_id
SEND = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if st == 'completed' or st == 'canceled' or st == 'failed' then return {'ended', st} end
local accepted = tonumber(redis.call('HGET', KEYS[1], 'accepted') or '0')
local maxt = tonumber(redis.call('HGET', KEYS[1], 'max_turns') or '0')
if maxt > 0 and accepted >= maxt then return {'full', tostring(maxt)} end
local seq = redis.call('HINCRBY', KEYS[1], 'input_seq', 1)
local input_id = 'i' .. seq
redis.call('HSET', KEYS[1], 'accepted', accepted + 1, 'updated_at', ARGV[2])
redis.call('RPUSH', KEYS[2], input_id .. ' ' .. ARGV[1])
if st == 'suspended' then
  redis.call('HSET', KEYS[1], 'status', 'resuming')
  redis.call('ZREM', KEYS[3], ARGV[4])
  redis.call('ZADD', ARGV[3] .. ':resuming', ARGV[2], ARGV[4])
  return {'resume', input_id}
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' then
  redis.call('PUBLISH', ARGV[3] .. ':wake:' .. owner, 'm ' .. ARGV[4])
end
return {'ok', input_id}
"""

# KEYS: run, inbox, processing, output ; ARGV: turn, now_ms, maxlen
# Takes the oldest waiting input for a new turn and writes the turn's __turn_start chunk.
TAKE = _XADD + """
local item = redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
if not item then return false end
local sp = string.find(item, ' ', 1, true)
local input_id = string.sub(item, 1, sp - 1)
local start = {type='__turn_start', turn=tonumber(ARGV[1])}
if input_id ~= 'i0' then start['inputId'] = input_id end
local id = xadd(KEYS[4], ARGV[3], cjson.encode(start))
redis.call('HSET', KEYS[1], 'status', 'running', 'is_streaming', '1', 'turn', ARGV[1],
  'current_input', input_id, 'turn_start_id', id, 'updated_at', ARGV[2])
local stop = redis.call('HGET', KEYS[1], 'stop_input')
local stopped = ''
if stop == input_id then stopped = redis.call('HGET', KEYS[1], 'stop_reason') or 'stopped' end
return {item, stopped}
"""

# KEYS: run, inbox, deadlines, lease, active ; ARGV: lease token, deadline_ms, now_ms, run_id
# Suspends only if nothing is waiting in the inbox and we still own the run.
SUSPEND = """
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'status', 'suspended', 'owner', '', 'is_streaming', '0',
  'suspended_at', ARGV[3], 'updated_at', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
redis.call('ZREM', KEYS[5], ARGV[4])
redis.call('DEL', KEYS[4])
return 1
"""

# KEYS: run ; ARGV: reason, prefix, run_id, input id or ''
# Without an input id: stop the turn streaming now (or turn 0 before it starts). With one: stop
# that input if it is streaming, or mark it so its turn is stopped the moment it is taken.
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
    if wanted <= taken or st == 'completed' or st == 'canceled' or st == 'failed' then
      return 'idle'
    end
    redis.call('HSET', KEYS[1], 'stop_input', ARGV[4], 'stop_reason', ARGV[1])
    return 'queued'
  end
elseif streaming then
  target = current
elseif st == 'queued' then
  target = 'i0'
else
  return 'idle'
end
redis.call('HSET', KEYS[1], 'stop_input', target, 'stop_reason', ARGV[1])
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' then
  local notice = 's ' .. ARGV[3] .. ' ' .. target .. ' ' .. ARGV[1]
  redis.call('PUBLISH', ARGV[2] .. ':wake:' .. owner, notice)
end
return 'ok'
"""

# KEYS: run, output, deadlines, resuming, lease ; ARGV: reason, now_ms, maxlen, prefix, run_id
# A run nobody is executing ends here at once; a live one is told to end itself.
CANCEL = _XADD + """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'missing' end
if st == 'completed' or st == 'canceled' or st == 'failed' then return 'ended' end
redis.call('HSET', KEYS[1], 'cancel', '1', 'cancel_reason', ARGV[1])
if st == 'suspended' or st == 'queued' or st == 'resuming'
    or redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'is_streaming', '0', 'owner', '',
    'ended_at', ARGV[2], 'updated_at', ARGV[2], 'reason', ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[5])
  redis.call('ZREM', KEYS[4], ARGV[5])
  xadd(KEYS[2], ARGV[3], cjson.encode({type='__run_end', status='canceled', reason=ARGV[1]}))
  return 'ended-now'
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' then
  redis.call('PUBLISH', ARGV[4] .. ':wake:' .. owner, 'c ' .. ARGV[5])
end
return 'ok'
"""

# KEYS: run, inbox, output, deadlines ; ARGV: now_ms, maxlen, run_id
# Ends a suspended run whose turn timeout passed, unless a message arrived meanwhile.
EXPIRE = _XADD + """
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'suspended' then redis.call('ZREM', KEYS[4], ARGV[3]) return 0 end
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
local due = redis.call('ZSCORE', KEYS[4], ARGV[3])
if due and tonumber(due) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'completed', 'ended_at', ARGV[1], 'updated_at', ARGV[1],
  'reason', 'turn_timeout')
redis.call('ZREM', KEYS[4], ARGV[3])
xadd(KEYS[3], ARGV[2], cjson.encode({type='__run_end', status='completed', reason='turn_timeout'}))
return 1
"""

# KEYS: run, lease, resuming, active ; ARGV: token, lease_ms, owner, now_ms, run_id
# Takes ownership of a queued or resuming run. Refuses while another owner's lease is alive,
# so a redelivered or duplicate Celery message can never give a run two live owners.
CLAIM = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if st == 'completed' or st == 'canceled' or st == 'failed' then return {'ended', st} end
if st ~= 'queued' and st ~= 'resuming' then return {'state', st} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) == false then return {'busy'} end
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'updated_at', ARGV[4])
if st == 'resuming' then redis.call('HSET', KEYS[1], 'status', 'waiting') end
redis.call('ZREM', KEYS[3], ARGV[5])
redis.call('ZADD', KEYS[4], tonumber(ARGV[4]) + tonumber(ARGV[2]), ARGV[5])
return {'ok', st}
"""

# KEYS: run, output, checkpoint, processing ; ARGV: marker json, checkpoint json, now_ms, maxlen,
# input_id or '' (the input whose on_turn_complete is still to run)
# The end of a turn, atomically: the marker, the checkpoint, and what recovery needs to know.
MARKER = _XADD + """
local id = xadd(KEYS[2], ARGV[4], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[1], 'is_streaming', '0', 'last_event_id', id, 'updated_at', ARGV[3],
  'hook_pending', ARGV[5])
if ARGV[5] == '' then redis.call('DEL', KEYS[4]) end
return id
"""

# KEYS: run, lease, processing, inbox, output, active, resuming
# ARGV: now_ms, maxlen, run_id
# A run whose owner's lease lapsed (the worker died): put the interrupted message back at the
# head of the inbox (unless only its on_turn_complete was left), close a partial reply with
# `abort`, and mark the run resuming so another worker picks it up from its checkpoint.
RECOVER = _XADD + """
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then
  redis.call('ZADD', KEYS[6], tonumber(ARGV[1]) + ttl, ARGV[3])
  return 0
end
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'running' and st ~= 'waiting' then
  redis.call('ZREM', KEYS[6], ARGV[3])
  return 0
end
local hook_pending = redis.call('HGET', KEYS[1], 'hook_pending')
if not hook_pending or hook_pending == '' then
  local item = redis.call('LMOVE', KEYS[3], KEYS[4], 'RIGHT', 'LEFT')
end
if redis.call('HGET', KEYS[1], 'is_streaming') == '1' then
  xadd(KEYS[5], ARGV[2], cjson.encode({type='abort', reason='worker lost'}))
end
redis.call('HSET', KEYS[1], 'status', 'resuming', 'owner', '', 'is_streaming', '0',
  'updated_at', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'recoveries', 1)
redis.call('ZREM', KEYS[6], ARGV[3])
redis.call('ZADD', KEYS[7], ARGV[1], ARGV[3])
return 1
"""

# KEYS: active, lease..., run... ; ARGV: token..., run_id..., lease_ms, now_ms, owner (tokens,
# ids and run keys in the order of the lease keys). Returns the lease keys this worker lost.
# A lease that is simply gone (it lapsed while this worker could not reach Redis: an outage, a
# restart) is taken back when the run still names this worker as its owner: recovery clears
# `owner` and a new claim sets another, so nobody else can be driving the run. Without this, a
# Redis restart longer than the lease made every live run on every worker "lose" its lease and
# end itself as canceled.
RENEW = """
local n = (#KEYS - 1) / 2
local ms = tonumber(ARGV[2 * n + 1])
local now = tonumber(ARGV[2 * n + 2])
local me = ARGV[2 * n + 3]
local lost = {}
for i = 1, n do
  local key = KEYS[i + 1]
  local holder = redis.call('GET', key)
  local mine = holder == ARGV[i]
  if not holder then
    local run = KEYS[n + i + 1]
    local st = redis.call('HGET', run, 'status')
    if redis.call('HGET', run, 'owner') == me and (st == 'running' or st == 'waiting'
        or st == 'queued') then
      redis.call('SET', key, ARGV[i], 'PX', ms)
      mine = true
    end
  end
  if mine then
    redis.call('PEXPIRE', key, ms)
    redis.call('ZADD', KEYS[1], now + ms, ARGV[n + i])
  else
    table.insert(lost, key)
  end
end
return lost
"""

# KEYS: run, lease, output, deadlines, resuming, active
# ARGV: status, reason, now_ms, maxlen, token, run_id
# A worker that lost the run (its lease is another's, or recovery handed the run on) must not
# end it: only the lease holder, or the owner whose lease merely lapsed, may.
END = _XADD + """
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'completed' or st == 'canceled' or st == 'failed' then return false end
local holder = redis.call('GET', KEYS[2])
if holder ~= ARGV[5] then
  local me = string.match(ARGV[5], '^(.*):[^:]*$')
  if holder or st == 'resuming' or st == 'suspended'
      or redis.call('HGET', KEYS[1], 'owner') ~= me then
    return false
  end
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'reason', ARGV[2], 'is_streaming', '0',
  'owner', '', 'ended_at', ARGV[3], 'updated_at', ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[6])
redis.call('ZREM', KEYS[5], ARGV[6])
redis.call('ZREM', KEYS[6], ARGV[6])
if redis.call('GET', KEYS[2]) == ARGV[5] then redis.call('DEL', KEYS[2]) end
return xadd(KEYS[3], ARGV[4], cjson.encode({type='__run_end', status=ARGV[1], reason=ARGV[2]}))
"""


def now_ms() -> int:
    return int(time.time() * 1000)


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
