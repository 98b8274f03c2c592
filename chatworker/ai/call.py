"""One streaming model request, abortable at any moment from any thread or greenlet.

The response is read on a helper thread (a greenlet under gevent monkey-patching) that feeds a
queue, so the consumer never blocks on the network: when the abort signal fires, the consumer
wakes at once and the HTTP connection is shut down, which also unblocks the reader.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from chatworker.signals import AbortSignal

__all__ = ["OPENED", "ModelCall"]

log = logging.getLogger("chatworker.ai")

OPENED = object()
"""Yielded once by :class:`ModelCall` when the response headers have arrived."""

_CHUNK, _OPEN, _END, _ERROR, _ABORT = range(5)

_MAX_MERGE = 64
"""At most this many queued chunks become one, so a long backlog still streams in steps."""


class ModelCall:
    """Runs ``open_stream()`` and iterates it on a helper thread; iterate this for the chunks.

    Iteration yields :data:`OPENED`, then each stream item; it raises what the request raised,
    and ends early (with ``aborted`` set) when ``signal`` fires.

    With ``merge(a, b)`` (one item for ``a`` then ``b``, or None), chunks already queued behind
    the one taken are merged into it: under load each item costs a full trip downstream, so a
    backlog goes out as fewer, larger items. Nothing waits for more, so an idle process adds no
    delay.
    """

    def __init__(
        self,
        open_stream: Callable[[], Any],
        signal: AbortSignal | None,
        merge: Callable[[Any, Any], Any | None] | None = None,
    ) -> None:
        self._open_stream = open_stream
        self._signal = signal
        self._merge = merge
        self._queue: queue.Queue[tuple[int, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._cancelled = False
        self._finished = False
        self.aborted = False

    def __iter__(self) -> Iterator[Any]:
        remove: Callable[[], None] = _noop
        if self._signal is not None:
            remove = self._signal.add_listener(self._on_abort)
        try:
            if self.aborted:
                return
            reader = threading.Thread(target=self._read, name="chatworker-model-call", daemon=True)
            reader.start()
            held: tuple[int, Any] | None = None  # taken from the queue while merging, not merged
            while True:
                if held is None:
                    kind, value = self._queue.get()
                else:
                    (kind, value), held = held, None
                if kind == _ABORT:
                    return
                if kind == _CHUNK:
                    if self._merge is not None:
                        value, held = self._merge_queued(value, self._merge)
                    yield value
                elif kind == _OPEN:
                    yield OPENED
                elif kind == _END:
                    self._finished = True
                    return
                else:
                    self._finished = True
                    raise value
        finally:
            remove()
            if not self._finished:
                self.cancel()

    def _merge_queued(
        self, first: Any, merge: Callable[[Any, Any], Any | None]
    ) -> tuple[Any, tuple[int, Any] | None]:
        """Merge the chunks already queued behind ``first`` into it, without waiting.

        Returns the merged item and the queue entry that ended the merge, if one was taken.
        """
        merged = first
        for _ in range(_MAX_MERGE - 1):
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            kind, value = entry
            combined = merge(merged, value) if kind == _CHUNK else None
            if combined is None:
                return merged, entry
            merged = combined
        return merged, None

    def cancel(self) -> None:
        """Stop reading: wake the consumer and shut the HTTP connection down (thread-safe)."""
        with self._lock:
            self._cancelled = True
            stream = self._stream
        self._queue.put((_ABORT, None))
        if stream is not None:
            _shutdown(stream)

    def _on_abort(self, _reason: Any) -> None:
        self.aborted = True
        self.cancel()

    def _read(self) -> None:
        stream: Any = None
        try:
            stream = self._open_stream()
            with self._lock:
                self._stream = stream
                cancelled = self._cancelled
            if cancelled:
                _shutdown(stream)
                return
            self._queue.put((_OPEN, None))
            for item in stream:
                if self._cancelled:
                    return
                self._queue.put((_CHUNK, item))
            self._queue.put((_END, None))
        except Exception as exc:
            if self._cancelled:
                log.debug("model call ended after cancel: %r", exc)
            else:
                self._queue.put((_ERROR, exc))
        except BaseException:  # the reader was killed (e.g. GreenletExit): unblock the consumer
            self._queue.put((_ERROR, RuntimeError("the model call was interrupted")))
            raise
        finally:
            if stream is not None:
                try:
                    stream.close()
                except Exception:
                    log.debug("closing the model stream failed", exc_info=True)


def _shutdown(stream: Any) -> None:
    """Close the connection under ``stream`` now, even while another thread reads from it."""
    response = getattr(stream, "response", None)
    network = getattr(response, "extensions", {}).get("network_stream") if response else None
    sock = None
    if network is not None:
        try:
            sock = network.get_extra_info("socket")
        except Exception:
            sock = None
    if isinstance(sock, socket.socket):
        try:
            # shutdown (unlike close) wakes a recv() blocked in another thread
            sock.shutdown(socket.SHUT_RDWR)
            return
        except OSError:
            log.debug("socket shutdown failed", exc_info=True)
    try:
        stream.close()
    except Exception:
        log.debug("closing the model stream failed", exc_info=True)


def _noop() -> None:
    return None
