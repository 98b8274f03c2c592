"""Where a running ``chatworker dev`` tells the other commands how to reach it.

``chatworker dev`` writes a small per-user state file when its stack is up (the gateway's URL,
the Redis URL and the token signing secret; mode 0600, as the secret mints tokens) and removes
it when it stops. ``chatworker chat``, ``token`` and ``runs`` read it, from any folder, for
whatever the environment leaves unset: the environment always wins.

The file is ``$CHATWORKER_STATE_DIR/dev.json``; ``CHATWORKER_STATE_DIR`` defaults to
``$XDG_STATE_HOME/chatworker``, and ``XDG_STATE_HOME`` to ``~/.local/state``.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_DIR_ENV = "CHATWORKER_STATE_DIR"


def state_dir() -> Path:
    """``$CHATWORKER_STATE_DIR``, else ``$XDG_STATE_HOME/chatworker``, else
    ``~/.local/state/chatworker``."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "chatworker"


def state_file() -> Path:
    return state_dir() / "dev.json"


@dataclass(frozen=True)
class DevState:
    """What a running ``chatworker dev`` published about itself."""

    url: str  #: the gateway's API base, e.g. ``http://127.0.0.1:8000/api/chat``
    redis_url: str
    secret: str  #: the token signing secret its workers and gateway use
    pid: int  #: the ``chatworker dev`` process


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


def read() -> DevState | None:
    """The running stack's state, or None (no file, unreadable, or its process is gone)."""
    try:
        raw = json.loads(state_file().read_text())
        state = DevState(url=str(raw["url"]), redis_url=str(raw["redis_url"]),
                         secret=str(raw["secret"]), pid=int(raw["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if pid_alive(state.pid) else None


def publish(state: DevState) -> DevState | None:
    """Write ``state`` (mode 0600, atomically). Returns the other live stack that already owns
    the file instead of overwriting it, or None when written."""
    other = read()
    if other is not None and other.pid != state.pid:
        return other
    folder = state_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = folder / f".dev.json.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(state), out)
    os.replace(tmp, state_file())
    return None


def withdraw(pid: int) -> None:
    """Remove the state file if it is the one process ``pid`` wrote."""
    path = state_file()
    try:
        owner = int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if owner == pid:
        with contextlib.suppress(OSError):
            path.unlink()


def adopt() -> DevState | None:
    """Fill what the environment leaves unset from the running stack's state file.

    ``CHATWORKER_REDIS_URL`` and ``CHATWORKER_SECRET_KEY`` come from the file only when unset;
    the file is not used at all when the environment names another Redis (it describes a
    different deployment then). Returns the state used, or None.
    """
    state = read()
    if state is None:
        return None
    env_redis = os.environ.get("CHATWORKER_REDIS_URL")
    if env_redis and env_redis != state.redis_url:
        return None
    os.environ.setdefault("CHATWORKER_REDIS_URL", state.redis_url)
    if not os.environ.get("CHATWORKER_SECRET_KEY") and state.secret:
        os.environ["CHATWORKER_SECRET_KEY"] = state.secret
    return state


def looked_for() -> str:
    """Where the commands looked for a running ``chatworker dev``, for error messages."""
    path = state_file()
    source = (f"${STATE_DIR_ENV}" if os.environ.get(STATE_DIR_ENV) else
              f"${STATE_DIR_ENV} unset, so $XDG_STATE_HOME/chatworker" if
              os.environ.get("XDG_STATE_HOME") else
              f"${STATE_DIR_ENV} and $XDG_STATE_HOME unset, so ~/.local/state/chatworker")
    if not path.exists():
        found = "no such file"
    else:
        try:
            pid = int(json.loads(path.read_text())["pid"])
            found = f"written by pid {pid}, which is no longer running"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            found = f"unreadable: {exc}"
        else:
            if pid_alive(pid):
                found = f"it names a stack (pid {pid}) on another Redis than CHATWORKER_REDIS_URL"
    return (f"no running `chatworker dev` found: looked for {path} ({source}): {found}. "
            "Start `chatworker dev`, or set CHATWORKER_REDIS_URL and CHATWORKER_SECRET_KEY")
