"""Import-time fix so the ``openai`` client imports in a gevent-patched process.

``httpcore`` imports ``trio`` when it is installed, and ``trio`` fails to import once gevent has
patched ``select`` (no ``epoll``), which would break ``import openai`` in a gevent worker. trio
cannot run under gevent anyway, so it is marked unavailable there.
"""

from __future__ import annotations

import sys

__all__ = ["hide_trio_under_gevent"]


def hide_trio_under_gevent() -> None:
    """If gevent has patched ``select`` and ``trio`` cannot import, make it an ImportError."""
    if "trio" in sys.modules:
        return
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("select"):
        return
    try:
        import trio  # noqa: F401
    except ImportError:
        return
    except Exception:
        for name in [n for n in sys.modules if n == "trio" or n.startswith("trio.")]:
            del sys.modules[name]
        sys.modules["trio"] = None  # type: ignore[assignment]
