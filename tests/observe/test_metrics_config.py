"""Where a worker process serves its metrics (``CHATWORKER_METRICS_PORT``), and the JSON log
format, in this process (no Redis needed)."""

from __future__ import annotations

import json
import logging
import socket
import urllib.request

from chatworker import logs, metrics


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def test_port_zero_binds_a_free_port_and_a_range_skips_a_busy_one() -> None:
    port = metrics.serve("0")
    assert port is not None and "python_info" in fetch(port)
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        first = busy.getsockname()[1]
        bound = metrics.serve(f"{first}-{first + 20}")
        assert bound is not None and first < bound <= first + 20
        assert "python_info" in fetch(bound)


def test_unset_or_malformed_port_serves_nothing() -> None:
    assert metrics.serve("") is None
    assert metrics.serve("ninety") is None


def test_json_lines_carry_the_bound_run_fields() -> None:
    record = logging.LogRecord("chatworker.run", logging.INFO, __file__, 1, "run %s: turn %d",
                               ("r1", 2), None)
    token = logs.bind(run_id="r1", task="echo", chat_id="c1", turn=2)
    try:
        logs.RunFieldsFilter().filter(record)
    finally:
        logs.reset(token)
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["message"] == "run r1: turn 2"
    assert (line["run_id"], line["task"], line["chat_id"], line["turn"]) == ("r1", "echo", "c1", 2)
    assert line["level"] == "INFO" and line["logger"] == "chatworker.run"
    plain = logging.LogRecord("x", logging.WARNING, __file__, 1, "no run", (), None)
    assert "run_id" not in json.loads(logs.JsonFormatter().format(plain))
