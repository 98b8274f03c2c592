"""Scoped access tokens: HS256 JWTs signed with ``CHATWORKER_SECRET_KEY``, via PyJWT.

Trigger tokens (``trigger:tasks:<id>``) let a browser start a run of one task; run tokens
(``read:runs:<id>``, ``write:inputStreams:<id>``) let it read and write that one run.

A trigger token may name its holder (``sub``, the subject). The *principal* of a token is its
subject, or, for a token without one, the token itself: runs, ``Idempotency-Key`` replays and
``/ui`` chats belong to the principal that started them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from .config import Duration, get_redis, parse_duration
from .store import credentials

log = logging.getLogger("chatworker.tokens")

ALGORITHM = "HS256"
ISSUER = "chatworker"
#: Seconds of clock difference tolerated on ``iat`` and ``exp``: a token minted by a process
#: whose clock is a little ahead (or checked by one a little behind) is still accepted.
LEEWAY = 30


class TokenError(Exception):
    """A token was missing, malformed, badly signed or expired (HTTP 401)."""

    status = 401
    code = "invalid_token"


class TokenScopeError(TokenError):
    """A valid token that does not grant this action (another run or task: HTTP 403)."""

    status = 403
    code = "forbidden"


class SecretMissing(RuntimeError):
    """No ``CHATWORKER_SECRET_KEY`` and not in dev mode."""


def dev_mode() -> bool:
    """True when ``CHATWORKER_DEV=1``: a signing secret is generated and shared through Redis."""
    return os.environ.get("CHATWORKER_DEV", "") in {"1", "true", "yes"}


_secret_cache: dict[str, str] = {}

_MISSING = (
    "CHATWORKER_SECRET_KEY is not set. Set it to a long random string shared by every "
    "worker and gateway (`python -c 'import secrets;print(secrets.token_urlsafe(32))'`),"
    " or set CHATWORKER_DEV=1 to have a development secret generated for you."
)


def check_secret(process: str, *, warn: bool = True) -> None:
    """At the start of a worker or gateway: refuse to run without a signing secret.

    Raises :class:`SecretMissing` (with what to do) when ``CHATWORKER_SECRET_KEY`` is unset
    outside dev mode: every token would fail later otherwise. In dev mode without a key, logs
    (unless ``warn`` is False) a WARNING naming the risk of the generated secret.
    """
    if os.environ.get("CHATWORKER_SECRET_KEY"):
        return
    if not dev_mode():
        raise SecretMissing(_MISSING)
    if warn:
        warn_dev_secret(process)


def warn_dev_secret(process: str) -> None:
    """Log the dev-mode WARNING when this process signs with the generated secret."""
    if os.environ.get("CHATWORKER_SECRET_KEY") or not dev_mode():
        return
    log.warning(
        "%s: CHATWORKER_DEV=1 and no CHATWORKER_SECRET_KEY: the token signing secret is "
        "generated and kept in Redis (%s) with no expiry, so anyone who can read this Redis "
        "can mint tokens for every task and run. For development only: set "
        "CHATWORKER_SECRET_KEY in production.",
        process,
        credentials.DEV_SECRET_KEY,
    )


def get_secret() -> str:
    """The signing secret: ``CHATWORKER_SECRET_KEY``, or in dev mode one kept in Redis.

    Dev mode never turns authentication off; it only saves you from choosing a secret. The
    generated secret lives in Redis so that every worker and gateway of the deployment agree.
    """
    secret = os.environ.get("CHATWORKER_SECRET_KEY")
    if secret:
        return secret
    if not dev_mode():
        raise SecretMissing(_MISSING)
    cached = _secret_cache.get("dev")
    if cached:
        return cached
    value, created = credentials.dev_secret(get_redis(), secrets.token_urlsafe(32))
    if created:
        log.warning("CHATWORKER_DEV=1: generated a development signing secret (kept in Redis)")
    _secret_cache["dev"] = value
    return value


def _encode(claims: dict[str, Any], ttl: Duration) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "iat": now, "exp": now + int(parse_duration(ttl)), **claims}
    return jwt.encode(body, get_secret(), algorithm=ALGORITHM)


def create_trigger_token(
    task_id: str, ttl: Duration = "24h", multiple_use: bool = False, subject: str | None = None
) -> str:
    """A token that may trigger runs of ``task_id``; one-time use unless ``multiple_use``.

    ``subject`` (the ``sub`` claim) names who holds it, e.g. your user id: every token with the
    same subject is the same principal, so its runs and ``/ui`` chats stay reachable with a
    fresh token. Without one, only this very token reaches what it starts.
    """
    claims: dict[str, Any] = {"scopes": [f"trigger:tasks:{task_id}"], "jti": uuid.uuid4().hex}
    if subject is not None:
        if not isinstance(subject, str) or not subject:
            raise ValueError(f"a token subject must be a non-empty string, not {subject!r}")
        claims["sub"] = subject
    if not multiple_use:
        claims["otu"] = True
    return _encode(claims, ttl)


def create_run_token(run_id: str, ttl: Duration = "1h") -> str:
    """A token that may read run ``run_id`` and write to its input streams."""
    return _encode({"scopes": [f"read:runs:{run_id}", f"write:inputStreams:{run_id}"]}, ttl)


def subject_principal(subject: str) -> str:
    """The principal of every token whose subject is ``subject`` (see :attr:`Claims.principal`).

    Pass it as ``principal=`` when your own code starts a run for that user
    (``runs.trigger(..., principal=subject_principal(user_id))``), so that the user's tokens
    reach it through ``/ui``.
    """
    return f"sub:{subject}"


@dataclass(frozen=True)
class Claims:
    """A verified token's scopes and expiry, and who holds it."""

    scopes: tuple[str, ...]
    expires_at: int
    jti: str | None = None
    one_time: bool = False
    subject: str | None = None
    #: Who the token stands for: ``sub:<subject>``, else ``jti:<jti>`` (this token alone), else
    #: ``token:<hash>`` for a token minted elsewhere without either.
    principal: str = ""


def verify(token: str | None) -> Claims:
    """Check the signature and expiry of ``token``; raise :class:`TokenError` if it fails."""
    if not token:
        raise TokenError("missing access token: send `Authorization: Bearer <token>`")
    try:
        body = jwt.decode(
            token,
            get_secret(),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "iss"]},
            leeway=LEEWAY,
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("access token expired: renew it with POST /runs/<runId>/token") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid access token ({exc})") from exc
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise TokenError("invalid access token (no scopes)")
    subject, jti = body.get("sub"), body.get("jti")
    if subject is not None and (not isinstance(subject, str) or not subject):
        raise TokenError("invalid access token (`sub` must be a non-empty string)")
    if jti is not None and (not isinstance(jti, str) or not jti):
        raise TokenError("invalid access token (`jti` must be a non-empty string)")
    if subject is not None:
        principal = subject_principal(subject)
    elif jti is not None:
        principal = f"jti:{jti}"
    else:
        principal = "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return Claims(tuple(scopes), int(body["exp"]), jti, bool(body.get("otu")), subject, principal)


def require_scope(token: str | None, scope: str) -> Claims:
    """Verify ``token`` and check it grants ``scope``; 403 when it is valid but for another."""
    claims = verify(token)
    if scope not in claims.scopes:
        raise TokenScopeError(f"this token does not grant `{scope}`")
    return claims


def spend_one_time(claims: Claims) -> None:
    """Mark a one-time trigger token as used; raise :class:`TokenError` if it already was."""
    if not claims.one_time or not claims.jti:
        return
    ttl = max(1, claims.expires_at - int(time.time()))
    if not credentials.spend(get_redis(), claims.jti, ttl):
        raise TokenError("this one-time trigger token was already used: create a new one")
