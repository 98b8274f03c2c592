"""``GET /metrics`` for a gateway app: request counts, open SSE clients, runs by state.

``create_app`` mounts it; a host app mounts the same with :func:`mount_metrics`::

    from chatworker.gateway.metrics import mount_metrics
    mount_metrics(app)            # GET /metrics, and requests counted by route and status

Needs the ``[metrics]`` extra (``prometheus-client``); without it ``/metrics`` says so and the
request hooks cost nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, Response, request

from .. import metrics
from ..config import get_redis
from ..store.census import run_counts
from .hub import get_hub


def _runs() -> Iterable[tuple[str, float]]:
    counts = run_counts(get_redis())
    counts.pop("known", None)
    return [(state, float(n)) for state, n in counts.items()]


def _sse_clients() -> Iterable[tuple[str, float]]:
    return [("", float(get_hub().stats()["subscribers"]))]


def register_collectors() -> None:
    """The gauges read at each scrape: ``chatworker_runs{status}`` (from Redis's indexes) and
    ``chatworker_sse_clients`` (this process's hub)."""
    metrics.register_gauge("chatworker_runs", "Runs by live state, from Redis's indexes "
                           "(owned, lapsed, pending, suspended).", "status", _runs)
    metrics.register_gauge("chatworker_sse_clients", "Output-stream subscribers (SSE clients) "
                           "attached to this gateway process.", None, _sse_clients)


def mount_metrics(app: Flask, path: str = "/metrics") -> None:
    """Serve this process's metrics at ``path`` and count ``app``'s requests by route (the URL
    rule, never the concrete URL), method and status."""
    register_collectors()

    @app.after_request
    def _count(response: Response) -> Response:
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        metrics.http_request(route, request.method, response.status_code)
        return response

    def serve_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    app.add_url_rule(path, "chatworker_metrics", serve_metrics, methods=["GET"])
