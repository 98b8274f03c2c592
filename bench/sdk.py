"""What reading one model token costs: the ``openai`` SDK's stream versus plain JSON parsing.

Both the worker and the baseline pay the SDK's per-chunk cost, so it sets how many tokens per
second one process can stream at all. Measured in this process against the scripted model
server: the same response read through ``client.chat.completions.create(stream=True)`` and
through the raw HTTP body split into ``data:`` lines and ``json.loads``.
"""

from __future__ import annotations

import json
import time

import httpx2

from .client import model_client


def _params(tokens: int) -> dict[str, object]:
    return {
        "model": "bench",
        "messages": [{"role": "user", "content": f"bench:stream:{tokens}:100000"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def sdk_us_per_chunk(base_url: str, tokens: int = 2000, repeats: int = 3) -> list[float]:
    """CPU µs per chunk iterating the SDK's stream (one value per repeat); the client is
    the benchmark's, pointed at ``OPENAI_BASE_URL`` (= ``base_url``)."""
    client = model_client()
    out = []
    for _ in range(repeats):
        start = time.process_time()
        count = 0
        stream = client.chat.completions.create(**_params(tokens))  # type: ignore[call-overload]
        for chunk in stream:
            count += 1
            for choice in chunk.choices:
                _ = choice.delta.content
        out.append((time.process_time() - start) / count * 1e6)
    return out


def json_us_per_chunk(base_url: str, tokens: int = 2000, repeats: int = 3) -> list[float]:
    """CPU µs per chunk reading the same stream as lines and ``json.loads``."""
    out = []
    with httpx2.Client(timeout=60) as http:
        for _ in range(repeats):
            start = time.process_time()
            count = 0
            with http.stream("POST", f"{base_url}/chat/completions", json=_params(tokens)) as resp:
                for line in resp.iter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        chunk = json.loads(line[6:])
                        count += 1
                        for choice in chunk["choices"]:
                            _ = choice["delta"].get("content")
            out.append((time.process_time() - start) / count * 1e6)
    return out
