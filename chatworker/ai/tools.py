"""Tools the model may call: definitions, argument validation and execution (sync or async)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from chatworker.loops import run_sync
from chatworker.signals import AbortSignal

__all__ = [
    "InvalidToolInputError",
    "NoSuchToolError",
    "StopCondition",
    "Tool",
    "ToolCallOptions",
    "ToolExecutionError",
    "step_count_is",
    "tool",
]


@dataclass(frozen=True)
class ToolCallOptions:
    """Passed as the second argument to an ``execute`` that accepts two parameters."""

    tool_call_id: str
    messages: list[dict[str, Any]]
    abort_signal: AbortSignal | None = None


@dataclass
class Tool:
    """A tool the model can call; without ``execute`` it is answered by the client."""

    description: str | None
    parameters: type[BaseModel] | dict[str, Any]
    execute: Callable[..., Any] | None = None
    needs_approval: bool | Callable[..., Any] = False
    """True, or a (sync or ``async def``) function of the validated arguments (and optionally
    the :class:`ToolCallOptions`) saying whether this call waits for the user's approval."""
    _wants_options: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.execute is not None:
            self._wants_options = _positional_arity(self.execute) >= 2

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as sent to the model."""
        if isinstance(self.parameters, dict):
            return self.parameters
        return self.parameters.model_json_schema()

    def parse_input(self, value: Any) -> Any:
        """Validate decoded JSON arguments: a model instance, or the dict for a JSON schema."""
        if isinstance(self.parameters, dict):
            if not isinstance(value, dict):
                raise TypeError(f"tool arguments must be a JSON object, got {type(value).__name__}")
            return value
        return self.parameters.model_validate(value)

    def requires_approval(self, args: Any, options: ToolCallOptions) -> bool:
        """Whether this call must wait for the user's approval (``needs_approval``'s answer)."""
        check = self.needs_approval
        if not callable(check):
            return bool(check)
        result = check(args, options) if _positional_arity(check) >= 2 else check(args)
        if inspect.isawaitable(result):
            result = run_sync(result)  # on the run's event loop (see chatworker.loops)
        return bool(result)

    def run(self, args: Any, options: ToolCallOptions) -> Any:
        """Call ``execute`` (awaiting it if it is a coroutine function) and return its result."""
        if self.execute is None:
            raise RuntimeError("this tool has no execute function; the client answers it")
        result = self.execute(args, options) if self._wants_options else self.execute(args)
        if inspect.isawaitable(result):
            result = run_sync(result)  # on the run's event loop (see chatworker.loops)
        return result


def tool(
    *,
    description: str | None = None,
    parameters: type[BaseModel] | dict[str, Any],
    execute: Callable[..., Any] | None = None,
    needs_approval: bool | Callable[..., Any] = False,
) -> Tool:
    """Define a tool; ``parameters`` is a pydantic model class or a JSON schema dict.

    With ``needs_approval`` (True, or a sync or ``async def`` function of the validated
    arguments returning whether this call needs it) a call is not executed when the model makes
    it: ``stream_text`` streams a ``tool-approval-request`` and ends the turn, and executes the
    call (or tells the model it was denied) once the user's answer comes back in the history.
    """
    return Tool(description=description, parameters=parameters, execute=execute,
                needs_approval=needs_approval)


StopCondition = Callable[[Sequence[Any]], bool]


def step_count_is(count: int) -> StopCondition:
    """Stop condition for ``stream_text(stop_when=...)``: stop once ``count`` steps have run."""

    def condition(steps: Sequence[Any]) -> bool:
        return len(steps) >= count

    return condition


class NoSuchToolError(Exception):
    """The model called a tool that was not offered."""

    def __init__(self, tool_name: str, available: Sequence[str]) -> None:
        names = ", ".join(available) or "none"
        super().__init__(f"Model tried to call unavailable tool '{tool_name}'. Available: {names}.")
        self.tool_name = tool_name


class InvalidToolInputError(Exception):
    """The model's arguments for a tool were not valid JSON or failed the parameter schema."""

    def __init__(self, tool_name: str, raw_input: str, cause: Exception) -> None:
        super().__init__(f"Invalid input for tool '{tool_name}': {_short(cause)}")
        self.tool_name = tool_name
        self.raw_input = raw_input
        self.__cause__ = cause


class ToolExecutionError(Exception):
    """A tool's ``execute`` raised; ``__cause__`` is the original exception."""

    def __init__(self, tool_name: str, tool_call_id: str, cause: BaseException) -> None:
        super().__init__(f"Tool '{tool_name}' failed: {_short(cause)}")
        self.tool_name = tool_name
        self.tool_call_id = tool_call_id
        self.__cause__ = cause


def parse_tool_input(
    tools: dict[str, Tool] | None, tool_name: str, raw: str
) -> tuple[Tool, Any, Any]:
    """Decode and validate a tool call's raw JSON; returns (tool, JSON input, validated args)."""
    found = (tools or {}).get(tool_name)
    if found is None:
        raise NoSuchToolError(tool_name, list(tools or {}))
    try:
        decoded = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise InvalidToolInputError(tool_name, raw, exc) from exc
    try:
        return found, decoded, found.parse_input(decoded)
    except (ValidationError, TypeError) as exc:
        raise InvalidToolInputError(tool_name, raw, exc) from exc


def to_jsonable(value: Any) -> Any:
    """Turn a tool result into JSON-ready data (pydantic models dumped, unknown objects str'd)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    try:
        return json.loads(json.dumps(value, default=_default))
    except (TypeError, ValueError):
        return str(value)


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _positional_arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in kinds)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."
