"""``chat.local``: typed, run-scoped state that survives suspension within a run.

Values live in the run's checkpoint (so they must be JSON-serialisable: a pydantic model, a
dict, a list, a scalar) and start empty in a continuation run, which is a new run.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from .driver import current_run
from .turns import current_driver

T = TypeVar("T")


class ChatLocal(Generic[T]):
    """A named slot of run-local state: ``init``, ``get``, ``update``, ``has_changed``."""

    def __init__(self, id: str, model: type[T] | None = None) -> None:
        self.id = id
        self.model = model
        self._dirty: set[str] = set()

    def _store(self) -> dict[str, Any]:
        return current_run(f"chat.local {self.id!r}").locals

    def init(self, value: T) -> None:
        """Set the value (clears the changed flag)."""
        self._store()[self.id] = value.model_dump(mode="json") if isinstance(value, BaseModel) \
            else value
        self._dirty.discard(self._run_key())

    def is_initialized(self) -> bool:
        return self.id in self._store()

    def get(self) -> T:
        """A copy of the value; raises if it was never initialised in this run."""
        store = self._store()
        if self.id not in store:
            raise LookupError(f"chat.local {self.id!r} was read before init() in this run")
        raw = store[self.id]
        if self.model is not None and issubclass(self.model, BaseModel):
            model: T = self.model.model_validate(raw)
            return model
        copied: T = _copy(raw)
        return copied

    def update(self, **fields: Any) -> None:
        """Set fields of a dict or model value (a shallow copy) and mark it changed."""
        store = self._store()
        if self.id not in store:
            raise LookupError(f"chat.local {self.id!r} was written before init() in this run")
        current = store[self.id]
        if not isinstance(current, dict):
            raise TypeError(f"chat.local {self.id!r} holds a {type(current).__name__}; use set()")
        store[self.id] = {**current, **fields}
        self._dirty.add(self._run_key())

    def set(self, value: T) -> None:
        """Replace the value and mark it changed."""
        self.init(value)
        self._dirty.add(self._run_key())

    def has_changed(self) -> bool:
        """Whether it changed since ``init`` or the last call (and reset the flag)."""
        key = self._run_key()
        changed = key in self._dirty
        self._dirty.discard(key)
        return changed

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in {"id", "model"}:
            raise AttributeError(name)
        value = self.get()
        if isinstance(value, dict):
            if name in value:
                return value[name]
            raise AttributeError(f"chat.local {self.id!r} has no field {name!r}")
        return getattr(value, name)

    def _run_key(self) -> str:
        driver = current_driver.get()
        return f"{getattr(driver, 'run_id', '')}:{self.id}"


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


def local(id: str, model: type[T] | None = None) -> ChatLocal[T]:
    """Declare run-scoped state: ``user = chat.local("user", UserContext)``."""
    return ChatLocal(id, model)
