"""Which Celery broker carries the messages that start and resume runs.

``CHATWORKER_BROKER_URL`` names it: Redis (``redis://``, ``rediss://``, ``sentinel://``) or
RabbitMQ (``amqp://``, ``amqps://``), or any other transport Celery speaks. Unset, the broker is
the Redis of ``CHATWORKER_REDIS_URL``. A broker message only says "run this run id": the run's
state, inbox, stream and lease are in Redis, so nothing else depends on which broker it is.
"""

from __future__ import annotations

import os
from typing import Any

from kombu.utils.url import maybe_sanitize_url

from ..config import env, redis_url

#: URL schemes served by Celery's Redis transport (the ones its transport options apply to).
REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "sentinel"})


class BrokerNotConfigured(ValueError):
    """The configuration names no broker Celery can use."""


def _cluster_mode() -> bool:
    return os.environ.get("CHATWORKER_REDIS_CLUSTER", "").strip().lower() in {"1", "true", "yes"}


def broker_url() -> str:
    """``CHATWORKER_BROKER_URL``, default ``CHATWORKER_REDIS_URL`` (a single Redis server).

    With ``CHATWORKER_REDIS_CLUSTER`` set it is required: Celery's Redis transport does not
    speak Redis Cluster, so the cluster cannot be the broker.
    """
    url = os.environ.get("CHATWORKER_BROKER_URL", "").strip()
    if url:
        return url
    if _cluster_mode():
        raise BrokerNotConfigured(
            "CHATWORKER_REDIS_CLUSTER is set but CHATWORKER_BROKER_URL is not: Celery cannot use "
            "a Redis Cluster as its broker; set CHATWORKER_BROKER_URL to a RabbitMQ "
            "(amqp://user:password@host:5672//) or a single Redis server (redis://host:6379/0)"
        )
    return redis_url()


def scheme(url: str) -> str:
    """The URL's transport, lower case (``"redis"``, ``"amqp"``, ...)."""
    return url.partition("://")[0].lower() if "://" in url else url.lower()


def is_redis(url: str) -> bool:
    """The broker at ``url`` is served by Celery's Redis transport."""
    return scheme(url) in REDIS_SCHEMES


def transport_options(url: str) -> dict[str, Any]:
    """Celery's ``broker_transport_options`` for the broker at ``url``.

    Redis: ``visibility_timeout`` (``CHATWORKER_VISIBILITY_TIMEOUT``, default 3600 s), how long
    a message fetched but not acknowledged stays hidden before Redis hands it out again. Other
    brokers get none (RabbitMQ gives an unacknowledged message back when its consumer's
    connection closes).
    """
    if is_redis(url):
        return {"visibility_timeout": int(env("CHATWORKER_VISIBILITY_TIMEOUT", "3600"))}
    return {}


def describe(url: str) -> str:
    """The URL with its password hidden, for logs and banners."""
    return str(maybe_sanitize_url(url))
