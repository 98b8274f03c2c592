"""Group commit of output-stream appends: one Redis round trip for the chunks of many runs.

Appends go through one writer per process and Redis client. An append made while the
connection is idle goes out at once, alone, from the caller. Appends made while a round trip is
in flight, or within ``CHATWORKER_STREAM_LINGER_MS`` of the last one, are queued and sent
together by a writer thread (a greenlet under gevent), in the order they were queued, no later
than the linger after the previous send: a chunk never waits longer than that bound plus one
round trip. The fenced appends of a batch (any runs) are one call of the ``append_batch``
script, which fences each run on its own, so the Redis cost of a chunk is its ``XADD`` rather
than a script call of its own.

An append still returns only once its entry is in Redis, with its id, so a turn's chunks are in
the stream, in order, before anything that follows them (the turn marker, ``__run_end``).
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
import time
from typing import Any

import redis

from ..config import lease_seconds, stream_linger_seconds
from . import keys
from .scripts import LEASE_LOST, source

#: Most appends sent in one round trip (a bound on a pipeline's size, not a delay).
MAX_BATCH = 512
#: A writer thread with nothing to send for this long ends (the next append starts one).
IDLE_SECONDS = 30.0

APPEND = source("append")
_APPEND_SHA = hashlib.sha1(APPEND.encode()).hexdigest()
APPEND_BATCH = source("append_batch")
_BATCH_SHA = hashlib.sha1(APPEND_BATCH.encode()).hexdigest()

Command = tuple[Any, ...]


class Fence:
    """The lease a run's owner writes under: an append is refused once the lease is another's."""

    __slots__ = ("lease_key", "lease_ms", "run_key", "token")

    def __init__(self, run_id: str, token: str) -> None:
        self.lease_key = keys.lease(run_id)
        self.run_key = keys.run(run_id)
        self.token = token
        self.lease_ms = int(lease_seconds() * 1000)

    def append(self, key: str, body: str, maxlen: int) -> Command:
        """The fenced append of one entry (the ``append`` script, by its SHA)."""
        return ("EVALSHA", _APPEND_SHA, 3, key, self.lease_key, self.run_key, self.token,
                self.lease_ms, maxlen, body)


def unfenced_append(key: str, body: str, maxlen: int) -> Command:
    """An append with no lease to check (the ``append`` script given the stream alone): a write
    outside a run's turns, published like every other entry."""
    return ("EVALSHA", _APPEND_SHA, 1, key, "", 0, maxlen, body)


def _fenced(command: Command) -> bool:
    return bool(command[0] == "EVALSHA" and command[1] == _APPEND_SHA and command[2] == 3)


def _batch_command(commands: list[Command]) -> Command:
    """One ``append_batch`` call doing the fenced appends ``commands``, in order."""
    keys_: list[Any] = []
    args: list[Any] = []
    for c in commands:
        keys_ += c[3:6]
        args += (c[6], c[9])
    first = commands[0]
    return ("EVALSHA", _BATCH_SHA, len(keys_), *keys_, first[7], first[8], *args)


def _no_script(exc: object) -> bool:
    return isinstance(exc, redis.exceptions.NoScriptError)


class Append:
    """One queued append: filled in by the writer thread, then ``done`` is set."""

    __slots__ = ("command", "done", "error", "id")

    def __init__(self, command: Command) -> None:
        self.command = command
        self.done = threading.Event()
        self.id: str | None = None
        self.error: BaseException | None = None

    def result(self, writer: Writer) -> str:
        """The entry id once the writer sent it (raises what Redis answered instead)."""
        while not self.done.wait(5.0):
            writer.ensure_running()  # its thread died (killed at shutdown): start another
        if self.error is not None:
            raise self.error
        assert self.id is not None
        return self.id


class Writer:
    """The appends of one Redis client: sent directly when the connection is idle, else queued
    and sent in batches by one background thread, in the order they were queued."""

    def __init__(self, client: redis.Redis[str]) -> None:
        self.client = client
        self.linger = stream_linger_seconds()
        # A cluster spreads runs over slots: a script may only touch one, so no cross-run batch.
        self.cross_run = not hasattr(client, "get_nodes")
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[Append] = []
        self._inflight = 0
        self._next_send = 0.0
        self._thread: threading.Thread | None = None

    def append(self, command: Command) -> str:
        """Append one entry (now, or with the next batch); returns its id."""
        item: Append | None = None
        with self._cond:
            now = time.monotonic()
            if self._inflight or self._queue or now < self._next_send:
                item = Append(command)
                self._queue.append(item)
                self._wake()
            else:
                self._inflight += 1
                self._next_send = now + self.linger
        if item is not None:
            return item.result(self)
        try:
            return str(self._execute(command))
        finally:
            with self._cond:
                self._inflight -= 1

    def submit(self, items: list[Append]) -> None:
        """Queue ``items`` (in order) for the next round trip."""
        with self._cond:
            self._queue.extend(items)
            self._wake()

    def ensure_running(self) -> None:
        """Start the thread again if it is gone while appends wait."""
        with self._cond:
            self._start()

    def _wake(self) -> None:
        # Under the lock. The thread clears ``_thread`` itself when it ends idle; one killed
        # at shutdown is caught by ``ensure_running`` (no is_alive() on every chunk).
        if self._thread is None:
            self._start()
        else:
            self._cond.notify()

    def _start(self) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            thread = self._thread = threading.Thread(
                target=self._run, name="chatworker-stream-writer", daemon=True
            )
            thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(IDLE_SECONDS)
                if not self._queue:  # idle: end; the next append starts a thread again
                    self._thread = None
                    return
                pause = self._next_send - time.monotonic()
            if pause > 0:  # let the batch fill, up to the linger after the previous send
                time.sleep(pause)
            with self._cond:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                self._inflight += 1
                self._next_send = time.monotonic() + self.linger
            try:
                self._send(batch)
            except BaseException as exc:  # the thread is being killed: fail, don't strand
                for item in batch:
                    if item.id is None and item.error is None:
                        item.error = redis.ConnectionError(f"stream write interrupted ({exc!r})")
                raise
            finally:
                with self._cond:
                    self._inflight -= 1
                for item in batch:
                    item.done.set()

    def _load_scripts(self) -> None:
        self.client.script_load(APPEND)  # type: ignore[no-untyped-call]
        self.client.script_load(APPEND_BATCH)  # type: ignore[no-untyped-call]

    def _execute(self, command: Command) -> Any:
        """One command; a script Redis forgot (a restart) is loaded again."""
        try:
            return self.client.execute_command(*command)
        except redis.exceptions.NoScriptError:
            self._load_scripts()
            return self.client.execute_command(*command)

    def _plan(self, batch: list[Append]) -> list[tuple[Command, list[Append]]]:
        """The commands that send ``batch``, in order: runs of consecutive fenced appends
        become one ``append_batch`` call each."""
        plan: list[tuple[Command, list[Append]]] = []
        group: list[Append] = []

        def close_group() -> None:
            if len(group) == 1:
                plan.append((group[0].command, [group[0]]))
            elif group:
                plan.append((_batch_command([i.command for i in group]), list(group)))
            group.clear()

        for item in batch:
            if self.cross_run and _fenced(item.command):
                if group and group[0].command[7:9] != item.command[7:9]:
                    close_group()  # another lease length or maxlen: another call
                group.append(item)
            else:
                close_group()
                plan.append((item.command, [item]))
        close_group()
        return plan

    def _send(self, batch: list[Append]) -> None:
        plan = self._plan(batch)
        try:
            if len(plan) == 1:
                replies: list[Any] = [self._execute(plan[0][0])]
            else:
                pipe = self.client.pipeline(transaction=False)
                for command, _ in plan:
                    pipe.execute_command(*command)  # type: ignore[no-untyped-call]
                replies = pipe.execute(raise_on_error=False)
                if any(_no_script(reply) for reply in replies):
                    self._load_scripts()
                    for i, ((command, _), reply) in enumerate(zip(plan, replies, strict=True)):
                        if _no_script(reply):
                            replies[i] = self._execute(command)
        except Exception as exc:
            for item in batch:
                if item.id is None:
                    item.error = _own(exc) if len(batch) > 1 else exc
            return
        for (command, items), reply in zip(plan, replies, strict=True):
            if isinstance(reply, Exception):
                for item in items:
                    item.error = _own(reply) if len(items) > 1 else reply
            elif command[1] == _BATCH_SHA:
                for item, one in zip(items, reply, strict=True):
                    if str(one).startswith(LEASE_LOST):
                        item.error = redis.ResponseError(str(one))
                    else:
                        item.id = str(one)
            else:
                items[0].id = str(reply)


def _own(exc: Exception) -> Exception:
    """A copy of ``exc`` for one waiting writer (one exception object is not raised in several
    greenlets at once: each raise rewrites its traceback)."""
    try:
        clone = copy.copy(exc)
    except Exception:
        return exc
    clone.__cause__ = exc
    return clone


_writers: dict[tuple[int, int], Writer] = {}
_writers_lock = threading.Lock()


def writer_for(client: redis.Redis[str]) -> Writer:
    """This process's writer for ``client`` (a forked child makes its own)."""
    key = (os.getpid(), id(client))
    writer = _writers.get(key)
    if writer is None or writer.client is not client:
        with _writers_lock:
            writer = _writers.get(key)
            if writer is None or writer.client is not client:
                writer = _writers[key] = Writer(client)
    return writer
