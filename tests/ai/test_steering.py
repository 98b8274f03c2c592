"""``stream_text(..., steering=...)``: user messages join the run at its step boundaries."""

from __future__ import annotations

from typing import Any

from chatworker.ai import Steering, stream_text, tool
from chatworker.ai.providers import OpenAIChatModel
from chatworker.testing import ModelServer, Seen, Text, ToolCall, ToolLoop

PARAMETERS = {"type": "object", "properties": {"topic": {"type": "string"}}}


def _steering_tool(steering: Steering, text: str) -> Any:
    def look(topic: str) -> str:
        steering.steer(text)  # arrives while the step's tools run
        return f"notes on {topic}"

    return tool(parameters=PARAMETERS, execute=look)


def test_a_message_steered_during_a_tool_call_reaches_the_next_model_call(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on(None, ToolLoop("look", {"topic": "tides"}, calls=1, pause=0))
    steering = Steering()
    result = stream_text(model=model, prompt="plan", max_steps=3, steering=steering,
                         tools={"look": _steering_tool(steering, "and the moon")})
    chunks = list(result.to_ui_message_stream())
    kinds = [c["type"] for c in chunks]
    at = kinds.index("steering-message")
    assert kinds[at - 1] == "finish-step" and kinds[at + 1] == "start-step"
    assert chunks[at]["parts"] == [{"type": "text", "text": "and the moon"}]
    assert result.text == "saw: plan | and the moon"
    assert [m["role"] for m in server.requests[1]["messages"]] == ["user", "assistant", "tool",
                                                                  "user"]
    assert steering.pending() == []


def test_a_finished_answer_continues_one_step_for_a_waiting_message(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    steering = Steering()
    steering_id = "m-1"

    def first(body: dict[str, Any]) -> list[Any]:
        steering.steer({"id": steering_id, "parts": [{"type": "text", "text": "shorter"}]})
        return [Text("a long answer")]

    server.on("tell", first, once=True)
    server.on(None, [Seen()])
    result = stream_text(model=model, prompt="tell", max_steps=2, steering=steering)
    kinds = [c["type"] for c in result.to_ui_message_stream()]
    assert kinds.count("start-step") == 2 and "steering-message" in kinds
    assert result.text == "saw: tell | shorter"
    assert result.response_messages[1] == {"role": "user",
                                           "content": [{"type": "text", "text": "shorter"}]}


def test_a_message_the_run_cannot_take_stays_with_the_source(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    # One step (the default): the run ends with its answer, the message is left for later.
    steering = Steering()
    server.on(None, lambda body: (steering.steer("too late"), [Text("done")])[1])
    result = stream_text(model=model, prompt="hi", steering=steering)
    assert "steering-message" not in [c["type"] for c in result.to_ui_message_stream()]
    assert [m.parts for m in steering.pending()] == [[{"type": "text", "text": "too late"}]]
    # A client-side tool ends the run too: nothing is taken.
    steering = Steering()
    server.reset()
    server.on(None, lambda body: (steering.steer("wait"), [ToolCall("ask", {"topic": "x"})])[1])
    result = stream_text(model=model, prompt="hi", max_steps=3, steering=steering,
                         tools={"ask": tool(parameters=PARAMETERS)})
    assert "steering-message" not in [c["type"] for c in result.to_ui_message_stream()]
    assert len(steering.pending()) == 1
