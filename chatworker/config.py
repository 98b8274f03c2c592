"""Settings read from the environment, durations, and the shared Redis connections.

Every setting has a documented default (see the README's table). Values are read when first
needed, so tests and ``chatworker dev`` can set the environment before anything connects.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import threading
from typing import Any, cast

import redis
from redis.cluster import RedisCluster

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}

Duration = int | float | str


def parse_duration(value: Duration) -> float:
    """Seconds from a number of seconds or a string like ``"30s"``, ``"15m"``, ``"2h"``."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use seconds, or e.g. '30s', '15m', '2h')")
    return float(match.group(1)) * _UNITS[match.group(2)]


def env(name: str, default: str) -> str:
    """The environment variable ``name``, or ``default`` when unset or empty."""
    return os.environ.get(name) or default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is not a number") from exc


def redis_url() -> str:
    """``CHATWORKER_REDIS_URL``, default ``redis://localhost:6379/0``."""
    return env("CHATWORKER_REDIS_URL", "redis://localhost:6379/0")


def redis_cluster() -> bool:
    """``CHATWORKER_REDIS_CLUSTER``: ``1`` when ``CHATWORKER_REDIS_URL`` names a node of a Redis
    Cluster (default ``0``: a single server)."""
    return env("CHATWORKER_REDIS_CLUSTER", "0").strip().lower() in ("1", "true", "yes", "on")


def broker_url() -> str:
    """``CHATWORKER_BROKER_URL``: the Celery broker (default: ``CHATWORKER_REDIS_URL``, which a
    cluster cannot serve: the Celery Redis transport does not speak Cluster)."""
    url = os.environ.get("CHATWORKER_BROKER_URL")
    if url:
        return url
    if redis_cluster():
        raise ValueError(
            "CHATWORKER_BROKER_URL must name the Celery broker when CHATWORKER_REDIS_CLUSTER=1 "
            "(a single Redis server or RabbitMQ: Celery's Redis transport does not speak Cluster)"
        )
    return redis_url()


def is_cluster(client: object) -> bool:
    """Whether ``client`` (from :func:`get_redis`) talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def stream_linger_seconds() -> float:
    """``CHATWORKER_STREAM_LINGER_MS``: the most a chunk waits so that it shares a Redis round
    trip with others (default 5 ms; 0 sends every append as soon as none is in flight)."""
    return max(0.0, env_float("CHATWORKER_STREAM_LINGER_MS", 5.0)) / 1000


def stream_maxlen() -> int:
    """``CHATWORKER_STREAM_MAXLEN``: entries kept per output stream (approximate trim)."""
    return int(env_float("CHATWORKER_STREAM_MAXLEN", 20000))


def max_connections() -> int:
    """``CHATWORKER_REDIS_MAX_CONNECTIONS``: pooled connections per process (default 50)."""
    return int(env_float("CHATWORKER_REDIS_MAX_CONNECTIONS", 50))


def retention_seconds() -> float:
    """``CHATWORKER_RETENTION``: how long an ended run's keys are kept (default 1 day)."""
    return parse_duration(env("CHATWORKER_RETENTION", "1d"))


def lease_seconds() -> float:
    """``CHATWORKER_LEASE``: how long a run's owner lease lasts without renewal (default 3 s)."""
    return parse_duration(env("CHATWORKER_LEASE", "3s"))


def requeue_seconds() -> float:
    """``CHATWORKER_REQUEUE_AFTER``: how long a queued or resuming run may wait for a worker to
    claim it before its start message is sent again, in case it was lost (default 5 s; each
    further re-send waits twice as long, up to a minute)."""
    return parse_duration(env("CHATWORKER_REQUEUE_AFTER", "5s"))


def gc_thresholds() -> tuple[int, ...] | None:
    """``CHATWORKER_GC_THRESHOLD``: a worker process's ``gc.set_threshold`` (default
    ``50000,20,100``); ``default`` keeps Python's own."""
    raw = env("CHATWORKER_GC_THRESHOLD", "50000,20,100").strip()
    if raw.lower() == "default":
        return None
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        values = ()
    if not 1 <= len(values) <= 3 or min(values) < 0:
        raise ValueError(
            f"CHATWORKER_GC_THRESHOLD={raw!r}: expected up to three non-negative integers "
            "such as 50000,20,100 (or `default`)"
        )
    return values


def tune_gc() -> None:
    """Make full garbage collections rare in a worker process (``CHATWORKER_GC_THRESHOLD``).

    A process streaming 1,000 chats holds millions of objects, and Python's default thresholds
    ran full collections over all of them every few seconds, stalling every stream (the
    benchmark delivered ~8x fewer tokens per second with them). Objects alive after startup are
    frozen out of collections, and young collections run less often, so short-lived chunks die
    uncounted.
    """
    log = logging.getLogger("chatworker.worker")
    try:
        thresholds = gc_thresholds()
    except ValueError as exc:
        log.error("%s; keeping Python's garbage collector settings", exc)
        return
    if thresholds is None:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    log.debug("gc thresholds %s, %d startup objects frozen", thresholds, gc.get_freeze_count())


_lock = threading.Lock()
_clients: dict[tuple[int, str, bool, bool], redis.Redis[str]] = {}


def connect(url: str, *, blocking: bool = False, cluster: bool = False,
            pool_size: int | None = None) -> redis.Redis[str]:
    """A new client of ``url`` with chatworker's options: a cluster client (redis-py's
    ``RedisCluster``, which follows MOVED/ASK redirections and refreshes the slot map after a
    failover) when ``cluster``; otherwise a client of one server over a blocking pool. Every
    Redis client chatworker makes comes from here (or :func:`get_redis`)."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": 5,
        "retry_on_timeout": not blocking,
        "socket_timeout": None if blocking else 10,
    }
    limit = pool_size or max_connections()
    if cluster:
        # Commands routed to a node whose slot moved, or that failed over, are retried on the
        # new owner once the slot map is refreshed (cluster_error_retry_attempts).
        made_cluster: Any = RedisCluster.from_url(url, max_connections=limit, **options)
        # The cluster client serves the same commands: chatworker types it as a client of str.
        return cast("redis.Redis[str]", made_cluster)
    options["health_check_interval"] = 30
    # A bounded pool that makes callers wait for a free connection rather than fail: a burst
    # of requests (every browser reconnecting after a restart) must queue, not turn into 503s.
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=limit, timeout=30,
                                                 **options)
    # The pool decodes responses (decode_responses=True): a client of str.
    return cast("redis.Redis[str]", redis.Redis(connection_pool=pool))


def get_redis(*, blocking: bool = False) -> redis.Redis[str]:
    """The process's shared Redis client for the configured URL (a cluster client when
    ``CHATWORKER_REDIS_CLUSTER=1``).

    ``blocking=True`` gives a client without a socket timeout, for ``BLPOP``/``XREAD BLOCK``
    and Pub/Sub (redis-py 8 otherwise times those out after 5 s). Clients are per process, so
    a forked worker child makes its own.
    """
    url = redis_url()
    cluster = redis_cluster()
    key = (os.getpid(), url, blocking, cluster)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = connect(url, blocking=blocking, cluster=cluster)
    return client


def reset_redis() -> None:
    """Forget cached clients (after the URL changed, e.g. in tests)."""
    with _lock:
        for client in _clients.values():
            try:
                client.close()
            except Exception:
                pass
        _clients.clear()
