"""Fold a UI message chunk stream into the assistant ``UIMessage`` (a port of the AI SDK's
``processUIMessageStream``), so the server keeps exactly what the browser shows.

State is kept as plain dicts (this runs for every streamed chunk); the pydantic message is
built only when :attr:`MessageAssembler.message` is read.  Out-of-order chunks never raise.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from .chunks import CHUNK_MODELS
from .messages import UIMessage, dump, parse_ui_message
from .partial_json import parse_partial_json

__all__ = ["MessageAssembler", "merge_objects"]

log = logging.getLogger(__name__)

Part = dict[str, Any]

_MISSING: Any = object()


def merge_objects(base: Any, overrides: Any) -> Any:
    """Deep-merge ``overrides`` into ``base`` (new dicts; lists and scalars are replaced)."""
    if base is None:
        return overrides
    if overrides is None:
        return base
    if not isinstance(base, dict) or not isinstance(overrides, dict):
        return overrides
    result = dict(base)
    for key, value in overrides.items():
        current = result.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            result[key] = merge_objects(current, value)
        else:
            result[key] = value
    return result


# ------------------------------------------------------------------------------ assembler


def _is_tool(part: Part) -> bool:
    kind = str(part.get("type", ""))
    return kind == "dynamic-tool" or (kind.startswith("tool-") and kind != "tool-invocation")


class MessageAssembler:
    """Builds the assistant message from UI message chunks, as the AI SDK client does.

    Records ``finish_reason``, ``error_text`` (last ``error`` chunk) and ``aborted``; control
    chunks (type ``__…``) are ignored.  ``previous`` continues an existing assistant message.
    """

    def __init__(
        self, message_id: str | None = None, *, previous: UIMessage | dict[str, Any] | None = None
    ) -> None:
        self.message_id: str = message_id or ""
        self.metadata: Any = None
        self.finish_reason: str | None = None
        self.error_text: str | None = None
        self.aborted: bool = False
        self.abort_reason: str | None = None
        self.chunk_count: int = 0
        self._parts: list[Part] = []
        self._active_text: dict[str, Part] = {}
        self._active_reasoning: dict[str, Part] = {}
        # toolCallId -> {"pieces": [input text deltas], "toolName", "dynamic", "encoding"}
        self._partial_tools: dict[str, dict[str, Any]] = {}
        self._step_tools: dict[str, Part] = {}  # tool parts of the current step
        self._all_tools: dict[str, Part] = {}  # latest tool part per toolCallId
        self._data_parts: dict[tuple[str, str], Part] = {}
        self._dirty_inputs: set[str] = set()
        # text/reasoning deltas not yet joined into their part: id(part) -> (part, pieces)
        self._pending_text: dict[int, tuple[Part, list[str]]] = {}
        if previous is not None:
            self._load(parse_ui_message(previous))

    def _load(self, previous: UIMessage) -> None:
        data = dump(previous)
        if not self.message_id:
            self.message_id = data["id"]
        self.metadata = data.get("metadata")
        self._parts = data.get("parts", [])
        for part in self._parts:
            if _is_tool(part) and isinstance(part.get("toolCallId"), str):
                self._all_tools[part["toolCallId"]] = part
                self._step_tools[part["toolCallId"]] = part
            elif part.get("type") == "step-start":
                self._step_tools = {}
            elif part.get("type", "").startswith("data-") and isinstance(part.get("id"), str):
                self._data_parts[(part["type"], part["id"])] = part

    # ----------------------------------------------------------------------------- output

    def to_dict(self) -> dict[str, Any]:
        """The message so far as a JSON-ready dict (a deep copy, safe to keep)."""
        self._flush_text()
        self._materialise_inputs()
        result: dict[str, Any] = {"id": self.message_id, "role": "assistant"}
        if self.metadata is not None:
            result["metadata"] = copy.deepcopy(self.metadata)
        result["parts"] = copy.deepcopy(self._parts)
        return result

    @property
    def message(self) -> UIMessage:
        """The message so far as a :class:`UIMessage` (built on each read)."""
        return UIMessage.model_validate(self.to_dict())

    def _flush_text(self) -> None:
        for part, pieces in self._pending_text.values():
            part["text"] += "".join(pieces)
        self._pending_text.clear()

    def _materialise_inputs(self) -> None:
        for call_id in self._dirty_inputs:
            partial = self._partial_tools.get(call_id)
            part = self._all_tools.get(call_id)
            if partial is None or part is None or part.get("state") != "input-streaming":
                continue
            pieces: list[str] = partial["pieces"]
            text = "".join(pieces)
            pieces[:] = [text]
            part["rawInput"] = text
            value = text if partial.get("encoding") == "text" else parse_partial_json(text)
            if value is None:
                part.pop("input", None)
            else:
                part["input"] = value
        self._dirty_inputs.clear()

    # ------------------------------------------------------------------------------ input

    def feed(self, chunk: dict[str, Any]) -> None:
        """Apply one chunk (a JSON dict as sent on the wire; chunk models are dumped first)."""
        self.chunk_count += 1
        if not isinstance(chunk, dict):
            chunk = dump(chunk) if isinstance(chunk, BaseModel) else {}
        kind = chunk.get("type")
        if not isinstance(kind, str):
            log.debug("assembler: chunk without a type ignored: %r", chunk)
            return
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, chunk)
        elif kind.startswith("data-"):
            self._data(kind, chunk)
        elif not kind.startswith("__"):
            log.debug("assembler: unknown chunk type %r ignored", kind)

    def _start(self, chunk: dict[str, Any]) -> None:
        message_id = chunk.get("messageId")
        if isinstance(message_id, str) and message_id:
            self.message_id = message_id
        self._merge_metadata(chunk.get("messageMetadata"))

    def _merge_metadata(self, metadata: Any) -> None:
        if metadata is not None:
            self.metadata = merge_objects(self.metadata, metadata)

    def _start_step(self, chunk: dict[str, Any]) -> None:
        self._parts.append({"type": "step-start"})
        self._step_tools = {}

    def _steering_message(self, chunk: dict[str, Any]) -> None:
        parts = chunk.get("parts")
        self._parts.append({"type": "steering-message", "id": chunk.get("id", ""),
                            "parts": copy.deepcopy(parts) if isinstance(parts, list) else []})

    def _finish_step(self, chunk: dict[str, Any]) -> None:
        self._active_text = {}
        self._active_reasoning = {}

    def _finish(self, chunk: dict[str, Any]) -> None:
        reason = chunk.get("finishReason")
        if reason is not None:
            self.finish_reason = reason
        self._merge_metadata(chunk.get("messageMetadata"))

    def _message_metadata(self, chunk: dict[str, Any]) -> None:
        self._merge_metadata(chunk.get("messageMetadata"))

    def _error(self, chunk: dict[str, Any]) -> None:
        text = chunk.get("errorText")
        self.error_text = text if isinstance(text, str) else str(text)

    def _abort(self, chunk: dict[str, Any]) -> None:
        self.aborted = True
        reason = chunk.get("reason")
        if isinstance(reason, str):
            self.abort_reason = reason

    # text and reasoning

    def _open(self, kind: str, active: dict[str, Part], chunk: dict[str, Any]) -> Part:
        part: Part = {"type": kind, "text": "", "state": "streaming"}
        metadata = chunk.get("providerMetadata")
        if metadata is not None:
            part["providerMetadata"] = metadata
        active[chunk.get("id", "")] = part
        self._parts.append(part)
        return part

    def _active(self, kind: str, active: dict[str, Part], chunk: dict[str, Any]) -> Part:
        part = active.get(chunk.get("id", ""))
        if part is None:
            log.debug("assembler: %s for unknown part id %r", chunk.get("type"), chunk.get("id"))
            part = self._open(kind, active, chunk)
        return part

    def _text_start(self, chunk: dict[str, Any]) -> None:
        self._open("text", self._active_text, chunk)

    def _reasoning_start(self, chunk: dict[str, Any]) -> None:
        part = self._open("reasoning", self._active_reasoning, chunk)
        if "id" in chunk:
            part["id"] = chunk["id"]  # the AI SDK keeps the id on reasoning parts (not on text)

    def _delta(self, part: Part, chunk: dict[str, Any]) -> None:
        delta = chunk.get("delta")
        if isinstance(delta, str) and delta:
            entry = self._pending_text.get(id(part))
            if entry is None:
                self._pending_text[id(part)] = (part, [delta])
            else:
                entry[1].append(delta)
        metadata = chunk.get("providerMetadata")
        if metadata is not None:
            part["providerMetadata"] = metadata

    def _text_delta(self, chunk: dict[str, Any]) -> None:
        self._delta(self._active("text", self._active_text, chunk), chunk)

    def _reasoning_delta(self, chunk: dict[str, Any]) -> None:
        self._delta(self._active("reasoning", self._active_reasoning, chunk), chunk)

    def _end(self, active: dict[str, Part], chunk: dict[str, Any]) -> None:
        part = active.pop(chunk.get("id", ""), None)
        if part is None:
            log.debug("assembler: %s for unknown part id %r", chunk.get("type"), chunk.get("id"))
            return
        entry = self._pending_text.pop(id(part), None)
        if entry is not None:
            part["text"] += "".join(entry[1])
        part["state"] = "done"
        metadata = chunk.get("providerMetadata")
        if metadata is not None:
            part["providerMetadata"] = metadata

    def _text_end(self, chunk: dict[str, Any]) -> None:
        self._end(self._active_text, chunk)

    def _reasoning_end(self, chunk: dict[str, Any]) -> None:
        self._end(self._active_reasoning, chunk)

    # sources, files, data

    def _push(self, chunk: dict[str, Any], keys: tuple[str, ...]) -> None:
        part: Part = {"type": chunk["type"]}
        for key in keys:
            value = chunk.get(key)
            if value is not None:
                part[key] = value
        self._parts.append(part)

    def _source_url(self, chunk: dict[str, Any]) -> None:
        self._push(chunk, ("sourceId", "url", "title", "providerMetadata"))

    def _source_document(self, chunk: dict[str, Any]) -> None:
        self._push(chunk, ("sourceId", "mediaType", "title", "filename", "providerMetadata"))

    def _file(self, chunk: dict[str, Any]) -> None:
        self._push(chunk, ("mediaType", "url", "providerMetadata"))

    def _data(self, kind: str, chunk: dict[str, Any]) -> None:
        if chunk.get("transient"):
            return
        data_id = chunk.get("id")
        if isinstance(data_id, str):
            existing = self._data_parts.get((kind, data_id))
            if existing is not None:
                existing["data"] = chunk.get("data")
                return
        part: Part = {
            k: v for k, v in chunk.items() if k != "transient" and (v is not None or k == "data")
        }
        part.setdefault("data", None)
        if isinstance(data_id, str):
            self._data_parts[(kind, data_id)] = part
        self._parts.append(part)

    # tools

    def _update_tool(
        self,
        call_id: str,
        tool_name: str,
        dynamic: bool,
        state: str,
        values: dict[str, Any],
        chunk: dict[str, Any],
        existing: Part | None = None,
    ) -> Part:
        """``updateToolPart`` / ``updateDynamicToolPart``: ``values`` holds the keys that are
        set (input, output, errorText, preliminary); the others are cleared."""
        part = existing
        if part is None:
            found = self._step_tools.get(call_id)
            if found is not None and (found["type"] == "dynamic-tool") == dynamic:
                part = found
        provider_executed = chunk.get("providerExecuted")
        metadata = chunk.get("providerMetadata")
        is_result = state in ("output-available", "output-error")
        if part is None:
            part = {"type": "dynamic-tool", "toolName": tool_name} if dynamic else {}
            if not dynamic:
                part["type"] = f"tool-{tool_name}"
            part["toolCallId"] = call_id
            part["state"] = state
            self._parts.append(part)
            self._step_tools[call_id] = part
        else:
            part["state"] = state
            if dynamic:
                part["toolName"] = tool_name
            for key in ("input", "output", "errorText", "preliminary", "rawInput"):
                part.pop(key, None)
        self._all_tools[call_id] = part
        title = chunk.get("title")
        if title is not None:
            part["title"] = title
        tool_metadata = chunk.get("toolMetadata")
        if tool_metadata is not None:
            part["toolMetadata"] = tool_metadata
        for key, value in values.items():
            if value is not _MISSING:
                part[key] = value
        if provider_executed is not None:
            part["providerExecuted"] = provider_executed
        if metadata is not None:
            part["resultProviderMetadata" if is_result else "callProviderMetadata"] = metadata
        return part

    def _tool_input_start(self, chunk: dict[str, Any]) -> None:
        call_id = chunk.get("toolCallId", "")
        name = chunk.get("toolName") or "unknown"
        dynamic = bool(chunk.get("dynamic"))
        self._partial_tools[call_id] = {
            "pieces": [],
            "toolName": name,
            "dynamic": dynamic,
            "encoding": chunk.get("inputEncoding"),
        }
        self._dirty_inputs.discard(call_id)
        self._update_tool(call_id, name, dynamic, "input-streaming", {}, chunk)

    def _tool_input_delta(self, chunk: dict[str, Any]) -> None:
        call_id = chunk.get("toolCallId", "")
        partial = self._partial_tools.get(call_id)
        if partial is None:
            log.debug("assembler: tool-input-delta without tool-input-start for %r", call_id)
            name = chunk.get("toolName")
            partial = {"pieces": [], "toolName": name, "dynamic": bool(chunk.get("dynamic"))}
            self._partial_tools[call_id] = partial
            if isinstance(name, str):
                self._update_tool(call_id, name, partial["dynamic"], "input-streaming", {}, {})
        delta = chunk.get("inputTextDelta")
        if isinstance(delta, str):
            partial["pieces"].append(delta)
        part = self._all_tools.get(call_id)
        if part is not None and part.get("state") == "input-streaming":
            self._dirty_inputs.add(call_id)

    def _chunk_is_dynamic(self, chunk: dict[str, Any], call_id: str) -> bool:
        existing = self._step_tools.get(call_id)
        if existing is not None:
            return bool(existing["type"] == "dynamic-tool")
        return bool(chunk.get("dynamic"))

    def _tool_input_available(self, chunk: dict[str, Any]) -> None:
        call_id = chunk.get("toolCallId", "")
        self._dirty_inputs.discard(call_id)
        self._update_tool(
            call_id,
            chunk.get("toolName") or "unknown",
            bool(chunk.get("dynamic")),
            "input-available",
            {"input": chunk.get("input", _MISSING)},
            chunk,
        )

    def _tool_input_error(self, chunk: dict[str, Any]) -> None:
        call_id = chunk.get("toolCallId", "")
        self._dirty_inputs.discard(call_id)
        self._update_tool(
            call_id,
            chunk.get("toolName") or "unknown",
            self._chunk_is_dynamic(chunk, call_id),
            "output-error",
            {"input": chunk.get("input", _MISSING), "errorText": chunk.get("errorText", "")},
            chunk,
        )

    def _find_tool(self, chunk: dict[str, Any]) -> Part | None:
        call_id = chunk.get("toolCallId", "")
        part = self._step_tools.get(call_id) or self._all_tools.get(call_id)
        if part is None:
            log.debug("assembler: %s for unknown tool call %r", chunk.get("type"), call_id)
            name = chunk.get("toolName")
            if isinstance(name, str) and name:
                dynamic = bool(chunk.get("dynamic"))
                return self._update_tool(call_id, name, dynamic, "input-available", {}, {})
        return part

    def _tool_output(self, chunk: dict[str, Any], state: str, values: dict[str, Any]) -> None:
        part = self._find_tool(chunk)
        if part is None:
            return
        call_id = part["toolCallId"]
        self._dirty_inputs.discard(call_id)
        dynamic = part["type"] == "dynamic-tool"
        name = part["toolName"] if dynamic else part["type"][len("tool-") :]
        values = {"input": part.get("input", _MISSING), **values}
        self._update_tool(call_id, name, dynamic, state, values, chunk, existing=part)

    def _tool_output_available(self, chunk: dict[str, Any]) -> None:
        self._tool_output(
            chunk,
            "output-available",
            {"output": chunk.get("output"), "preliminary": chunk.get("preliminary", _MISSING)},
        )

    def _tool_output_error(self, chunk: dict[str, Any]) -> None:
        self._tool_output(chunk, "output-error", {"errorText": chunk.get("errorText", "")})

    def _tool_output_denied(self, chunk: dict[str, Any]) -> None:
        part = self._find_tool(chunk)
        if part is not None:
            part["state"] = "output-denied"

    def _tool_approval_request(self, chunk: dict[str, Any]) -> None:
        part = self._find_tool(chunk)
        if part is None:
            return
        part["state"] = "approval-requested"
        approval: dict[str, Any] = {"id": chunk.get("approvalId", "")}
        for source, target in (("approvalDescriptor", "descriptor"), ("signature", "signature")):
            if chunk.get(source) is not None:
                approval[target] = chunk[source]
        part["approval"] = approval


# chunk type "text-start" -> MessageAssembler._text_start, for every client-facing chunk type
_HANDLERS: dict[str, Callable[[MessageAssembler, dict[str, Any]], None]] = {
    kind: getattr(MessageAssembler, "_" + kind.replace("-", "_")) for kind in CHUNK_MODELS
}
