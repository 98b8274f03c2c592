"""Scoped JWTs: what is accepted, what is refused, one-time use and the dev-mode secret."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import jwt
import pytest
import redis

from chatworker import tokens
from chatworker.store import keys

from .conftest import SECRET


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_trigger_token_scope_ttl_and_one_time_flag(redis_url: str) -> None:
    token = tokens.create_trigger_token("echo")
    claims = tokens.verify(token)
    assert claims.scopes == ("trigger:tasks:echo",)
    assert claims.one_time and claims.jti
    assert abs(claims.expires_at - time.time() - 86400) < 5
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    multi = tokens.verify(tokens.create_trigger_token("echo", ttl="15m", multiple_use=True))
    assert not multi.one_time and abs(multi.expires_at - time.time() - 900) < 5


def test_run_token_scopes(redis_url: str) -> None:
    claims = tokens.verify(tokens.create_run_token("run_1", ttl=60))
    assert set(claims.scopes) == {"read:runs:run_1", "write:inputStreams:run_1"}
    assert tokens.require_scope(tokens.create_run_token("run_1"), "read:runs:run_1")
    with pytest.raises(tokens.TokenScopeError) as info:
        tokens.require_scope(tokens.create_run_token("run_1"), "read:runs:run_2")
    assert info.value.status == 403


def _b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _good_claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "chatworker", "iat": now, "exp": now + 60, "scopes": ["read:runs:r"], **extra}


def _tampered() -> str:
    head, _, sig = tokens.create_run_token("r").split(".")
    return f"{head}.{_b64(_good_claims(scopes=['*']))}.{sig}"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: None, id="missing"),
        pytest.param(lambda: "", id="empty"),
        pytest.param(lambda: "a.b.c", id="garbage"),
        pytest.param(
            lambda: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_good_claims())}.",
            id="alg-none",
        ),
        pytest.param(lambda: jwt.encode(_good_claims(), "another-secret-" * 3), id="wrong-key"),
        pytest.param(lambda: jwt.encode(_good_claims(), SECRET, algorithm="HS512"), id="other-alg"),
        pytest.param(
            lambda: jwt.encode(_good_claims(exp=int(time.time()) - 60), SECRET), id="expired"
        ),
        pytest.param(
            lambda: jwt.encode(_good_claims(iat=int(time.time()) + 120), SECRET), id="iat-ahead"
        ),
        pytest.param(lambda: jwt.encode(_good_claims(sub=5), SECRET), id="sub-not-a-string"),
        pytest.param(lambda: jwt.encode(_good_claims(sub=""), SECRET), id="sub-empty"),
        pytest.param(lambda: jwt.encode(_good_claims(iss="someone"), SECRET), id="issuer"),
        pytest.param(
            lambda: jwt.encode({k: v for k, v in _good_claims().items() if k != "exp"}, SECRET),
            id="no-exp",
        ),
        pytest.param(lambda: jwt.encode(_good_claims(scopes="read:runs:r"), SECRET), id="scopes"),
        pytest.param(lambda: _tampered(), id="tampered"),
    ],
)
def test_refused_tokens(redis_url: str, make: Any) -> None:
    with pytest.raises(tokens.TokenError) as info:
        tokens.verify(make())
    assert info.value.status == 401 and not isinstance(info.value, tokens.TokenScopeError)


def test_expired_message_says_how_to_renew(redis_url: str) -> None:
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify(jwt.encode(_good_claims(exp=int(time.time()) - 31), SECRET))


def test_clock_skew_up_to_the_leeway_is_tolerated(redis_url: str) -> None:
    now = int(time.time())
    # Minted by a process whose clock is up to LEEWAY seconds ahead, or just expired here.
    for claims in (_good_claims(iat=now + 1), _good_claims(iat=now + tokens.LEEWAY - 2),
                   _good_claims(iat=now - 100, exp=now - 1)):  # fmt: skip
        assert tokens.verify(jwt.encode(claims, SECRET)).scopes == ("read:runs:r",)
    with pytest.raises(tokens.TokenError, match="not yet valid"):
        tokens.verify(jwt.encode(_good_claims(iat=now + tokens.LEEWAY + 30), SECRET))


def test_subject_and_principal(redis_url: str) -> None:
    alice = tokens.verify(tokens.create_trigger_token("echo", subject="alice"))
    again = tokens.verify(tokens.create_trigger_token("echo", multiple_use=True, subject="alice"))
    assert alice.subject == "alice" and alice.principal == again.principal == "sub:alice"
    assert alice.principal == tokens.subject_principal("alice")
    assert claims_of(tokens.create_trigger_token("echo", subject="alice"))["sub"] == "alice"
    # Without a subject, a token is its own principal.
    first = tokens.verify(tokens.create_trigger_token("echo"))
    second = tokens.verify(tokens.create_trigger_token("echo"))
    assert first.subject is None and first.principal == f"jti:{first.jti}"
    assert first.principal != second.principal
    foreign = jwt.encode(_good_claims(), SECRET)  # minted elsewhere, no sub and no jti
    assert tokens.verify(foreign).principal == tokens.verify(foreign).principal
    assert tokens.verify(foreign).principal.startswith("token:")
    with pytest.raises(ValueError, match="subject"):
        tokens.create_trigger_token("echo", subject="")


def test_one_time_tokens_are_spent_once(redis_url: str, r: redis.Redis) -> None:
    claims = tokens.verify(tokens.create_trigger_token("echo", ttl=30))
    tokens.spend_one_time(claims)
    assert r.exists(keys.token_use(claims.jti or ""))
    assert 0 < r.ttl(keys.token_use(claims.jti or "")) <= 31
    with pytest.raises(tokens.TokenError, match="already used"):
        tokens.spend_one_time(claims)
    multi = tokens.verify(tokens.create_trigger_token("echo", multiple_use=True))
    tokens.spend_one_time(multi)
    tokens.spend_one_time(multi)


def test_missing_secret_and_dev_mode(
    redis_url: str, r: redis.Redis, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("CHATWORKER_SECRET_KEY")
    monkeypatch.delenv("CHATWORKER_DEV", raising=False)
    monkeypatch.setattr(tokens, "_secret_cache", {})
    with pytest.raises(tokens.SecretMissing, match="CHATWORKER_SECRET_KEY"):
        tokens.create_run_token("r")
    from web.app import create_app

    with pytest.raises(tokens.SecretMissing):
        create_app()
    monkeypatch.setenv("CHATWORKER_DEV", "1")
    r.delete(keys.DEV_SECRET)
    with caplog.at_level(logging.WARNING, logger="chatworker.tokens"):
        tokens.check_secret("test gateway")
    assert "anyone who can read this Redis can mint tokens" in caplog.text
    token = tokens.create_run_token("r")
    shared = r.get(keys.DEV_SECRET)
    assert shared and jwt.decode(token, shared, algorithms=["HS256"], issuer="chatworker")
    monkeypatch.setattr(tokens, "_secret_cache", {})
    assert tokens.verify(token).scopes  # another process reads the same secret from Redis
    assert create_app().name
    r.delete(keys.DEV_SECRET)
