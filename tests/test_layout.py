"""The package's shape: every module imports on its own, and none outgrows one concept."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import chatworker

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(chatworker.__path__, "chatworker.")
    if not m.name.endswith("__main__") and m.name != "chatworker.worker"  # entry points
)


@pytest.mark.parametrize("name", MODULES)
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_no_module_is_over_500_lines() -> None:
    root = Path(chatworker.__file__).parent
    long = {
        str(path.relative_to(root)): n
        for path in root.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 500
    }
    assert not long, f"split these by concept: {long}"
