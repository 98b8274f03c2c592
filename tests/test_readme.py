"""The README's Python examples define working chat tasks (they run on import, like user code)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from chatworker import ChatTask
from chatworker.engine import registry

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_task_examples_define_tasks_with_hooks() -> None:
    blocks = [b for b in python_blocks() if "@chat.task" in b]
    assert len(blocks) >= 4
    namespace: dict[str, Any] = {"db": SimpleNamespace(create_chat=print, save=print),
                                 "run_agent_loop": print}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # our own docs
    for task_id in ("my-chat", "agent-chat", "persisted-chat", "tuned-chat"):
        task = registry.get_task(task_id)
        assert isinstance(task, ChatTask)
    persisted = registry.get_task("persisted-chat")
    assert isinstance(persisted, ChatTask)
    assert all(persisted.hooks[h] for h in ("on_chat_start", "on_turn_start", "on_turn_complete"))
    assert persisted.client_data_schema is not None


def test_readme_documents_every_setting_the_code_reads() -> None:
    text = README.read_text()
    root = README.parent
    used: set[str] = set()
    for path in [*root.glob("chatworker/**/*.py"), root / "web" / "app.py"]:
        used |= set(re.findall(r"\"(CHATWORKER_[A-Z_]+)\"", path.read_text()))
    missing = sorted(name for name in used if f"`{name}`" not in text)
    assert not missing, f"settings read by the code but not in the README table: {missing}"
