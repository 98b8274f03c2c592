"""OpenTelemetry traces: a span per turn, with the hooks, model calls and tool calls under it.

Off unless ``CHATWORKER_TRACING`` is set to ``1`` (or ``true``/``on``). When off nothing here
imports OpenTelemetry and every helper is a no-op, so tracing costs nothing. When on (install
the ``otel`` extra), each process sets up its tracer provider the first time it needs it:
spans go where the standard ``OTEL_TRACES_EXPORTER`` says (``otlp``, the default: OTLP over
HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``console``: stdout; ``none``), and also, with
``CHATWORKER_TRACING_FILE``, one JSON object per span appended to that file. The service name is
``OTEL_SERVICE_NAME`` (default ``chatworker``); the other ``OTEL_*`` variables apply as usual.

The trace context of the request that started a run or sent it a message travels with the
message: :func:`stamp` adds it to the queued wire payload (a reserved ``__trace`` key, last in
the object), and the worker takes it back off with :func:`unstamp` before reading the payload,
so the turn's span is a child of the gateway request's span: one trace.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, cast

log = logging.getLogger("chatworker.tracing")

#: The instrumentation scope name of every chatworker span.
SCOPE = "chatworker"
#: The reserved wire key carrying the trace context (always the last key of the object).
WIRE_KEY = "__trace"
_MARK = f',"{WIRE_KEY}":'

Carrier = dict[str, str]
Attributes = Mapping[str, str | int | float | bool]

_lock = threading.Lock()
_tracer: Any = None
_setup_done = False


def enabled() -> bool:
    """Whether tracing is switched on in this process (``CHATWORKER_TRACING``)."""
    return os.environ.get("CHATWORKER_TRACING", "").strip().lower() in {"1", "true", "on", "yes"}


def _get_tracer() -> Any:
    """The chatworker tracer, setting up this process's provider on first use; None when off."""
    global _tracer, _setup_done
    if not enabled():
        return None
    if _setup_done:
        return _tracer
    with _lock:
        if not _setup_done:
            try:
                from opentelemetry import trace

                _install_provider(trace)
                _tracer = trace.get_tracer(SCOPE)
            except ImportError:
                log.warning("CHATWORKER_TRACING is on but OpenTelemetry is not installed "
                            "(install chatworker[otel]); tracing stays off")
                _tracer = None
            _setup_done = True
    return _tracer


def _install_provider(trace: Any) -> None:
    """A tracer provider with the exporters the environment names (unless one is already set)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return  # the host application configured OpenTelemetry itself: use its provider
    name = os.environ.get("OTEL_SERVICE_NAME") or "chatworker"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    for exporter in (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(","):
        exporter = exporter.strip().lower()
        if exporter == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                log.warning("OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-"
                            "http (in chatworker[otel]); no OTLP export")
                continue
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif exporter == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        elif exporter not in {"none", ""}:
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported by chatworker", exporter)
    path = os.environ.get("CHATWORKER_TRACING_FILE")
    if path:
        out = cast(IO[str], _AppendFile(path))
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(
            out=out, formatter=lambda span: span.to_json(indent=None) + "\n")))
    trace.set_tracer_provider(provider)


class _AppendFile:
    """A file that several processes append whole lines to: one ``write(2)`` per span, on a
    descriptor opened with ``O_APPEND``, so lines from different processes never interleave."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def flush(self) -> None:
        pass


def reset_for_tests() -> None:
    """Forget this process's tracer, so the next span reads the environment again."""
    global _tracer, _setup_done
    with _lock:
        _tracer, _setup_done = None, False


# -- carrying the context with a message ---------------------------------------------------------
def stamp(wire: str) -> str:
    """``wire`` (a JSON object) with the current trace context added; unchanged when off."""
    if not enabled() or _get_tracer() is None:
        return wire
    from opentelemetry import propagate

    carrier: Carrier = {}
    propagate.inject(carrier)
    if not carrier or not wire.endswith("}") or wire.rstrip("} ").endswith("{"):
        return wire  # not a non-empty object (the wire payload always has a chatId)
    return wire[:-1] + _MARK + json.dumps(carrier, separators=(",", ":")) + "}"


def unstamp(wire: str) -> tuple[str, Carrier | None]:
    """``wire`` without the trace context :func:`stamp` added, and that context (or None).

    Runs whether tracing is on here or not, so a context a traced gateway added never reaches
    the task as a payload key.
    """
    at = wire.rfind(_MARK)
    if at < 0 or not wire.endswith("}"):
        return wire, None
    try:
        carrier = json.loads(wire[at + len(_MARK):-1])
    except ValueError:
        return wire, None
    if not isinstance(carrier, dict):
        return wire, None
    return wire[:at] + "}", {str(k): str(v) for k, v in carrier.items()}


# -- spans -----------------------------------------------------------------------------------
class _NoSpan:
    """What the span helpers give when tracing is off: accepts everything, records nothing."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Attributes) -> None:
        pass

    def fail(self, exc: BaseException) -> None:
        pass

    def end(self) -> None:
        pass


class _Span:
    """A started span (see :func:`start_span`)."""

    def __init__(self, span: Any) -> None:
        self.span = span

    def set_attribute(self, key: str, value: Any) -> None:
        self.span.set_attribute(key, value)

    def set_attributes(self, attributes: Attributes) -> None:
        self.span.set_attributes(dict(attributes))

    def fail(self, exc: BaseException) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.span.record_exception(exc)
        self.span.set_status(Status(StatusCode.ERROR, repr(exc)))

    def end(self) -> None:
        self.span.end()


Span = _NoSpan | _Span
_NO_SPAN = _NoSpan()


@contextmanager
def span(name: str, attributes: Attributes | None = None,
         parent: Carrier | None = None) -> Iterator[Span]:
    """A span around the block, current inside it (so spans started in the block are its
    children); under the trace context ``parent`` (from :func:`unstamp`) when given. An
    exception leaving the block marks the span failed."""
    tracer = _get_tracer()
    if tracer is None:
        yield _NO_SPAN
        return
    context = None
    if parent:
        from opentelemetry import propagate

        context = propagate.extract(parent)
    with tracer.start_as_current_span(name, context=context, attributes=dict(attributes or {}),
                                      record_exception=True, set_status_on_exception=True) as s:
        yield _Span(s)


def start_span(name: str, attributes: Attributes | None = None) -> Span:
    """A span under the current one that is not made current: for work spread over a generator's
    iterations (end it with ``.end()``)."""
    tracer = _get_tracer()
    if tracer is None:
        return _NO_SPAN
    return _Span(tracer.start_span(name, attributes=dict(attributes or {})))


def instrument_flask(app: Any) -> None:
    """Trace ``app``'s requests (each gets a server span, continuing a ``traceparent`` header);
    nothing when off. The chat blueprint calls this when it is registered."""
    if _get_tracer() is None:
        return
    try:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
    except ImportError:
        log.warning("tracing Flask requests needs opentelemetry-instrumentation-flask "
                    "(in chatworker[otel])")
        return
    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        instrumentor: Any = FlaskInstrumentor()
        instrumentor.instrument_app(app)
