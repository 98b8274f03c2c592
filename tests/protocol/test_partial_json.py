"""Streamed tool input: JSON prefixes parse to what the AI SDK's ``parsePartialJson`` shows."""

from __future__ import annotations

from typing import Any

import pytest

from chatworker.protocol.partial_json import parse_partial_json


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('{"a": 1', {"a": 1}),
        ('{"a": "hel', {"a": "hel"}),
        ('{"a": [1, 2', {"a": [1, 2]}),
        ('{"a": [1, 2,', {"a": [1, 2]}),
        ('{"a": tr', {"a": True}),
        ('{"a": fa', {"a": False}),
        ('{"a": {"b": nu', {"a": {"b": None}}),
        ('{"a": 1, "b', {"a": 1}),
        ('{"a": 1, "b":', {"a": 1}),
        ('{"a": 1.5e', {"a": 1.5}),
        ('{"a": -', {}),
        ('{"a": "x\\', {"a": "x"}),
        ('{"a": "\\u00e', {"a": ""}),
        ('{"a": "\\n', {"a": "\n"}),
        ("[", []),
        ("", None),
        ("not json", None),
        ('"just a str', "just a str"),
    ],
)
def test_parse_partial_json(text: str, expected: Any) -> None:
    assert parse_partial_json(text) == expected



@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a literal or number cut off at the end is completed or trimmed, as in the AI SDK
        ("tr", True),
        ("[fals", [False]),
        ('{"a":n', {"a": None}),
        ("[1.", [1]),
        ('{"a": 1e-', {"a": 1}),
        ("[1, -", [1]),
        # but inside a string the same text is only text
        ('{"a": "x tr', {"a": "x tr"}),
        ('{"a": "version 1.', {"a": "version 1."}),
        ('{"a": "say \\"hi\\" fa', {"a": 'say "hi" fa'}),
        ('{"a": "q\\"", "b": nu', {"a": 'q"', "b": None}),
    ],
)
def test_cut_off_tail(text: str, expected: Any) -> None:
    assert parse_partial_json(text) == expected


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a":1,}'])
def test_what_json_parse_refuses_is_none(text: str) -> None:
    assert parse_partial_json(text) is None


def test_half_a_surrogate_pair_waits_for_the_other_half() -> None:
    first = parse_partial_json('{"a": "x\\ud83d')
    assert first == {"a": "x"}
    first["a"].encode()  # never a lone surrogate, which no UTF-8 writer accepts
    assert parse_partial_json('{"a": "x\\ud83d\\ude00') == {"a": "x\U0001f600"}
