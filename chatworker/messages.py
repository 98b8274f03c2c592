"""Kept for compatibility: the message types now live in :mod:`chatworker.protocol.messages`."""

from .protocol.messages import *  # noqa: F403
from .protocol.messages import __all__ as __all__
