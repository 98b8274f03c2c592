"""Kept for compatibility: the conversion now lives in :mod:`chatworker.protocol.convert`."""

from .protocol.convert import *  # noqa: F403
from .protocol.convert import __all__ as __all__
