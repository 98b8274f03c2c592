"""Importing chatworker never imports an agent framework: each is an optional extra."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = ("pydantic_ai", "agents", "langgraph", "langchain_core")


def test_importing_chatworker_and_its_integrations_package_imports_no_framework() -> None:
    code = (
        "import sys, chatworker, chatworker.chat, chatworker.runs, chatworker.integrations\n"
        f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
