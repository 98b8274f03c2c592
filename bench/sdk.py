"""What reading one model token costs: the ``openai`` SDK's models, chatworker's reader, raw JSON.

Measured in this process against the scripted model server, the same response read three ways:
iterating ``client.chat.completions.create(stream=True)`` (a pydantic chunk per token), through
``chatworker.ai.providers.ChunkStream`` (the SDK's request and SSE decoder, chunks as dicts: what
the worker and the baseline both use), and as the raw HTTP body split into ``data:`` lines.
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


def reader_us_per_chunk(base_url: str, tokens: int = 2000, repeats: int = 3) -> list[float]:
    """CPU µs per chunk through chatworker's reader (``OpenAIChatModel.open_stream``)."""
    from chatworker.ai.providers import OpenAIChatModel

    model = OpenAIChatModel(model_id="bench", client=model_client())
    out = []
    for _ in range(repeats):
        start = time.process_time()
        count = 0
        request = {"messages": _params(tokens)["messages"]}
        for chunk in model.open_stream(request):
            count += 1
            assert isinstance(chunk, dict)
            for choice in chunk["choices"]:
                _ = choice["delta"].get("content")
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
