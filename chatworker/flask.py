"""The stable import path of the HTTP gateway: ``chatworker.flask.chat_blueprint()``.

The gateway lives in :mod:`chatworker.gateway`; this module re-exports what a host Flask app
uses, so ``app.register_blueprint(chatworker.flask.chat_blueprint())`` keeps working.
"""

from __future__ import annotations

from .gateway.blueprint import chat_blueprint
from .gateway.http import ApiError, Gateway, bearer_token, error_response, json_error
from .gateway.ui import default_authorize_ui

__all__ = [
    "ApiError",
    "Gateway",
    "bearer_token",
    "chat_blueprint",
    "default_authorize_ui",
    "error_response",
    "json_error",
]
