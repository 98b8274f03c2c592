"""Prometheus metrics: the instruments, and the hooks the engine and gateway call.

``prometheus-client`` is optional (the ``[metrics]`` extra): without it every hook here is a
no-op costing one attribute check, and nothing listens anywhere. Label values are bounded
(task ids, outcomes, states, routes): never a run or chat id. docs/operations.md lists every
metric.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("chatworker.metrics")

try:
    import prometheus_client as _prom
    from prometheus_client import multiprocess as _multiprocess
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError:  # the [metrics] extra is not installed: every hook is a no-op
    _prom = None  # type: ignore[assignment]

#: True when ``prometheus-client`` is installed.
AVAILABLE = _prom is not None

#: Turn outcomes counted by ``chatworker_turns_total``.
OUTCOMES = ("completed", "stopped", "failed", "recovered")

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TURN_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)

if _prom is not None:
    TURNS = _prom.Counter(
        "chatworker_turns", "Turns ended in this worker process, by task and outcome.",
        ["task", "outcome"])
    FIRST_CHUNK = _prom.Histogram(
        "chatworker_first_chunk_seconds",
        "From a turn taking its input to its first chunk of output written to Redis.",
        ["task"], buckets=_LATENCY_BUCKETS)
    TURN_SECONDS = _prom.Histogram(
        "chatworker_turn_seconds", "From a turn taking its input to its end marker.",
        ["task"], buckets=_TURN_BUCKETS)
    TOKENS = _prom.Counter(
        "chatworker_tokens", "Text and reasoning deltas written to output streams (one per "
        "streamed model token for the usual providers).", ["task"])
    RECOVERIES = _prom.Counter(
        "chatworker_recoveries",
        "Runs whose worker stopped renewing its lease, handed on by this process's sweep.")
    CONCURRENCY_WAITS = _prom.Counter(
        "chatworker_concurrency_waits",
        "Times a run found its concurrency-limited queue full and waited in line.", ["queue"])
    HTTP_REQUESTS = _prom.Counter(
        "chatworker_http_requests", "Gateway HTTP requests, by route, method and status.",
        ["route", "method", "status"])


def turn_ended(task: str, outcome: str, seconds: float | None = None) -> None:
    """A turn ended with ``outcome`` (one of :data:`OUTCOMES`) after ``seconds``."""
    if _prom is None:
        return
    TURNS.labels(task, outcome).inc()
    if seconds is not None:
        TURN_SECONDS.labels(task).observe(max(seconds, 0.0))


def first_chunk(task: str, seconds: float) -> None:
    """A turn's first chunk reached Redis ``seconds`` after the turn took its input."""
    if _prom is not None:
        FIRST_CHUNK.labels(task).observe(max(seconds, 0.0))


_token_counters: dict[str, Any] = {}


def tokens(task: str, count: int = 1) -> None:
    if _prom is not None:
        # Called for every streamed chunk: the labelled child is looked up once per task.
        counter = _token_counters.get(task)
        if counter is None:
            counter = _token_counters[task] = TOKENS.labels(task)
        counter.inc(count)


def recovered() -> None:
    """This process's sweep handed a run whose owner died to another worker."""
    if _prom is not None:
        RECOVERIES.inc()


def concurrency_wait(queue: str) -> None:
    if _prom is not None:
        CONCURRENCY_WAITS.labels(queue).inc()


def http_request(route: str, method: str, status: int) -> None:
    if _prom is not None:
        HTTP_REQUESTS.labels(route, method, str(status)).inc()


def register_gauge(name: str, documentation: str, label: str | None,
                   read: Callable[[], Iterable[tuple[str, float]]]) -> None:
    """Register a gauge ``name{label=...}`` whose values ``read()`` gives at each scrape
    (``(label value, number)`` pairs; with ``label`` None, one pair whose label value is unused).

    Registering the same name again replaces the earlier reader (an app created twice)."""
    if _prom is None:
        return
    registry = _prom.REGISTRY
    old = _gauges.pop(name, None)
    if old is not None:
        registry.unregister(old)
    collector = _GaugeCollector(name, documentation, label, read)
    registry.register(collector)
    _gauges[name] = collector


_gauges: dict[str, Any] = {}

if _prom is not None:

    class _GaugeCollector(Collector):
        def __init__(self, name: str, documentation: str, label: str | None,
                     read: Callable[[], Iterable[tuple[str, float]]]) -> None:
            self.name, self.documentation, self.read = name, documentation, read
            self.labels = [label] if label else []

        def describe(self) -> list[Any]:
            return [GaugeMetricFamily(self.name, self.documentation, labels=self.labels)]

        def collect(self) -> Iterable[Any]:
            family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
            try:
                for value, number in self.read():
                    family.add_metric([value] if self.labels else [], number)
            except Exception as exc:  # a scrape must not fail because Redis is away
                log.warning("metric %s unavailable: %s", self.name, exc)
                return
            yield family


def exposition() -> tuple[bytes, str]:
    """The process's metrics in the Prometheus text format, and its content type."""
    if _prom is None:
        return b"# prometheus-client is not installed (pip install 'chatworker[metrics]')\n", (
            "text/plain; charset=utf-8")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several processes behind one port (gunicorn workers): their counters are added up
        # from the shared directory; the scrape-time gauges are read by the answering process.
        registry = _prom.CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        for collector in _gauges.values():
            registry.register(collector)
        return _prom.generate_latest(registry), _prom.CONTENT_TYPE_LATEST
    return _prom.generate_latest(), _prom.CONTENT_TYPE_LATEST


def metrics_port() -> str:
    """``CHATWORKER_METRICS_PORT``: a port, a range ``9100-9109``, ``0`` (any free port), or
    unset (no metrics server)."""
    return os.environ.get("CHATWORKER_METRICS_PORT", "").strip()


def serve(spec: str | None = None) -> int | None:
    """Start this process's metrics HTTP server on ``CHATWORKER_METRICS_PORT``: the first free
    port of a range ``a-b``, or any free port for ``0``. Returns the bound port (logged), or
    None when unset, unavailable, or no port of the range was free."""
    spec = metrics_port() if spec is None else spec
    if not spec:
        return None
    if _prom is None:
        log.warning("CHATWORKER_METRICS_PORT is set but prometheus-client is not installed "
                    "(pip install 'chatworker[metrics]'): no metrics served")
        return None
    try:
        low, _, high = spec.partition("-")
        first, last = int(low), int(high or low)
    except ValueError:
        log.error("CHATWORKER_METRICS_PORT=%r: expected a port, a range like 9100-9109, or 0",
                  spec)
        return None
    for port in range(first, last + 1):
        try:
            server, _thread = _prom.start_http_server(port)
        except OSError:
            continue
        bound = int(server.server_port)
        log.info("metrics served on port %d (pid %d)", bound, os.getpid())
        return bound
    log.error("CHATWORKER_METRICS_PORT=%s: no free port; no metrics served", spec)
    return None
