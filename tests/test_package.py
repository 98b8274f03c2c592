"""The package's import paths, as the README uses them, in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

from .support import ROOT


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


def test_flask_blueprint_after_a_bare_import_chatworker() -> None:
    done = _fresh(
        "import flask, chatworker\n"
        "app = flask.Flask('host')\n"
        "app.register_blueprint(chatworker.flask.chat_blueprint())\n"
        "print(sorted(r.rule for r in app.url_map.iter_rules())[0])\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("/api/chat")


def test_importing_chatworker_does_not_load_the_gateway() -> None:
    done = _fresh("import sys, chatworker\nprint('chatworker.gateway' in sys.modules)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_unknown_attributes_still_raise() -> None:
    done = _fresh("import chatworker\nchatworker.nope\n")
    assert done.returncode != 0 and "has no attribute 'nope'" in done.stderr
