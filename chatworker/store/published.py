"""Output stream entries as they are published: every append to an output stream also
publishes the entry, so that a reader is told of new entries instead of polling for them.

The append (``xadd()`` in ``lua/prelude.lua``) publishes ``<entry id>\\n<chunk json>`` on the
stream's :func:`channel_of`, in the same script, right after the ``XADD``: an entry is always
in the stream before anyone hears of it, so a reader that missed a message (it was not yet
subscribed, or its connection broke) finds the entry by reading the stream after its cursor.
"""

from __future__ import annotations

from . import keys
from .entry_ids import RawEntry

__all__ = ["channel_of", "parse", "wake_channel"]


def channel_of(run_id: str) -> str:
    """The Pub/Sub channel the entries of ``run_id``'s output stream are published on."""
    return keys.output_channel(run_id)


def parse(message: str) -> RawEntry:
    """One published message → ``(entry id, chunk JSON text)``."""
    entry_id, _, body = message.partition("\n")
    return entry_id, body


def wake_channel(hub_id: str) -> str:
    """The channel that wakes the hub reader named ``hub_id`` (see :func:`keys.hub_wake`)."""
    return keys.hub_wake(hub_id)
