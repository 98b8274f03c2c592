"""ModelCall: chunks already queued are merged, chunks read one by one are not."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chatworker.ai.call import OPENED, ModelCall
from chatworker.ai.runner import _merge_deltas
from chatworker.signals import AbortController


def delta(**fields: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": fields, "finish_reason": None}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice]}


def tool_call(arguments: str) -> dict[str, Any]:
    call = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": arguments}}
    return delta(tool_calls=[call])


def finish(reason: str) -> dict[str, Any]:
    chunk = delta()
    chunk["choices"][0]["finish_reason"] = reason
    return chunk


USAGE = {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}


def queued_first(chunks: list[Any], call_signal: Any = None) -> tuple[ModelCall, list[Any]]:
    """Iterate a ModelCall whose every chunk is queued before the consumer reads the first."""
    done = threading.Event()

    def produce() -> Iterator[Any]:
        yield from chunks
        done.set()

    call = ModelCall(produce, call_signal, merge=_merge_deltas)
    items = iter(call)
    assert next(items) is OPENED
    assert done.wait(5)
    return call, list(items)


def texts(items: list[Any], key: str = "content") -> str:
    return "".join(choice["delta"].get(key) or "" for item in items for choice in item["choices"])


def test_queued_deltas_are_merged_in_order_around_other_chunks() -> None:
    words = [f"word{i} " for i in range(10)]
    thoughts = ["hmm ", "let ", "me ", "think"]
    chunks = [
        delta(role="assistant", content=""),
        *[delta(reasoning_content=t) for t in thoughts],
        *[delta(content=w) for w in words[:6]],
        tool_call('{"a": 1}'),
        *[delta(content=w) for w in words[6:]],
        finish("tool_calls"),
        USAGE,
    ]
    _call, items = queued_first(chunks)
    expected = [
        delta(role="assistant", content=""),  # a different text key than what follows
        delta(reasoning_content="hmm let me think"),
        delta(content="".join(words[:6])),
        tool_call('{"a": 1}'),
        delta(content="".join(words[6:])),
        finish("tool_calls"),
        USAGE,
    ]
    assert items == expected
    assert texts(items) == "".join(words)
    assert texts(items, "reasoning_content") == "".join(thoughts)


def test_role_chunk_merges_with_the_text_after_it() -> None:
    chunks = [delta(role="assistant", content=""), delta(content="Hi "), delta(content="there")]
    _call, items = queued_first(chunks)
    assert items == [delta(role="assistant", content="Hi there")]


def test_a_large_backlog_still_streams_in_several_items() -> None:
    small = [delta(content=f"{i},") for i in range(200)]
    _call, items = queued_first(small)
    assert 1 < len(items) < len(small)
    assert texts(items) == "".join(f"{i}," for i in range(200))

    large = [delta(content="x" * 1000) for _ in range(10)]
    _call, items = queued_first(large)
    assert 1 < len(items) < len(large)
    assert all(len(item["choices"][0]["delta"]["content"]) <= 5000 for item in items)
    assert texts(items) == "x" * 10_000


def test_no_merge_and_no_wait_when_the_consumer_keeps_up() -> None:
    words = [f"word{i} " for i in range(50)]
    taken = threading.Event()

    def produce() -> Iterator[Any]:
        for word in words:
            yield delta(content=word)
            assert taken.wait(5)  # the next chunk comes only after the consumer took this one
            taken.clear()

    seen: list[Any] = []
    started = time.monotonic()
    for item in ModelCall(produce, None, merge=_merge_deltas):
        if item is not OPENED:
            seen.append(item)
            taken.set()
    assert seen == [delta(content=word) for word in words]
    assert time.monotonic() - started < 1.0  # no chunk was held back waiting for more


def test_abort_with_chunks_queued_ends_iteration() -> None:
    controller = AbortController()
    queued = threading.Event()
    release = threading.Event()

    def produce() -> Iterator[Any]:
        for i in range(100):
            yield delta(content=f"{i} ")
        queued.set()
        release.wait(5)  # the model goes silent after a burst
        yield delta(content="never seen")

    call = ModelCall(produce, controller.signal, merge=_merge_deltas)
    items = iter(call)
    assert next(items) is OPENED
    assert queued.wait(5)
    controller.abort()
    try:
        rest = list(items)
    finally:
        release.set()
    assert call.aborted
    assert len(rest) < 100  # merged, and then the abort: nothing waits for "never seen"
    assert texts(rest) == "".join(f"{i} " for i in range(100))


def test_error_after_queued_chunks_comes_after_them() -> None:
    def produce() -> Iterator[Any]:
        yield delta(content="a")
        yield delta(content="b")
        raise ConnectionError("gone")

    seen: list[Any] = []
    with pytest.raises(ConnectionError):
        for item in ModelCall(produce, None, merge=_merge_deltas):
            seen.append(item)
    assert seen[0] is OPENED
    assert texts(seen[1:]) == "ab"
