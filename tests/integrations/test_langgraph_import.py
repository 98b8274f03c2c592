"""Importing chatworker (and its integrations package) never imports LangGraph or LangChain."""

from __future__ import annotations

import subprocess
import sys


def test_importing_chatworker_imports_no_framework() -> None:
    code = (
        "import sys, chatworker, chatworker.integrations, chatworker.chat\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in "
        "('langgraph', 'langchain_core', 'langchain_openai')]\n"
        "print(loaded)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
