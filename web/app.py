"""The gateway app: the chat blueprint, the runs dashboard, a health check and the demo page.

Run it with ``gunicorn -k gevent 'web.app:create_app()'`` (SSE needs an async worker).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import redis
from flask import Flask, Response, send_from_directory
from werkzeug.routing import Map, PathConverter

from chatworker import logs, tokens
from chatworker.config import broker_url, env, get_redis, redis_url
from chatworker.engine import registry
from chatworker.gateway.blueprint import chat_blueprint
from chatworker.gateway.dashboard import dashboard_blueprint
from chatworker.gateway.http import error_response
from chatworker.gateway.metrics import mount_metrics
from chatworker.gateway.sse import heartbeat_seconds

log = logging.getLogger("chatworker.web")

DIST = Path(__file__).resolve().parent / "dist"

_PLACEHOLDER = """<!doctype html>
<html><head><meta charset="utf-8"><title>chatworker</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>chatworker gateway</h1>
<p>The API is served under <code>{prefix}</code>. The demo chat page is not built yet:
run <code>npm install &amp;&amp; npm run build</code> in <code>web/</code>, which writes
<code>web/dist/</code>, then restart the gateway.</p>
<p>Health: <a href="/healthz">/healthz</a></p>
</body></html>
"""


def _redacted(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def _outside(prefix: str) -> type[PathConverter]:
    """A path converter that never matches under ``prefix``, so API 404/405 stay JSON."""
    escaped = re.escape(prefix.strip("/"))

    class OutsidePrefix(PathConverter):
        regex = rf"(?!{escaped}(?:/|$))[^/].*?" if escaped else PathConverter.regex

        def __init__(self, url_map: Map) -> None:
            super().__init__(url_map)

    return OutsidePrefix


def create_app(**blueprint_options: Any) -> Flask:
    """The gateway Flask app; raises ``SecretMissing`` without ``CHATWORKER_SECRET_KEY``
    (unless ``CHATWORKER_DEV=1``). ``blueprint_options`` go to ``chat_blueprint``."""
    logs.configure()  # CHATWORKER_LOG_LEVEL, CHATWORKER_LOG_FORMAT
    tokens.check_secret("chatworker gateway")  # SecretMissing, or the dev-mode warning
    broker_url()  # ValueError on a Redis Cluster without CHATWORKER_BROKER_URL, at boot
    tasks = registry.load_tasks()
    prefix = blueprint_options.pop("url_prefix", env("CHATWORKER_URL_PREFIX", "/api/chat"))
    app = Flask(__name__, static_folder=None)
    app.url_map.converters["outside"] = _outside(prefix)
    app.register_blueprint(chat_blueprint(url_prefix=prefix, **blueprint_options))
    mount_metrics(app)  # GET /metrics (the [metrics] extra)
    app.register_blueprint(dashboard_blueprint())  # /dashboard, behind CHATWORKER_DASHBOARD_TOKEN
    if "web.demo_tasks" in {name.strip() for name in env("CHATWORKER_TASKS", "").split(",")}:
        from .demo_api import demo_blueprint

        app.register_blueprint(demo_blueprint(chat_api=prefix))
    log.info(
        "chatworker gateway: redis=%s tasks=[%s] prefix=%s heartbeat=%gs max_body=%s",
        _redacted(redis_url()),
        ", ".join(sorted(tasks)) or "none (set CHATWORKER_TASKS)",
        prefix,
        heartbeat_seconds(),
        env("CHATWORKER_MAX_BODY", "1048576"),
    )

    @app.get("/healthz")
    def healthz() -> Response:
        """200 when Redis answers, 503 otherwise (for load balancers and orchestrators)."""
        try:
            get_redis().ping()
        except redis.RedisError as exc:
            return error_response(redis.ConnectionError(str(exc)))
        return Response('{"ok":true,"redis":"ok"}', mimetype="application/json")

    @app.get("/")
    @app.get("/<outside:path>")
    def static_files(path: str = "index.html") -> Response:
        """The demo page from ``web/dist/`` when it is built, else how to build it."""
        if not DIST.is_dir():
            if path != "index.html":
                return Response("not found\n", status=404, mimetype="text/plain")
            return Response(_PLACEHOLDER.format(prefix=prefix), mimetype="text/html")
        target = DIST / path
        if path != "index.html" and not target.is_file():
            path = "index.html" if "." not in Path(path).name else path
        return send_from_directory(DIST, path)

    return app
