"""A worker process's metrics server (``CHATWORKER_METRICS_PORT``) and its owned-runs gauge.

Each worker process serves its own metrics. With the usual gevent pool a worker is one process,
so one port each; several on a host take a range (``9200-9209``: each binds the first free port)
or ``0`` (any free port), and log the port they bound. A prefork pool's children serve theirs
on further ports of the range (the parent serves one too, with no runs).
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import metrics
from .mailbox import get_mailbox


def _owned() -> Iterable[tuple[str, float]]:
    runs = list(get_mailbox().runs.values())
    streaming = sum(1 for local in runs if local.streaming)
    return [("streaming", float(streaming)), ("warm", float(len(runs) - streaming))]


def serve_worker_metrics() -> int | None:
    """Register ``chatworker_runs_owned{state}`` and start serving this process's metrics on
    ``CHATWORKER_METRICS_PORT``; the bound port, or None when not configured."""
    if not metrics.metrics_port():
        return None
    metrics.register_gauge(
        "chatworker_runs_owned", "Runs this worker process holds: streaming a turn, or waiting "
        "warm for the next message.", "state", _owned)
    return metrics.serve()
