"""The Celery broker is ``CHATWORKER_BROKER_URL``: Redis or RabbitMQ, with Redis for run state.

The engine, suspend/resume and recovery scenarios run on both brokers through the ``broker``
and ``engine`` fixtures (tests/conftest.py); these tests check what only the broker decides.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import amqp
import pytest
import redis

from chatworker import runs
from chatworker.engine.celery_app import create_app

from ..conftest import worker_env
from ..rabbitmq_support import PASSWORD, USER, RabbitMQServer
from ..support import (
    ROOT,
    isolated_db,
    payload,
    read_turn,
    running_worker,
    text_of,
    user_message,
    wait_for,
)

AMQP = "amqp://someone:secret@rabbit.example:5672/chat"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("CHATWORKER_BROKER_URL", "CHATWORKER_REDIS_CLUSTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CHATWORKER_REDIS_URL", "redis://127.0.0.1:6390/3")
    return monkeypatch


def test_the_broker_defaults_to_the_redis_of_the_run_state(clean_env: pytest.MonkeyPatch) -> None:
    app = create_app()
    assert app.conf.broker_url == "redis://127.0.0.1:6390/3"
    assert app.conf.broker_transport_options == {"ack_emulation": False}
    assert app.conf.worker_disable_prefetch is True


def test_a_rabbitmq_broker_gets_no_redis_transport_settings(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("CHATWORKER_BROKER_URL", AMQP)
    app = create_app()
    assert app.conf.broker_url == AMQP
    assert "ack_emulation" not in app.conf.broker_transport_options
    assert not app.conf.worker_disable_prefetch  # Celery supports it on Redis only
    # What keeps a long-lived run from being delivered twice holds on every broker.
    assert app.conf.task_acks_late is False
    assert app.conf.worker_prefetch_multiplier == 1


def test_a_cluster_must_name_its_broker(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CHATWORKER_REDIS_CLUSTER", "1")
    with pytest.raises(ValueError, match="CHATWORKER_BROKER_URL must name the Celery broker"):
        create_app()
    clean_env.setenv("CHATWORKER_BROKER_URL", AMQP)
    assert create_app().conf.broker_url == AMQP


def test_a_worker_on_a_cluster_without_a_broker_refuses_to_start(redis_url: str) -> None:
    env = worker_env(redis_url, CHATWORKER_REDIS_CLUSTER="1")
    env.pop("CHATWORKER_BROKER_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "chatworker.worker", "worker", "--loglevel",
         "INFO"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "refusing to start" in done.stderr and "CHATWORKER_BROKER_URL" in done.stderr


def test_on_rabbitmq_redis_holds_run_state_only(
    rabbitmq: RabbitMQServer, rabbitmq_worker: str, chat_id: str
) -> None:
    state = redis.Redis.from_url(rabbitmq_worker, decode_responses=True)
    with isolated_db(rabbitmq_worker, 0, broker=rabbitmq.url("engine"), flush=False):
        started = runs.trigger("echo", payload(chat_id, user_message("hello")))
        assert text_of(read_turn(state, started.run_id)).strip() == "echo: hello (turn 0)"
    # No queue, binding or unacknowledged message of Celery's is in Redis: the worker takes
    # its messages from RabbitMQ's queue.
    celery_keys = [k for k in state.scan_iter()
                   if k.startswith(("_kombu", "unacked")) or k in {"chat", "celery"}]
    assert celery_keys == []
    with amqp.Connection(f"127.0.0.1:{rabbitmq.port}", userid=USER, password=PASSWORD,
                         virtual_host="engine") as conn:
        _, _, consumers = conn.channel().queue_declare("chat", passive=True)
    assert consumers == 1


def test_a_start_message_waits_in_rabbitmq_until_a_worker_comes(
    rabbitmq: RabbitMQServer, redis_url: str, chat_id: str
) -> None:
    """The queue is declared when the message is sent: RabbitMQ would drop a message sent to a
    queue that does not exist yet (nobody consumed it so far)."""
    with isolated_db(redis_url, 15, rabbitmq=rabbitmq) as url, amqp.Connection(
        f"127.0.0.1:{rabbitmq.port}", userid=USER, password=PASSWORD, virtual_host="db15"
    ) as conn:
        channel = conn.channel()
        channel.queue_delete("chat")
        started = runs.trigger("echo", payload(chat_id, user_message("early")))
        # (Polled: the message was sent on another connection, which RabbitMQ need not have
        # routed yet.)
        wait_for(lambda: channel.queue_declare("chat", passive=True)[1:] == (1, 0))
        with running_worker(worker_env(url), name="late"):
            r = redis.Redis.from_url(url, decode_responses=True)
            assert text_of(read_turn(r, started.run_id, timeout=30)).strip() == (
                "echo: early (turn 0)")


def test_a_redis_broker_keeps_no_unacknowledged_message_bookkeeping(
    redis_url: str, chat_id: str
) -> None:
    """Starts and resumes do not pay kombu's ack emulation: no command touches its ``unacked``
    hash between a worker taking a start message and the run's claim (watched with MONITOR)."""
    with isolated_db(redis_url, 14) as url, running_worker(worker_env(url), name="noack"):
        r = redis.Redis.from_url(url, decode_responses=True)
        seen: list[str] = []
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(url, seen, stop), daemon=True)
        watcher.start()
        time.sleep(0.3)  # MONITOR is on
        started = runs.trigger("echo", payload(chat_id, user_message("hello")))
        assert text_of(read_turn(r, started.run_id)).strip() == "echo: hello (turn 0)"
        stop.set()
        watcher.join(5)
        assert any("LPUSH" in c for c in seen)  # the watch saw the start message go out
        assert [c for c in seen if "unacked" in c] == []


def _watch(url: str, seen: list[str], stop: threading.Event) -> None:
    with redis.Redis.from_url(url, decode_responses=True).monitor() as m:
        for event in m.listen():
            seen.append(str(event.get("command", "")))
            if stop.is_set():
                return
