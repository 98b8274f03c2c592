"""The capacity model of ``docs/capacity.md``, computed from this run's figures.

Inputs (measured in this run): CPU per delivered token of the worker, the gateway and Redis,
taken from the whole-turns phase at its smallest size (every chat a fresh run, the turn's start
and suspension included, and too few chats for anything to batch: the dearest figures per
token); Redis commands, network bytes and memory per token from the same phase; memory per
warm run, per suspended run and per open SSE stream, and Redis connections per process, from
the cost-of-waiting section. One assumption: a process (and a Redis server, single-threaded) is
planned at ``UTILIZATION`` of one core, the rest being headroom for latency.

Derived: for 1,000 / 10,000 / 100,000 concurrent chats at 20 and 80 tokens/s, the cores and
processes each component needs, Redis traffic, memory and connections, and the number of chats
at which one Redis server is full. The model is checked against the steady scale phases of the
same run: predicted cores (chats x rate x CPU per token) against the cores measured.
"""

from __future__ import annotations

import math
from typing import Any

from bench.stats import fmt, percentile, table

UTILIZATION = 0.6  # of one core, per process and per Redis server
CHATS = (1_000, 10_000, 100_000)
RATES = (20.0, 80.0)


def inputs(results: dict[str, Any], label: str = "chatworker") -> dict[str, float] | None:
    """The model's inputs from a run's results (None if the run lacks the sections)."""
    turns = [t for t in results.get("turns", []) if t.system == label and t.tokens]
    wait = results.get("waiting")
    conn = results.get("conn_sse")
    if not turns or not wait or not conn:
        return None
    t = min(turns, key=lambda t: t.chats)
    return {
        "source_chats": t.chats,
        "worker_us": t.cpu_us["worker"],
        "gateway_us": t.cpu_us["gateway"],
        "redis_us": t.cpu_us["redis"],
        "redis_commands": t.redis.get("commands", math.nan),
        "redis_net_bytes": t.redis.get("net_in", math.nan) + t.redis.get("net_out", math.nan),
        "redis_mem_bytes": t.redis.get("memory", math.nan),
        "worker_rss_idle": wait["rss_idle"],
        "worker_rss_per_warm": wait["rss_per_warm"],
        "gateway_rss_idle": wait.get("gateway_rss_idle", math.nan),
        "gateway_rss_per_stream": wait.get("gateway_rss_per_stream", math.nan),
        "redis_per_suspended": wait["redis_per_suspended"],
        "worker_conns": wait["conn_warm"].get("worker", 0),
        "gateway_conns": conn.get("gateway", 0),
        "utilization": UTILIZATION,
    }


def derive(inp: dict[str, float], chats: int, rate: float) -> dict[str, float]:
    """The derived figures for ``chats`` concurrent chats at ``rate`` tokens/s each."""
    tps = chats * rate
    u = inp["utilization"]
    out = {"tokens_per_s": tps}
    for name in ("worker", "gateway", "redis"):
        out[f"{name}_cores"] = tps * inp[f"{name}_us"] / 1e6
        out[f"{name}_procs"] = math.ceil(out[f"{name}_cores"] / u)
    out["chats_per_worker"] = u / (rate * inp["worker_us"] / 1e6)
    out["chats_per_redis"] = u / (rate * inp["redis_us"] / 1e6)
    out["redis_commands_per_s"] = tps * inp["redis_commands"]
    out["redis_mb_per_s"] = tps * inp["redis_net_bytes"] / 1e6
    out["worker_rss_gib"] = (
        out["worker_procs"] * inp["worker_rss_idle"] + chats * inp["worker_rss_per_warm"]
    ) / 2**30
    out["gateway_rss_gib"] = (
        out["gateway_procs"] * inp["gateway_rss_idle"] + chats * inp["gateway_rss_per_stream"]
    ) / 2**30
    out["redis_suspended_gib"] = chats * inp["redis_per_suspended"] / 2**30
    out["redis_conns"] = (
        out["worker_procs"] * inp["worker_conns"] + out["gateway_procs"] * inp["gateway_conns"]
    )
    return out


def check(
    results: dict[str, Any], inp: dict[str, float], label: str = "chatworker"
) -> list[list[str]]:
    """Predicted against measured cores (worker + gateway + Redis) in the steady phases."""
    rows = []
    per_token = inp["worker_us"] + inp["gateway_us"] + inp["redis_us"]
    for p in results.get("scale", []):
        if p.system != label or p.profile != "steady":
            continue
        predicted = p.expected * per_token / 1e6
        measured = sum(percentile(p.cores.get(k, []), 50) for k in ("worker", "gateway", "redis"))
        rows.append([f"{p.chats} chats, steady, {p.expected:,.0f} tokens/s offered",
                     fmt(predicted, 2), fmt(measured, 2),
                     fmt(predicted / measured, 2) + "x" if measured else "-"])  # fmt: skip
    return rows


def report_capacity(results: dict[str, Any], label: str = "chatworker") -> str:
    """The capacity model's inputs, derived rows and check, as Markdown."""
    inp = inputs(results, label)
    if inp is None:
        return ""
    kib, mib = 1024, 2**20
    rows_in = [
        ["worker CPU per token", f"{fmt(inp['worker_us'], 0)} µs",
         f"whole turns, {inp['source_chats']:.0f} chats"],
        ["gateway CPU per token", f"{fmt(inp['gateway_us'], 0)} µs", "same"],
        ["Redis CPU per token", f"{fmt(inp['redis_us'], 0)} µs", "same"],
        ["Redis commands per token", fmt(inp["redis_commands"], 2), "same"],
        ["Redis network bytes per token (in + out)", f"{fmt(inp['redis_net_bytes'], 0)} B",
         "same"],
        ["Redis memory kept per token", f"{fmt(inp['redis_mem_bytes'], 0)} B",
         "same (run keys included)"],
        ["worker RSS, idle process", f"{inp['worker_rss_idle'] / mib:,.0f} MiB", "waiting"],
        ["worker RSS per warm run", f"{inp['worker_rss_per_warm'] / kib:,.1f} KiB", "waiting"],
        ["gateway RSS, idle process", f"{inp['gateway_rss_idle'] / mib:,.0f} MiB", "waiting"],
        ["gateway RSS per open SSE stream", f"{inp['gateway_rss_per_stream'] / kib:,.1f} KiB",
         "waiting"],
        ["Redis memory per suspended run", f"{fmt(inp['redis_per_suspended'], 0)} B", "waiting"],
        ["Redis connections per worker process", f"{inp['worker_conns']:.0f}",
         "waiting (warm runs)"],
        ["Redis connections per gateway process", f"{inp['gateway_conns']:.0f}",
         "waiting (SSE streams open)"],
        ["planned utilization per process / Redis", f"{inp['utilization']:.0%} of a core",
         "assumption"],
    ]  # fmt: skip
    head = ["chats x tokens/s"]
    cols = [(n, r) for r in RATES for n in CHATS]
    head += [f"{n:,} x {r:g}" for n, r in cols]
    derived = [derive(inp, n, r) for n, r in cols]

    def row(name: str, key: str, digits: int = 1) -> list[str]:
        return [name, *(fmt(d[key], digits) for d in derived)]

    rows_out = [
        row("tokens/s", "tokens_per_s", 0),
        row("worker cores", "worker_cores"),
        row("worker processes", "worker_procs", 0),
        row("gateway cores", "gateway_cores"),
        row("gateway processes", "gateway_procs", 0),
        row("Redis cores", "redis_cores", 2),
        row("Redis servers (one core each)", "redis_procs", 0),
        row("Redis commands/s", "redis_commands_per_s", 0),
        row("Redis network MB/s", "redis_mb_per_s", 1),
        row("worker RSS, all runs warm, GiB", "worker_rss_gib", 1),
        row("gateway RSS, every chat's stream open, GiB", "gateway_rss_gib", 1),
        row("Redis memory, all runs suspended, GiB", "redis_suspended_gib", 2),
        row("Redis connections", "redis_conns", 0),
    ]
    limits = [
        [f"{r:g} tokens/s", fmt(derive(inp, 1, r)["chats_per_worker"], 0),
         fmt(derive(inp, 1, r)["chats_per_redis"], 0)]
        for r in RATES
    ]  # fmt: skip
    parts = [
        "### Capacity model (docs/capacity.md): inputs measured in this run\n",
        table(["input", "value", "from"], rows_in),
        "\nDerived (cores = chats x tokens/s x CPU per token; processes = cores / utilization, "
        "rounded up):\n",
        table(head, rows_out),
        "\nChats one process or one Redis server carries at the planned utilization:\n",
        table(["rate per chat", "chats per worker process", "chats per Redis server"], limits),
    ]
    rows_check = check(results, inp, label)
    if rows_check:
        parts += [
            "\nCheck against this run (predicted: offered tokens/s x the CPU per token above; "
            "measured: worker + gateway + Redis cores, p50):\n",
            table(["phase", "predicted cores", "measured cores", "predicted / measured"],
                  rows_check),
        ]  # fmt: skip
    return "\n".join(parts)
