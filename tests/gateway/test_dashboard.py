"""The runs dashboard's JSON API on a real gunicorn gateway over 10,000 runs in Redis.

It answers only the operator credential; its pages of the runs list cost Redis work in
proportion to the page (counted with ``INFO commandstats``), never to the 10,000 runs.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from chatworker.store import keys
from chatworker.store.run_store import RunStore

from .conftest_helpers import Gunicorn, call, finished_turn, gateway_db, gateway_env, xadd_chunks

__all__ = ["gateway_db"]

OPERATOR = "operator-secret-1"
RUNS = 10_000
TASKS = ("echo", "slow")
#: Every 10th run is suspended, every 7th completed, the rest queued.
SUSPENDED, COMPLETED = 10, 7


def _status(i: int) -> str:
    return "suspended" if i % SUSPENDED == 0 else "completed" if i % COMPLETED == 0 else "queued"


def _basic(password: str, user: str = "ops") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


AUTH = _basic(OPERATOR)


@pytest.fixture(scope="module")
def seeded(gateway_db: str) -> redis.Redis:
    client = redis.Redis.from_url(gateway_db, decode_responses=True)
    store = RunStore(client)
    for i in range(RUNS):
        store.create(f"run-{i:05d}", task_id=TASKS[i % 2], chat_id=f"chat-{i}",
                     record={"task_id": TASKS[i % 2], "chat_id": f"chat-{i}",
                             "status": _status(i), "turn": i % 5},
                     first_item=None)
    xadd_chunks(client, "run-09999", [*finished_turn(0, words=3),
                                      {"type": "abort", "reason": "worker lost"},
                                      *finished_turn(1, words=2)])
    return client


@pytest.fixture(scope="module")
def gateway(gateway_db: str, seeded: redis.Redis) -> Iterator[Gunicorn]:
    env = gateway_env(gateway_db, CHATWORKER_DASHBOARD_TOKEN=OPERATOR)
    with Gunicorn(env, name="dash") as gw:
        yield gw
    assert "Traceback" not in gw.log(), gw.log()[-3000:]


@pytest.fixture(scope="module")
def no_token_gateway(gateway_db: str, seeded: redis.Redis) -> Iterator[Gunicorn]:
    env = gateway_env(gateway_db)
    env.pop("CHATWORKER_DASHBOARD_TOKEN", None)
    with Gunicorn(env, name="dash-off") as gw:
        yield gw


def _commands(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def _counted(client: redis.Redis, gw: Gunicorn, path: str) -> tuple[Any, dict[str, int]]:
    """GET ``path`` and the Redis commands it cost, by name."""
    client.config_resetstat()
    status, body, _ = call(gw.url, "GET", path, headers=AUTH)
    assert status == 200, body
    used = _commands(client)
    for name in ("info", "config|resetstat", "config"):
        used.pop(name, None)
    return body, used


def _page_reads(used: dict[str, int]) -> int:
    """The commands a page of the runs list sends: rows, and the index buckets' reads."""
    return sum(used.get(name, 0) for name in ("hmget", "zrevrange", "zcard"))


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/runs/run-00001", "/dashboard/api/runs",
                                  "/dashboard/api/summary", "/dashboard/api/runs/run-00001"])
def test_refused_without_the_operator_credential(gateway: Gunicorn, path: str) -> None:
    status, body, headers = call(gateway.url, "GET", path)
    assert status == 401
    assert body["error"] == "unauthorized"
    assert "CHATWORKER_DASHBOARD_TOKEN" in body["message"]
    assert headers["WWW-Authenticate"].startswith("Basic")
    # a wrong password, or a chat token, is refused the same way
    assert call(gateway.url, "GET", path, headers=_basic("wrong"))[0] == 401
    assert call(gateway.url, "GET", path, token="not-the-operator")[0] == 401
    assert call(gateway.url, "POST", "/dashboard/api/runs/run-00001/cancel")[0] == 401


def test_refused_when_no_credential_is_configured(no_token_gateway: Gunicorn) -> None:
    status, body, _ = call(no_token_gateway.url, "GET", "/dashboard/api/runs", headers=AUTH)
    assert status == 403
    assert body["error"] == "dashboard_disabled"
    assert "CHATWORKER_DASHBOARD_TOKEN" in body["message"]


def test_the_page_and_a_bearer_credential(gateway: Gunicorn) -> None:
    status, body, _ = call(gateway.url, "GET", "/dashboard", headers=AUTH)
    assert status == 200 and "chatworker runs" in body
    status, body, _ = call(gateway.url, "GET", "/dashboard/api/summary", token=OPERATOR)
    assert status == 200
    assert body["counts"]["total"] == RUNS
    assert body["counts"]["suspended"] == 0  # seeded statuses, not suspended by a worker


def test_pages_walk_all_runs_newest_first_at_page_cost(gateway: Gunicorn,
                                                       seeded: redis.Redis) -> None:
    body, used = _counted(seeded, gateway, "/dashboard/api/runs?limit=50")
    assert [r["runId"] for r in body["runs"]] == [f"run-{i:05d}" for i in range(9999, 9949, -1)]
    first = body["runs"][0]
    assert first["taskId"] == "slow" and first["chatId"] == "chat-9999"
    assert first["status"] == "queued" and first["turn"] == 4
    assert body["nextOffset"] == 50
    # one hmget per row shown, two reads per index bucket: nothing in proportion to 10,000 runs
    # (the reads a page makes; the workers of other tests sweep the same server meanwhile)
    assert used.get("hmget") == 50, used
    assert _page_reads(used) <= 50 + 2 * keys.BUCKETS, used
    body, used = _counted(seeded, gateway, "/dashboard/api/runs?limit=50&offset=9980")
    assert [r["runId"] for r in body["runs"]] == [f"run-{i:05d}" for i in range(19, -1, -1)]
    assert body["nextOffset"] is None
    assert _page_reads(used) <= 20 + 2 * keys.BUCKETS, used


def test_filters_by_status_and_task(gateway: Gunicorn, seeded: redis.Redis) -> None:
    body, used = _counted(seeded, gateway,
                          "/dashboard/api/runs?status=suspended&task=echo&limit=20")
    ids = [r["runId"] for r in body["runs"]]
    assert ids == [f"run-{i:05d}" for i in range(9990, 9790, -10)]
    assert all(r["status"] == "suspended" and r["taskId"] == "echo" for r in body["runs"])
    # the page ends at the last run it showed, so the next one goes on from there
    assert body["nextOffset"] == 9999 - 9800 + 1
    assert used.get("hmget") == body["scanned"] == body["nextOffset"], used
    following = call(gateway.url, "GET", "/dashboard/api/runs?status=suspended&task=echo"
                     f"&limit=20&offset={body['nextOffset']}", headers=AUTH)[1]
    assert following["runs"][0]["runId"] == "run-09790"
    # ended and not-ended
    body = call(gateway.url, "GET", "/dashboard/api/runs?status=completed&limit=5",
                headers=AUTH)[1]
    assert [r["runId"] for r in body["runs"]] == [
        f"run-{i:05d}" for i in (9996, 9989, 9982, 9975, 9968)]
    body = call(gateway.url, "GET", "/dashboard/api/runs?status=active&limit=3", headers=AUTH)[1]
    assert [r["runId"] for r in body["runs"]] == ["run-09999", "run-09998", "run-09997"]


def test_a_rare_filter_is_bounded(gateway: Gunicorn, seeded: redis.Redis) -> None:
    body, used = _counted(seeded, gateway, "/dashboard/api/runs?task=nosuchtask&limit=50")
    assert body["runs"] == []
    assert body["scanned"] == 2000 and body["nextOffset"] == 2000
    # one read of each index bucket, down to the budget's depth
    assert used.get("hmget") == 2000 and used.get("zrevrange", 0) <= keys.BUCKETS, used


@pytest.mark.parametrize(("query", "needle"), [
    ("status=bogus", "unknown status"), ("limit=0", "`limit`"), ("limit=x", "`limit`"),
    ("offset=-1", "`offset`"),
])
def test_bad_queries_are_clear_400s(gateway: Gunicorn, query: str, needle: str) -> None:
    status, body, _ = call(gateway.url, "GET", f"/dashboard/api/runs?{query}", headers=AUTH)
    assert status == 400 and body["error"] == "bad_request" and needle in body["message"]


def test_an_unknown_api_route_is_a_json_404(gateway: Gunicorn) -> None:
    status, body, _ = call(gateway.url, "GET", "/dashboard/api/nothing/here", headers=AUTH)
    assert status == 404 and body["error"] == "not_found" and "summary" in body["message"]
    status, body, _ = call(gateway.url, "DELETE", "/dashboard/api/runs/run-00001", headers=AUTH)
    assert status in (404, 405) and body["error"] in ("not_found", "method_not_allowed")


def test_a_runs_detail_and_timeline(gateway: Gunicorn) -> None:
    status, body, _ = call(gateway.url, "GET", "/dashboard/api/runs/run-09999", headers=AUTH)
    assert status == 200, body
    assert body["run"]["taskId"] == "slow" and body["record"]["chat_id"] == "chat-9999"
    kinds = [e["kind"] for e in body["timeline"]]
    assert kinds == ["created", "turn", "turn-end", "recovered", "turn", "turn-end"]
    status, body, _ = call(gateway.url, "GET", "/dashboard/api/runs/no-such-run", headers=AUTH)
    assert status == 404 and body["error"] == "run_not_found"


def test_cancel_from_the_dashboard(gateway: Gunicorn, seeded: redis.Redis) -> None:
    status, body, _ = call(gateway.url, "POST", "/dashboard/api/runs/run-00003/cancel",
                           headers=AUTH)
    assert status == 202, body
    assert seeded.hget(keys.run("run-00003"), "status") == "canceled"
    status, body, _ = call(gateway.url, "POST", "/dashboard/api/runs/nope/stop", headers=AUTH)
    assert status == 404 and body["error"] == "run_not_found"
