"""The demo's framework agents: importing this module registers each framework demo task whose
framework is installed, and skips the others (the demo app starts either way).

``chatworker dev`` loads it next to the demo task (``CHATWORKER_TASKS=web.demo_tasks,
web.demo_frameworks``, worker and gateway); the page then offers each registered one as an
agent for a new chat (``web.demo_api``). The tasks: ``demo-pydantic-ai`` (the ``pydantic-ai``
extra), ``demo-openai-agents`` (``openai-agents``) and ``demo-langgraph`` (``langgraph``).
"""

from __future__ import annotations

import importlib
import logging

__all__ = ["FRAMEWORK_DEMOS", "load_installed"]

log = logging.getLogger("chatworker.demo")

#: Each framework demo: its module, and the packages whose absence means "not installed".
FRAMEWORK_DEMOS: dict[str, tuple[str, ...]] = {
    "web.demo_pydantic_ai": ("pydantic_ai",),
    "web.demo_openai_agents": ("agents", "openai"),
    "web.demo_langgraph": ("langgraph", "langchain_core", "langchain_openai", "openai"),
}


def _missing_package(error: ImportError, packages: tuple[str, ...]) -> str | None:
    """The framework package whose absence caused ``error``, or None (another problem)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ModuleNotFoundError) and cause.name:
            root = cause.name.split(".")[0]
            if root in packages:
                return root
        cause = cause.__cause__
    return None


def load_installed() -> list[str]:
    """Import the framework demo modules whose framework is installed; returns their names.

    A module missing only its framework is skipped (logged); any other import error is raised,
    so a broken demo is not silently left off the page.
    """
    loaded = []
    for module, packages in FRAMEWORK_DEMOS.items():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing = _missing_package(exc, packages)
            if missing is None:
                raise
            log.info("demo: %s not loaded (%s is not installed)", module, missing)
            continue
        loaded.append(module)
    return loaded


load_installed()
