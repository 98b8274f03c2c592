"""AbortSignal and AbortController: Python's missing cancellation token.

Everything that streams in chatworker takes a signal and stops promptly when it fires. Built on
``threading`` primitives, so it works in a prefork child (real threads) and under gevent (where
``threading`` is monkey-patched into greenlet-friendly versions).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .errors import AbortError

log = logging.getLogger("chatworker.signals")

Listener = Callable[[Any], object]


class AbortSignal:
    """A one-shot flag with a reason and listeners, set by its :class:`AbortController`."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.reason: Any = None

    @property
    def aborted(self) -> bool:
        """True once the signal has fired."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the signal fires or ``timeout`` seconds pass; True if it fired."""
        return self._event.wait(timeout)

    def throw_if_aborted(self) -> None:
        """Raise :class:`AbortError` carrying the reason if the signal has fired."""
        if self.aborted:
            raise AbortError(str(self.reason) if self.reason is not None else "aborted")

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(reason)`` when the signal fires (at once if it already has).

        Returns a function that removes the listener.
        """
        with self._lock:
            if not self.aborted:
                self._listeners.append(listener)
                return lambda: self.remove_listener(listener)
        _call(listener, self.reason)
        return lambda: None

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            try:
                self._listeners.remove(listener)
            except ValueError:
                pass

    def _fire(self, reason: Any) -> bool:
        with self._lock:
            if self.aborted:
                return False
            self.reason = reason
            self._event.set()
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            _call(listener, reason)
        return True

    @staticmethod
    def any(signals: Iterable[AbortSignal]) -> AbortSignal:
        """A signal that fires when any of ``signals`` fires, with that signal's reason."""
        controller = AbortController()
        for signal in signals:
            signal.add_listener(controller.abort)
        return controller.signal

    @staticmethod
    def timeout(seconds: float) -> AbortSignal:
        """A signal that fires after ``seconds``."""
        controller = AbortController()
        timer = threading.Timer(seconds, controller.abort, args=("timeout",))
        timer.daemon = True
        timer.start()
        return controller.signal

    def __repr__(self) -> str:
        return f"<AbortSignal aborted={self.aborted} reason={self.reason!r}>"


def _call(listener: Listener, reason: Any) -> None:
    try:
        listener(reason)
    except Exception:
        log.exception("abort listener %r failed", listener)


class AbortController:
    """Owns an :class:`AbortSignal` and fires it with :meth:`abort`."""

    def __init__(self) -> None:
        self.signal = AbortSignal()

    def abort(self, reason: Any = "aborted") -> bool:
        """Fire the signal; returns False if it had already fired."""
        return self.signal._fire(reason)


def any_signal(signals: Iterable[AbortSignal | None]) -> AbortSignal:
    """Like :meth:`AbortSignal.any`, skipping ``None``."""
    return AbortSignal.any(s for s in signals if s is not None)
