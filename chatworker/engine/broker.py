"""Which Celery broker carries the messages that start and resume runs.

``CHATWORKER_BROKER_URL`` names it (:func:`chatworker.config.broker_url`): Redis (``redis://``,
``rediss://``, ``sentinel://``) or RabbitMQ (``amqp://``, ``amqps://``), or any other transport
Celery speaks. Unset, the broker is
the Redis of ``CHATWORKER_REDIS_URL``. A broker message only says "run this run id": the run's
state, inbox, stream and lease are in Redis, so nothing else depends on which broker it is.
"""

from __future__ import annotations

from typing import Any

from kombu.utils.url import maybe_sanitize_url

#: URL schemes served by Celery's Redis transport (the ones its transport options apply to).
REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "sentinel"})


def scheme(url: str) -> str:
    """The URL's transport, lower case (``"redis"``, ``"amqp"``, ...)."""
    return url.partition("://")[0].lower() if "://" in url else url.lower()


def is_redis(url: str) -> bool:
    """The broker at ``url`` is served by Celery's Redis transport."""
    return scheme(url) in REDIS_SCHEMES


def transport_options(url: str) -> dict[str, Any]:
    """Celery's ``broker_transport_options`` for the broker at ``url``.

    Redis: no ack emulation. Chat runs are acknowledged as they start and never redelivered by
    the broker (a run whose start message was lost is sent again by chatworker's own sweep), so
    the transport's bookkeeping of unacknowledged messages (an ``unacked`` hash written and
    cleared in two round trips per start, and a visibility timeout that could hand a message out
    twice) buys nothing and delays every start and resume. Other brokers get none.
    """
    if is_redis(url):
        return {"ack_emulation": False}
    return {}


def describe(url: str) -> str:
    """The URL with its password hidden, for logs and banners."""
    return str(maybe_sanitize_url(url))
