"""The run fields of a gateway request's log records (``CHATWORKER_LOG_FORMAT=json``): the run
id and task named by the route's URL, bound for the request and forgotten after it."""

from __future__ import annotations

from flask import Blueprint, g, request

from .. import logs


def bind_request_fields(bp: Blueprint) -> None:
    """Bind ``run_id`` and ``task`` from the URL of each of ``bp``'s requests."""

    @bp.before_request
    def _bind() -> None:
        args = request.view_args or {}
        fields = {"run_id": args.get("run_id"), "task": args.get("task_id")}
        if any(fields.values()):
            g.chatworker_log_token = logs.bind(**fields)

    @bp.teardown_request
    def _unbind(_: BaseException | None = None) -> None:
        token = g.pop("chatworker_log_token", None)
        if token is not None:
            try:
                logs.reset(token)
            except ValueError:  # torn down in another context (a streamed response): harmless
                pass
