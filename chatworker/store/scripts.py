"""The Lua scripts, loaded from ``lua/*.lua`` and registered once per Redis client.

Every script starts with ``lua/prelude.lua``: the time from Redis (``TIME``, never the caller's
clock), appends to an output stream, the lease fence owner writes go through, and retention.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

#: The error a fenced script answers when the caller no longer owns the run.
LEASE_LOST = "LEASE_LOST"


class LeaseLost(BaseException):
    """This worker no longer owns the run (its lease lapsed and recovery handed the run on):
    it must write nothing more. A BaseException so ``except Exception`` in user code cannot
    swallow it and carry on writing."""


def raise_if_lease_lost(exc: BaseException) -> None:
    """Turn a fenced script's ``LEASE_LOST`` error reply into :class:`LeaseLost`."""
    if isinstance(exc, redis.ResponseError) and str(exc).startswith(LEASE_LOST):
        raise LeaseLost(str(exc)) from exc


@cache
def source(name: str) -> str:
    """The full text of script ``name`` (``lua/<name>.lua`` after the shared prelude)."""
    folder = resources.files(__package__).joinpath("lua")
    prelude = folder.joinpath("prelude.lua").read_text()
    return prelude + "\n" + folder.joinpath(f"{name}.lua").read_text()


NAMES = (
    "create", "send", "take", "append", "owner_set", "suspend", "stop", "cancel", "expire",
    "claim", "requeue", "turn_start", "marker", "hook_done", "recover", "renew", "end",
    "slot_acquire", "slot_release", "call_send", "tool_record", "steer_take", "append_batch",
)

_registered: dict[int, dict[str, Script]] = {}


def registered(client: redis.Redis[str]) -> dict[str, Script]:
    """The scripts bound to ``client`` by name (EVALSHA, reloaded after a Redis restart)."""
    found = _registered.get(id(client))
    if found is None:
        found = _registered[id(client)] = {
            name: client.register_script(source(name)) for name in NAMES
        }
    return found


def redis_now_ms(client: redis.Redis[str]) -> int:
    """Redis's clock in milliseconds: the time scripts use for deadlines and leases."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
