"""A worker process's garbage collector tuning (``chatworker.config.tune_gc``), in-process."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest

from chatworker.config import broker_url, gc_thresholds, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_worker_makes_full_collections_rare_and_freezes_startup_objects(
    restore_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHATWORKER_GC_THRESHOLD", raising=False)
    gc.unfreeze()
    tune_gc()
    assert gc.get_threshold() == (50000, 20, 100)
    assert gc.get_freeze_count() > 1000  # the imported modules' objects, out of every pass


def test_the_thresholds_are_configurable_or_left_alone(
    restore_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATWORKER_GC_THRESHOLD", "1234,5,6")
    tune_gc()
    assert gc.get_threshold() == (1234, 5, 6)
    gc.set_threshold(700, 10, 10)
    monkeypatch.setenv("CHATWORKER_GC_THRESHOLD", "default")
    tune_gc()
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize("raw", ["lots", "1,2,3,4", "-1", "10,,2"])
def test_a_bad_setting_is_named_and_python_defaults_kept(
    raw: str, restore_gc: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CHATWORKER_GC_THRESHOLD", raw)
    with pytest.raises(ValueError, match="CHATWORKER_GC_THRESHOLD"):
        gc_thresholds()
    gc.set_threshold(700, 10, 10)
    with caplog.at_level(logging.ERROR, logger="chatworker.worker"):
        tune_gc()  # a worker starting with it logs the problem and carries on
    assert gc.get_threshold() == (700, 10, 10)
    assert "expected up to three non-negative integers" in caplog.text


def test_the_broker_defaults_to_the_redis_url_and_must_be_named_on_a_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATWORKER_REDIS_URL", "redis://state:6379/0")
    monkeypatch.delenv("CHATWORKER_BROKER_URL", raising=False)
    monkeypatch.delenv("CHATWORKER_REDIS_CLUSTER", raising=False)
    assert broker_url() == "redis://state:6379/0"
    monkeypatch.setenv("CHATWORKER_REDIS_CLUSTER", "1")
    with pytest.raises(ValueError, match="CHATWORKER_BROKER_URL must name the Celery broker"):
        broker_url()
    monkeypatch.setenv("CHATWORKER_BROKER_URL", "redis://broker:6379/0")
    assert broker_url() == "redis://broker:6379/0"
