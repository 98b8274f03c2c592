"""What tokens keep in Redis: spent one-time tokens and the development signing secret."""

from __future__ import annotations

import redis

from . import keys

#: Where the development secret is kept (named in the dev-mode warning).
DEV_SECRET_KEY = keys.DEV_SECRET


def spend(client: redis.Redis[str], jti: str, ttl: int) -> bool:
    """Mark a one-time token as spent for ``ttl`` seconds; False if it already was."""
    return bool(client.set(keys.token_use(jti), "1", nx=True, ex=ttl))


def unspend(client: redis.Redis[str], jti: str) -> None:
    """Forget that a one-time token was spent (its trigger failed; the client may retry)."""
    client.delete(keys.token_use(jti))


def dev_secret(client: redis.Redis[str], candidate: str) -> tuple[str, bool]:
    """The deployment's development secret, storing ``candidate`` if there was none yet:
    ``(secret, created)``."""
    created = bool(client.set(keys.DEV_SECRET, candidate, nx=True))
    return str(client.get(keys.DEV_SECRET)), created
