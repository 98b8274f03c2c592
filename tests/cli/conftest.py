"""Every `chatworker` command a test here starts keeps its state (the running dev stack's state
file, the terminal client's chats) in a folder of this test session, never the user's."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    before = os.environ.get("CHATWORKER_STATE_DIR")
    os.environ["CHATWORKER_STATE_DIR"] = str(tmp_path_factory.mktemp("chatworker-state"))
    yield
    if before is None:
        os.environ.pop("CHATWORKER_STATE_DIR", None)
    else:
        os.environ["CHATWORKER_STATE_DIR"] = before
