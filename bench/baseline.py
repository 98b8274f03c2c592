"""The baseline: a hand-rolled Flask streaming relay, no Celery, no Redis.

``POST /baseline`` with ``{"messages": [UIMessage...]}`` calls the model through the same
``openai`` client against the same scripted server and writes the AI SDK UI message chunks as
SSE straight from the request's greenlet: what an app without durability would do.

It reads the model with the same reader as the worker, on purpose: both call
``chatworker.ai.providers.OpenAIChatModel.open_stream`` (the worker through ``stream_text`` in
``bench/tasks.py``), which today returns a ``ChunkStream``: the SDK's request and SSE decoder,
each chunk ``json.loads``-ed into a plain dict, no SDK models built. So the relay is the "raw
reader, no SDK models" relay the goals compare against, and whatever reader the worker gets,
the baseline gets too: the comparison isolates what durability adds (Redis, the gateway, the
run's bookkeeping), never a difference in parsing. Keep it that way: do not give the baseline a
reader of its own. ("Reading one model chunk" in the bench's output prices the readers
separately.)

It sends the same chunk sequence a chatworker turn does (``start`` before the model call, as
``streamText`` does, then ``start-step``, ``text-start``, the deltas, ``text-end``,
``finish-step``, ``finish``), and is served by the same gunicorn worker class as the gateway:
``gunicorn -k gevent -w 1 'bench.baseline:create_app()'``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from chatworker.ai._compat import hide_trio_under_gevent

hide_trio_under_gevent()

from flask import Flask, Response, request  # noqa: E402

from chatworker.ai.providers import OpenAIChatModel  # noqa: E402

from .client import model_client  # noqa: E402

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _sse(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk, separators=(',', ':'), ensure_ascii=False)}\n\n"


def _user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return "".join(p.get("text", "") for p in message.get("parts", []))
    return ""


def create_app() -> Flask:
    """The baseline app: ``POST /baseline`` and ``GET /healthz``."""
    app = Flask(__name__)
    model = OpenAIChatModel(model_id="bench", client=model_client())

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"ok":true}', mimetype="application/json")

    @app.post("/baseline")
    def baseline() -> Response:
        body = request.get_json()
        text = _user_text(body.get("messages") or [])

        def stream() -> Iterator[str]:
            yield _sse({"type": "start", "messageId": uuid.uuid4().hex})
            response = model.open_stream({"messages": [{"role": "user", "content": text}]})
            yield _sse({"type": "start-step"})
            text_id = None
            finish = "stop"
            try:
                for chunk in response:
                    assert isinstance(chunk, dict)
                    for choice in chunk.get("choices") or []:
                        delta = choice["delta"].get("content")
                        if delta:
                            if text_id is None:
                                text_id = uuid.uuid4().hex
                                yield _sse({"type": "text-start", "id": text_id})
                            yield _sse({"type": "text-delta", "id": text_id, "delta": delta})
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
            finally:
                response.close()
            if text_id is not None:
                yield _sse({"type": "text-end", "id": text_id})
            yield _sse({"type": "finish-step"})
            yield _sse({"type": "finish", "finishReason": finish})
            yield "data: [DONE]\n\n"

        return Response(stream(), content_type="text/event-stream", headers=HEADERS)

    return app
