"""The runs dashboard: an operator's page and its JSON API, as a Flask blueprint.

``dashboard_blueprint()`` serves, under ``/dashboard``, the page (``/dashboard`` and
``/dashboard/runs/<run_id>``) and ``/dashboard/api/...``: live counts and workers
(``summary``), a page of the runs list with filters (``runs``), one run's record and timeline,
its output as Server-Sent Events, and Stop / Cancel. Every route wants the operator credential
(:mod:`~chatworker.gateway.dashboard_auth`), never a chat token; every error is JSON.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, request

from .. import runs
from ..config import get_redis, lease_seconds
from ..engine.registry import all_tasks
from ..store import streams
from ..store.records import STATUSES
from ..store.run_index import RunIndex
from ..store.run_store import RunStore
from .blueprint import run_stream_body
from .dashboard_auth import check_operator, operator_token
from .dashboard_page import PAGE
from .http import ApiError, check_path_id, error_response, json_response, last_event_id
from .sse import SSE_HEADERS
from .timeline import timeline

__all__ = ["dashboard_blueprint"]

#: Rows per page of the runs list, by default and at most.
PAGE_SIZE, MAX_PAGE_SIZE = 50, 200
#: Owned runs listed at most under the workers.
MAX_OWNED = 1000
#: How long a run's output stream stays open without a new entry before the page reconnects.
STREAM_IDLE = 300.0


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"`{name}` must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_request", f"`{name}` must be between {low} and {high}")
    return value


def _statuses() -> list[str]:
    wanted = [s for s in request.args.get("status", "").split(",") if s]
    for status in wanted:
        if status != "active" and status not in STATUSES:
            raise ApiError(400, "bad_request",
                           f"unknown status {status!r}: use {', '.join(('active', *STATUSES))}")
    return wanted


def _index() -> RunIndex:
    return RunIndex(get_redis())


def summary() -> Response:
    index = _index()
    now = time.time()
    alive_within = max(10.0, 3 * lease_seconds())
    owned: dict[str, list[dict[str, str]]] = {}
    for run_id, owner, status in index.owned(MAX_OWNED):
        owned.setdefault(owner, []).append({"runId": run_id, "status": status})
    workers = [{"id": worker, "lastBeat": beat, "alive": now - beat < alive_within,
                "runs": owned.pop(worker, [])} for worker, beat in index.workers()]
    workers += [{"id": owner, "lastBeat": None, "alive": False, "runs": rows}
                for owner, rows in owned.items()]
    return json_response({"counts": index.counts(), "workers": workers,
                          "tasks": sorted(all_tasks()), "statuses": list(STATUSES)})


def runs_list() -> Response:
    offset = _int_arg("offset", 0, 0, 10**9)
    limit = _int_arg("limit", PAGE_SIZE, 1, MAX_PAGE_SIZE)
    task_id = request.args.get("task") or None
    page = _index().page(offset, limit, statuses=_statuses(), task_id=task_id)
    return json_response({"runs": page.rows, "nextOffset": page.next_offset,
                          "scanned": page.scanned, "offset": offset})


def run_detail(run_id: str) -> Response:
    record = RunStore(get_redis()).record(run_id)
    if not record:
        raise ApiError(404, "run_not_found", f"no run {run_id!r} (it may have expired)")
    chunks = _index().control_chunks(run_id)
    info = runs.status(run_id)
    body: dict[str, Any] = {
        "run": {**info.to_json(), "owner": info.owner, "createdAt": record.get("created_at"),
                "updatedAt": record.get("updated_at"),
                "recoveries": int(record.get("recoveries") or 0)},
        "record": record,
        "timeline": timeline(record, chunks),
    }
    return json_response(body)


def run_stream(run_id: str) -> Response:
    info = runs.status(run_id)  # 404 for an unknown run
    after = last_event_id(request)
    if after is not None:
        streams.check_resume(get_redis(), run_id, after)
    idle = 1.0 if info.ended else STREAM_IDLE
    return Response(run_stream_body(run_id, after, idle), content_type="text/event-stream",
                    headers=SSE_HEADERS)


def run_stop(run_id: str) -> Response:
    stopped = runs.stop(run_id, "stopped from the dashboard")
    return json_response({"ok": True, "stopped": bool(stopped)}, 202)


def run_cancel(run_id: str) -> Response:
    runs.cancel(run_id, "canceled from the dashboard")
    return json_response({"ok": True}, 202)


def unknown_api(rest: str) -> Response:
    raise ApiError(404, "not_found", f"no dashboard API route /api/{rest}: see the operations "
                   "guide for its routes (summary, runs, runs/<runId>[/stream|/stop|/cancel])")


def page(run_id: str | None = None) -> Response:
    return Response(PAGE, mimetype="text/html", headers={"Cache-Control": "no-store"})


def dashboard_blueprint(*, url_prefix: str = "/dashboard", token: str | None = None,
                        name: str = "chatworker_dashboard") -> Blueprint:
    """The runs dashboard under ``url_prefix``. ``token`` is the operator credential (default:
    ``CHATWORKER_DASHBOARD_TOKEN``, read at each request; unset, every request gets 403)."""
    bp = Blueprint(name, __name__, url_prefix=url_prefix)

    @bp.before_request
    def authorize() -> Response | None:
        return check_operator(request, token if token is not None else operator_token())

    def checked(view: Any) -> Any:
        def wrapper(run_id: str | None = None) -> Response:
            if run_id is not None:
                check_path_id("run", run_id)
                return view(run_id)  # type: ignore[no-any-return]
            return view()  # type: ignore[no-any-return]

        wrapper.__name__ = view.__name__
        return wrapper

    rules: list[tuple[str, Any, str]] = [
        ("", page, "GET"),
        ("/", page, "GET"),
        ("/runs/<run_id>", page, "GET"),
        ("/api/summary", summary, "GET"),
        ("/api/runs", runs_list, "GET"),
        ("/api/runs/<run_id>", run_detail, "GET"),
        ("/api/runs/<run_id>/stream", run_stream, "GET"),
        ("/api/runs/<run_id>/stop", run_stop, "POST"),
        ("/api/runs/<run_id>/cancel", run_cancel, "POST"),
    ]
    wrapped: dict[str, Any] = {}
    bp.add_url_rule("/api/<path:rest>", "unknown_api", unknown_api,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    for rule, view, method in rules:
        endpoint = view.__name__
        wrapped.setdefault(endpoint, checked(view))
        bp.add_url_rule(rule, endpoint, wrapped[endpoint], methods=[method],
                        strict_slashes=False, merge_slashes=False)
    bp.register_error_handler(Exception, error_response)
    return bp
