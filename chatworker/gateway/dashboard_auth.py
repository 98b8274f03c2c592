"""The dashboard's operator credential: ``CHATWORKER_DASHBOARD_TOKEN``, never a chat token.

A request shows it as HTTP basic auth (any user name, the token as password: what a browser
asks for) or as ``Authorization: Bearer <token>`` (scripts). Without a configured token the
dashboard refuses everything (403): it shows every chat of every user.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os

from flask import Request, Response

from .http import json_error

__all__ = ["TOKEN_ENV", "check_operator", "operator_token"]

#: The environment variable holding the operator credential.
TOKEN_ENV = "CHATWORKER_DASHBOARD_TOKEN"
_REALM = 'Basic realm="chatworker dashboard", charset="UTF-8"'


def operator_token() -> str | None:
    """The configured operator credential (None: the dashboard is disabled)."""
    return os.environ.get(TOKEN_ENV, "").strip() or None


def _presented(req: Request) -> str | None:
    header = req.headers.get("Authorization", "").strip()
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def check_operator(req: Request, token: str | None) -> Response | None:
    """None when ``req`` carries ``token``; else the JSON refusal to answer with."""
    if token is None:
        return json_error(403, "dashboard_disabled",
                          f"the runs dashboard is disabled: set {TOKEN_ENV} on the gateway to "
                          f"an operator password and sign in with it")
    presented = _presented(req)
    if presented is not None and hmac.compare_digest(presented.encode(), token.encode()):
        return None
    response = json_error(401, "unauthorized",
                          "the runs dashboard needs the operator credential: sign in with any "
                          f"user name and the password set in {TOKEN_ENV} (or send "
                          "`Authorization: Bearer <that token>`); chat tokens are not accepted")
    response.headers["WWW-Authenticate"] = _REALM
    return response
