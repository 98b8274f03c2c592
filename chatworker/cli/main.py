"""The ``chatworker`` command: ``dev`` (run everything), ``chat`` (a terminal client), ``token``,
``runs``.

``chat``, ``token`` and ``runs`` find a running ``chatworker dev`` from any folder through its
state file (:mod:`.devstate`); the environment (``CHATWORKER_REDIS_URL``,
``CHATWORKER_SECRET_KEY``) wins over it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import redis

from ..config import redis_url
from ..runs import list_runs
from ..tokens import SecretMissing, create_trigger_token
from . import devstate
from .dev import DevError
from .dev import run as run_dev
from .terminal import ChatClient, repl

DESCRIPTION = """\
chatworker: AI chat conversations as durable Celery tasks.

dev runs the whole system locally; chat, token and runs find a running dev stack from any
folder (its state file, see CHATWORKER_STATE_DIR), unless CHATWORKER_REDIS_URL and
CHATWORKER_SECRET_KEY say otherwise.
"""


def _find_dev_stack() -> devstate.DevState | None:
    """Fill what the environment leaves unset from a running ``chatworker dev``'s state file."""
    return devstate.adopt()


def cmd_dev(args: argparse.Namespace) -> int:
    try:
        return run_dev(host=args.host, port=args.port, data=args.data,
                       concurrency=args.concurrency, build=not args.no_build)
    except DevError as exc:
        print(f"chatworker dev: {exc}", file=sys.stderr)
        return 1


def _trigger_token(args: argparse.Namespace) -> str:
    """A multiple-use trigger token: --token, $CHATWORKER_TOKEN, or minted with the secret."""
    token = args.token or os.environ.get("CHATWORKER_TOKEN")
    if token:
        return str(token)
    _find_dev_stack()
    try:
        return create_trigger_token(args.task, ttl="24h", multiple_use=True)
    except SecretMissing as exc:
        raise SystemExit(
            "chatworker chat needs a trigger token: pass --token (or set CHATWORKER_TOKEN), "
            f"or run where the signing secret is known.\n{exc}\n{devstate.looked_for()}"
        ) from None
    except Exception as exc:
        raise SystemExit(f"could not mint a trigger token ({exc}); pass --token") from None


def cmd_chat(args: argparse.Namespace) -> int:
    stack = None if args.url else _find_dev_stack()
    url = args.url or (stack.url if stack else "http://127.0.0.1:8000/api/chat")
    try:
        metadata = json.loads(args.metadata) if args.metadata else None
    except ValueError as exc:
        raise SystemExit(f"--metadata is not valid JSON: {exc}") from None
    client = ChatClient(url, args.task, _trigger_token(args), chat_id=args.chat_id,
                        metadata=metadata)
    if args.message:
        client.send(" ".join(args.message))
        client.receive()
        if client.pending_approvals():
            print(f"(a tool waits for your approval: answer it with `chatworker chat --chat-id "
                  f"{client.chat_id}`)")
        return 0
    return repl(client)


def cmd_token(args: argparse.Namespace) -> int:
    """Print a trigger token (for curl, scripts, or a `/ui` client's Authorization header)."""
    _find_dev_stack()
    try:
        print(create_trigger_token(args.task, ttl=args.ttl, multiple_use=args.multiple_use,
                                   subject=args.subject or None))
    except SecretMissing as exc:
        print(f"chatworker token: {exc}\n{devstate.looked_for()}", file=sys.stderr)
        return 1
    return 0


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def cmd_runs(args: argparse.Namespace) -> int:
    stack = _find_dev_stack()
    try:
        runs = list_runs(args.limit, include_ended=args.all)
    except redis.RedisError as exc:
        where = ("CHATWORKER_REDIS_URL" if os.environ.get("CHATWORKER_REDIS_URL") and not stack
                 else "the running chatworker dev" if stack else "the default")
        print(f"chatworker runs: Redis at {redis_url()} ({where}) is unreachable ({exc}); set "
              "CHATWORKER_REDIS_URL" + ("" if stack or os.environ.get("CHATWORKER_REDIS_URL")
                                        else f".\n{devstate.looked_for()}"), file=sys.stderr)
        return 1
    now = time.time()
    rows = [("RUN", "TASK", "CHAT", "STATUS", "TURN", "WORKER", "AGE", "IDLE")]
    for info in runs:
        rows.append((info.run_id, info.task_id, info.chat_id[:24],
                     info.status + (" (streaming)" if info.is_streaming else ""),
                     str(info.turn), (info.owner or "-").rsplit(":", 1)[0],
                     _age(now - info.created_at), _age(now - info.updated_at)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    if len(rows) == 1:
        print("(no runs" + ("" if args.all else " in progress; --all shows ended ones") + ")")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatworker", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run Redis, a worker, the gateway and the demo page")
    dev.add_argument("--host", default=os.environ.get("CHATWORKER_HOST", "127.0.0.1"),
                     help="where the gateway listens (default: $CHATWORKER_HOST or 127.0.0.1)")
    dev.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")),
                     help="the gateway's port (default: $PORT or 8000)")
    dev.add_argument("--data", default=".chatworker",
                     help="folder for Redis and demo data (default: .chatworker)")
    dev.add_argument("--concurrency", type=int, default=200, help="worker slots (greenlets)")
    dev.add_argument("--no-build", action="store_true", help="do not build the demo page")
    dev.set_defaults(func=cmd_dev)

    chat = sub.add_parser("chat", help="chat with a task through a gateway, in the terminal")
    chat.add_argument("message", nargs="*", help="send this one message, print the reply, exit")
    chat.add_argument("--url", help="the gateway's API base (default: the running chatworker "
                      "dev's, else http://127.0.0.1:8000/api/chat)")
    chat.add_argument("--task", default="demo-chat",
                      help="the id of the chat task to talk to (default: demo-chat)")
    chat.add_argument("--chat-id", help="continue this chat (chats are kept in chats.json in "
                      "the state folder, $CHATWORKER_STATE_DIR)")
    chat.add_argument("--token", help="a trigger token for the task (default: "
                      "$CHATWORKER_TOKEN, else minted with the signing secret)")
    chat.add_argument("--metadata", help="client data sent with every message, as JSON")
    chat.set_defaults(func=cmd_chat)

    token = sub.add_parser("token", help="print a trigger token for a task")
    token.add_argument("task", help="the chat task's id, e.g. demo-chat")
    token.add_argument("--ttl", default="24h", help="how long it is valid (default: 24h)")
    token.add_argument("--multiple-use", action="store_true",
                       help="reusable (e.g. for the /ui routes); one-time by default")
    token.add_argument("--subject", help="who holds the token (its sub claim, e.g. a user id): "
                       "runs and /ui chats belong to it; default: to this token alone")
    token.set_defaults(func=cmd_token)

    runs = sub.add_parser("runs", help="list runs with status, turn, worker and age")
    runs.add_argument("--all", action="store_true", help="include ended runs")
    runs.add_argument("--limit", type=int, default=50, help="at most this many (default: 50)")
    runs.set_defaults(func=cmd_runs)

    args = parser.parse_args(argv)
    return int(args.func(args))
