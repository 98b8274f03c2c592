"""MessageAccumulator: history replace/append/upsert per turn, responses, model messages."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest

import chatworker.protocol.accumulator as accumulator_module
from chatworker.protocol.accumulator import MessageAccumulator, generate_id
from chatworker.protocol.messages import UIMessage, dump, dump_all


def user(mid: str, text: str) -> dict[str, Any]:
    return {"id": mid, "role": "user", "parts": [{"type": "text", "text": text}]}


def reply(mid: str, text: str, **extra: Any) -> dict[str, Any]:
    part = {"type": "text", "text": text, "state": "done", **extra}
    return {"id": mid, "role": "assistant", "parts": [{"type": "step-start"}, part]}


def ids(messages: list[UIMessage]) -> list[str]:
    return [m.id for m in messages]


def test_generate_id() -> None:
    values = {generate_id() for _ in range(200)}
    assert len(values) == 200
    allowed = set(string.ascii_letters + string.digits)
    for value in values:
        assert len(value) == 16
        assert set(value) <= allowed


def test_turn_zero_replaces_history_and_new_is_last_message() -> None:
    acc = MessageAccumulator([user("old", "stale")])
    models = acc.add_incoming(
        [user("u1", "hi"), reply("a1", "hello"), user("u2", "more")], "submit-message", 0
    )
    assert ids(acc.ui_messages) == ["u1", "a1", "u2"]
    assert ids(acc.new_ui_messages) == ["u2"]
    assert [dump(m) for m in models] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
        {"role": "user", "content": [{"type": "text", "text": "more"}]},
    ]
    assert dump_all(acc.new_model_messages) == [
        {"role": "user", "content": [{"type": "text", "text": "more"}]}
    ]


def test_submit_appends_and_resets_new_messages() -> None:
    acc = MessageAccumulator()
    acc.add_incoming([user("u1", "hi")], "submit-message", 0)
    acc.add_response(reply("a1", "hello"))
    assert ids(acc.new_ui_messages) == ["u1", "a1"]
    acc.add_incoming([user("u2", "again")], "submit-message", 1)
    assert ids(acc.ui_messages) == ["u1", "a1", "u2"]
    assert ids(acc.new_ui_messages) == ["u2"]
    acc.add_response(reply("a2", "sure"))
    assert ids(acc.new_ui_messages) == ["u2", "a2"]
    assert [m.role for m in acc.new_model_messages] == ["user", "assistant"]
    assert len(acc.model_messages) == 4


def test_resubmitted_message_is_upserted_in_place() -> None:
    acc = MessageAccumulator()
    pending_tool = {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {"type": "tool-ask", "toolCallId": "c1", "state": "input-available", "input": {}},
        ],
    }
    acc.add_incoming([user("u1", "delete it?")], "submit-message", 0)
    acc.add_response(pending_tool)
    # the client answers the tool and resubmits the same assistant message
    answered = json.loads(json.dumps(pending_tool))
    answered["parts"][1].update(state="output-available", output="yes")
    acc.add_incoming([answered], "submit-message", 1)
    assert ids(acc.ui_messages) == ["u1", "a1"]
    assert ids(acc.new_ui_messages) == ["a1"]
    assert dump(acc.ui_messages[1])["parts"][1]["state"] == "output-available"
    assert [dump(m) for m in acc.model_messages][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool-call", "toolCallId": "c1", "toolName": "ask", "input": {}}],
        },
        {
            "role": "tool",
            "content": [
                {
                    "type": "tool-result",
                    "toolCallId": "c1",
                    "toolName": "ask",
                    "output": {"type": "text", "value": "yes"},
                }
            ],
        },
    ]
    # the continued response keeps the same id: replaced, not duplicated
    acc.add_response(
        {
            **answered,
            "parts": [
                *answered["parts"],
                {"type": "step-start"},
                {"type": "text", "text": "Deleted.", "state": "done"},
            ],
        }
    )
    assert ids(acc.ui_messages) == ["u1", "a1"]
    assert ids(acc.new_ui_messages) == ["a1"]
    assert acc.ui_messages[1].text == "Deleted."


def test_incoming_assistant_messages_are_cleaned() -> None:
    acc = MessageAccumulator()
    stopped = {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {"type": "text", "text": "Partial", "state": "streaming"},
            {"type": "tool-w", "toolCallId": "c", "state": "input-streaming"},
        ],
    }
    acc.add_incoming([user("u1", "hi"), stopped, user("u2", "go on")], "submit-message", 0)
    assert dump(acc.ui_messages[1])["parts"] == [
        {"type": "text", "text": "Partial", "state": "done"}
    ]


def test_regenerate_replaces_history_with_nothing_new() -> None:
    acc = MessageAccumulator()
    acc.add_incoming([user("u1", "hi")], "submit-message", 0)
    acc.add_response(reply("a1", "first answer"))
    acc.add_incoming([user("u2", "q2")], "submit-message", 1)
    acc.add_response(reply("a2", "bad answer"))
    models = acc.add_incoming(
        [user("u1", "hi"), reply("a1", "first answer"), user("u2", "q2")],
        "regenerate-message",
        2,
    )
    assert ids(acc.ui_messages) == ["u1", "a1", "u2"]
    assert acc.new_ui_messages == []
    assert acc.new_model_messages == []
    assert len(models) == 3
    acc.add_response(reply("a3", "better answer"))
    assert ids(acc.ui_messages) == ["u1", "a1", "u2", "a3"]
    assert ids(acc.new_ui_messages) == ["a3"]


def test_add_response_assigns_an_id_when_empty() -> None:
    acc = MessageAccumulator()
    acc.add_incoming([user("u1", "hi")], "submit-message", 0)
    stored = acc.add_response(reply("", "hello"))
    assert len(stored.id) == 16
    assert acc.ui_messages[-1].id == stored.id
    assert acc.new_ui_messages[-1].id == stored.id
    # two id-less responses do not collapse into one
    acc.add_response(UIMessage(id="", role="assistant"))
    assert len(acc.ui_messages) == 3


def test_model_messages_strip_openai_item_ids_but_ui_keeps_them() -> None:
    acc = MessageAccumulator()
    acc.add_incoming([user("u1", "hi")], "submit-message", 0)
    acc.add_response(reply("a1", "hello", providerMetadata={"openai": {"itemId": "msg_9"}}))
    assert dump(acc.ui_messages[1])["parts"][1]["providerMetadata"] == {
        "openai": {"itemId": "msg_9"}
    }
    assert dump(acc.model_messages[1]) == {
        "role": "assistant",
        "content": [{"type": "text", "text": "hello"}],
    }


def test_model_messages_are_cached_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = accumulator_module.convert_to_model_messages

    def counting(messages: Any) -> Any:
        calls.extend(m.id for m in messages)
        return real(messages)

    monkeypatch.setattr(accumulator_module, "convert_to_model_messages", counting)
    acc = MessageAccumulator()
    acc.add_incoming([user("u1", "a"), user("u2", "b")], "submit-message", 0)
    first = acc.model_messages
    assert acc.model_messages == first
    assert sorted(calls) == ["u1", "u2"]
    acc.add_incoming([user("u2", "b edited")], "submit-message", 1)
    second = acc.model_messages
    assert sorted(calls) == ["u1", "u2", "u2"]
    assert dump(second[1]) == {"role": "user", "content": [{"type": "text", "text": "b edited"}]}


def test_conversion_failure_does_not_lose_history(monkeypatch: pytest.MonkeyPatch) -> None:
    real = accumulator_module.convert_to_model_messages

    def flaky(messages: Any) -> Any:
        if messages[0].id == "bad":
            raise RuntimeError("boom")
        return real(messages)

    monkeypatch.setattr(accumulator_module, "convert_to_model_messages", flaky)
    acc = MessageAccumulator()
    models = acc.add_incoming(
        [user("u1", "a"), user("bad", "b"), user("u3", "c")], "submit-message", 0
    )
    assert len(models) == 2
    assert ids(acc.ui_messages) == ["u1", "bad", "u3"]


def test_state_round_trip() -> None:
    acc = MessageAccumulator()
    acc.add_incoming([user("u1", "hi")], "submit-message", 0)
    acc.add_response(
        {
            "id": "a1",
            "role": "assistant",
            "metadata": {"k": 1},
            "parts": [
                {"type": "step-start"},
                {
                    "type": "tool-t",
                    "toolCallId": "c",
                    "state": "output-available",
                    "input": None,
                    "output": None,
                },
                {"type": "data-x", "id": "d", "data": None},
            ],
        }
    )
    state = acc.to_state()
    restored = MessageAccumulator.from_state(json.loads(json.dumps(state)))
    assert restored.to_state() == state
    assert state[1]["parts"][1]["input"] is None
    assert "null" not in json.dumps(state[0])
    assert dump_all(restored.model_messages) == dump_all(acc.model_messages)
    assert restored.new_ui_messages == []


def test_ui_messages_returns_a_copy_of_the_list() -> None:
    acc = MessageAccumulator([user("u1", "hi")])
    acc.ui_messages.clear()
    assert ids(acc.ui_messages) == ["u1"]


def test_add_incoming_and_add_response_can_be_awaited() -> None:
    import asyncio

    awaited, plain = MessageAccumulator(), MessageAccumulator()

    async def conversation() -> tuple[Any, Any]:
        history = await awaited.add_incoming([user("u1", "hi")], "submit-message", 0)
        stored = await awaited.add_response(reply("a1", "hello"))
        return history, stored

    history, stored = asyncio.run(conversation())
    assert history == plain.add_incoming([user("u1", "hi")], "submit-message", 0)
    assert stored == plain.add_response(reply("a1", "hello"))
    assert stored == UIMessage.model_validate(reply("a1", "hello"))
    assert dump_all(awaited.ui_messages) == dump_all(plain.ui_messages)
    assert awaited.ui_messages[-1] is stored
