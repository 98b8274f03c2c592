"""The Lua scripts, loaded from ``lua/*.lua`` and registered once per Redis client.

Every script starts with ``lua/prelude.lua``: the time from Redis (``TIME``, never the caller's
clock), appends to an output stream, the lease fence owner writes go through, and retention.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

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
    "slot_acquire", "slot_release", "call_send", "fence", "steer_take", "hint", "unhint",
    "append_batch", "renew_all",
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


def run_many(client: redis.Redis[str], name: str,
             calls: Sequence[tuple[Sequence[str], Sequence[Any]]]) -> list[Any]:
    """Script ``name`` once per ``(keys, args)``, in one pipeline (the calls may be in different
    slots: a cluster client sends each to its node); a script Redis forgot (a restart) is loaded
    again. Error replies are returned, not raised."""
    return run_in_order(client, [(name, run_keys, args) for run_keys, args in calls])


def run_in_order(client: redis.Redis[str],
                 calls: Sequence[tuple[str, Sequence[str], Sequence[Any]]]) -> list[Any]:
    """Scripts ``(name, keys, args)``, in one pipeline: one server runs them in this order (a
    cluster's pipeline spreads them over nodes, in no order across nodes). A script Redis forgot
    is loaded again; error replies are returned, not raised."""
    if not calls:
        return []
    pipe = client.pipeline(transaction=False)
    scripts = registered(client)
    for name, run_keys, args in calls:
        pipe.execute_command("EVALSHA", scripts[name].sha,  # type: ignore[attr-defined, no-untyped-call]
                             len(run_keys), *run_keys, *args)
    replies = list(pipe.execute(raise_on_error=False))
    for i, reply in enumerate(replies):
        if isinstance(reply, redis.exceptions.NoScriptError):
            name, run_keys, args = calls[i]
            try:
                replies[i] = scripts[name](keys=list(run_keys), args=list(args))
            except redis.ResponseError as exc:
                replies[i] = exc
    return replies


def redis_now_ms(client: redis.Redis[str]) -> int:
    """Redis's clock in milliseconds: the time scripts use for deadlines and leases."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
