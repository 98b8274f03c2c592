"""The demo page's own API: its settings and the chats stored by :mod:`web.demo_tasks`.

``demo_blueprint()`` serves, under ``/api`` by default:

- ``GET /demo/config``: the default task id and a trigger token for it, the agents a new chat
  may be answered by (``tasks``: the demo's own tasks that are loaded), whether the offline demo
  model answers, and the seconds between the stream's keep-alives (how long a healthy stream may
  be silent);
- ``GET /demo/tasks/<task>/token``: a trigger token for one of those agents (404 for any other
  task: only the demo's own tasks may be chosen);
- ``GET /demo/chats``: the chats, most recent first, each with its session;
- ``GET /demo/chats/<id>``: one chat's messages and session (404 when unknown);
- ``DELETE /demo/chats/<id>``: forget a chat and cancel its run.

This is a local demo with no users: anyone who can load the page may use every chat. A real
app authenticates these routes and hands out tokens per user.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from chatworker import chat, runs
from chatworker.engine import registry
from chatworker.errors import ChatworkerError
from chatworker.gateway.sse import heartbeat_seconds

from .demo_store import get_store
from .demo_tasks import DEMO_TASK_ID, model_name, uses_demo_model

__all__ = ["demo_blueprint"]

log = logging.getLogger("chatworker.demo")

#: The one user of the local demo.
DEMO_USER = "demo-user"

#: The demo's own tasks, as the page names them: a new chat may be answered by any of them that
#: is loaded (``demo-chat`` always is; ``web.demo_frameworks`` loads the others it can).
AGENTS: dict[str, str] = {
    DEMO_TASK_ID: "chatworker (stream_text)",
    "demo-pydantic-ai": "pydantic-ai",
    "demo-openai-agents": "OpenAI Agents SDK",
    "demo-langgraph": "LangGraph",
}


def available_agents() -> list[dict[str, str]]:
    """The demo tasks loaded here (the gateway loads what the worker loads), default first."""
    loaded = registry.all_tasks()
    return [{"id": task_id, "label": label} for task_id, label in AGENTS.items()
            if task_id == DEMO_TASK_ID or task_id in loaded]


def _token(task_id: str) -> str:
    # A multiple-use trigger token handed to any visitor: fine for a local demo only.
    # A real app mints tokens per signed-in user (one-time ones, from a server action).
    # Every visitor is the one demo user (the subject), so every window and device reaches
    # the same chats: each follows the chats the others write to.
    return chat.create_access_token(task_id, multiple_use=True, subject=DEMO_USER)


def _error(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": code, "message": message})
    response.status_code = status
    return response


def demo_blueprint(url_prefix: str = "/api", chat_api: str = "/api/chat") -> Blueprint:
    """The demo API blueprint (``chat_api`` is where the chat gateway blueprint is mounted)."""
    bp = Blueprint("chatworker_demo", __name__, url_prefix=url_prefix)

    @bp.get("/demo/config")
    def config() -> Response:
        """What the page needs to start: tasks, model, gateway path and a trigger token."""
        response = jsonify(
            {
                "taskId": DEMO_TASK_ID,
                "tasks": available_agents(),
                "demoModel": uses_demo_model(),
                "model": model_name(),
                "chatApi": chat_api,
                "accessToken": _token(DEMO_TASK_ID),
                "heartbeatSeconds": heartbeat_seconds(),
            }
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.get("/demo/tasks/<task_id>/token")
    def task_token(task_id: str) -> Response:
        """A trigger token for one of the demo's agents (the page asks for its chat's task)."""
        agents = [agent["id"] for agent in available_agents()]
        if task_id not in agents:
            return _error(404, "unknown_task", f"{task_id!r} is not one of the demo's agents; "
                          f"choose one of: {', '.join(agents)}")
        response = jsonify({"taskId": task_id, "accessToken": _token(task_id)})
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.get("/demo/chats")
    def list_chats() -> Response:
        """The sidebar: chats, most recently updated first."""
        return jsonify([record.summary() for record in get_store().list_chats()])

    @bp.get("/demo/chats/<chat_id>")
    def get_chat(chat_id: str) -> Response:
        """One chat's messages and session."""
        record = get_store().get_chat(chat_id)
        if record is None:
            return _error(404, "chat_not_found", f"no chat {chat_id!r}")
        return jsonify(record.to_json())

    @bp.delete("/demo/chats/<chat_id>")
    def delete_chat(chat_id: str) -> Response:
        """Forget the chat; its run (if still alive) is cancelled."""
        session = get_store().delete_chat(chat_id)
        if session is not None:
            try:
                runs.cancel(session.run_id, "chat deleted")
            except ChatworkerError as exc:
                log.info(
                    "deleting chat %s: could not cancel run %s (%s)", chat_id, session.run_id, exc
                )
        return Response(status=204)

    return bp
