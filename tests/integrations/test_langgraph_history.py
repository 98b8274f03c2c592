"""``to_langchain_messages``: a chat's UI messages as the LangChain messages a graph is given."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core", reason="LangGraph is not installed (extra 'langgraph')")

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from chatworker.integrations.langgraph_history import to_langchain_messages


def test_every_kind_of_part_has_its_place() -> None:
    messages = to_langchain_messages([
        {"id": "s", "role": "system", "parts": [{"type": "text", "text": "Be brief."}]},
        {"id": "u", "role": "user", "parts": [
            {"type": "text", "text": "What is this?"},
            {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,iVBOR"},
            {"type": "file", "mediaType": "application/pdf", "filename": "a.pdf",
             "url": "https://example.com/a.pdf"},
        ]},
        {"id": "a", "role": "assistant", "parts": [
            {"type": "step-start"},
            {"type": "reasoning", "text": "Look first."},
            {"type": "tool-look", "toolCallId": "c1", "state": "output-error",
             "input": {"at": "image"}, "errorText": "camera off"},
            {"type": "step-start"},
            {"type": "text", "text": "I could not look."},
        ]},
    ])
    system, human, call, result, answer = messages
    assert isinstance(system, SystemMessage) and system.content == "Be brief."
    assert isinstance(human, HumanMessage)
    assert human.content == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "base64": "iVBOR", "mime_type": "image/png"},
        {"type": "file", "url": "https://example.com/a.pdf", "mime_type": "application/pdf",
         "filename": "a.pdf"},
    ]
    assert isinstance(call, AIMessage)
    assert call.tool_calls == [{"name": "look", "args": {"at": "image"}, "id": "c1",
                                "type": "tool_call"}]
    assert call.additional_kwargs == {"reasoning_content": "Look first."}
    assert isinstance(result, ToolMessage)
    assert (result.tool_call_id, result.status, result.content) == ("c1", "error", "camera off")
    assert isinstance(answer, AIMessage) and answer.content == "I could not look."
