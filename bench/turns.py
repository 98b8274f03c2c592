"""Whole turns: CPU per delivered token counted from each chat's trigger to its turn's marker.

The scale phases measure steady streaming on warm runs; a real chat also pays for its start.
Here every chat is a fresh run: the load generator (mode ``fresh``) posts the chat's first
message to ``POST /tasks/bench-suspend/runs`` through the gateway, as a chat app does, opens the
run's SSE stream and reads the 200-token reply to the ``__turn_complete`` marker; the run then
suspends (its slot freed). The baseline does the same turns: one ``POST /baseline`` per chat,
read to ``[DONE]``. CPU is counted over the whole phase, from the first trigger to a second
after the last marker (so the worker's post-turn work, the suspension, is in it), for the
worker, the gateway and Redis against the baseline process, and divided by the tokens
delivered.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.procs import ROOT, Cpu, stop_process
from bench.stats import fmt, p50_p99, table

if TYPE_CHECKING:
    from bench.run import Bench, Stack

TOKENS = 200  # per reply
TASK = "bench-suspend"
SETTLE = 1.0  # seconds counted after the last marker


@dataclass
class TurnsPhase:
    """One whole-turns phase's results (one window: the whole phase)."""

    system: str
    chats: int
    tokens: int  # delivered
    offered: int
    seconds: float  # first trigger to last marker
    cpu_us: dict[str, float] = field(default_factory=dict)  # per delivered token, by process
    cores: dict[str, float] = field(default_factory=dict)  # mean over the window
    latency: tuple[float, float] = (float("nan"), float("nan"))  # ms p50 / p99
    completed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    #: Redis figures per delivered token: commands, bytes in and out, memory kept (chatworker).
    redis: dict[str, float] = field(default_factory=dict)


def redis_counters(r: Any) -> dict[str, float]:
    """Cumulative Redis counters: command calls, network bytes, dataset memory."""
    stats = r.info("stats")
    calls = sum(int(s["calls"]) for s in r.info("commandstats").values())
    return {
        "commands": calls,
        "net_in": int(stats["total_net_input_bytes"]),
        "net_out": int(stats["total_net_output_bytes"]),
        "memory": int(r.info("memory")["used_memory_dataset"]),
    }


def whole_turns(bench: Bench, stack: Stack | None, n: int) -> TurnsPhase:
    """``n`` fresh chats, each one whole turn, through ``stack`` (None: the baseline)."""
    cfg = bench.config
    system = stack.label if stack is not None else "baseline"
    rate = cfg.rate
    out_path = bench.tmp / f"turns-{system}-{n}.json"
    spec: dict[str, Any] = {
        "mode": "fresh" if stack is not None else "baseline",
        "host": "127.0.0.1",
        "port": stack.gateway.port if stack is not None else bench.baseline.port,
        "prefix": "/api/chat",
        "chats": [],
        "count": n,
        "task": TASK,
        "trigger_token": stack.prober.trigger_token(TASK) if stack is not None else "",
        "message": f"bench:stream:{TOKENS}:{rate:g}",
        "stagger": cfg.stagger,
        "deadline": cfg.stagger + TOKENS / rate + cfg.margin,
        "open_timeout": 120,
        "out": str(out_path),
    }
    spec_path = bench.tmp / f"turns-{system}-{n}.spec.json"
    spec_path.write_text(json.dumps(spec))
    measured = dict(stack.pids) if stack is not None else {"baseline": bench.pids["baseline"]}
    cpu = Cpu(measured)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.load", str(spec_path)], cwd=ROOT, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdout.readline()  # "open 0"
        before = redis_counters(stack.r) if stack is not None else {}
        t_start, c_start = cpu.sample()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        proc.stdout.readline()  # "started ..."
        proc.stdout.readline()  # "done": every turn ended (or the deadline passed)
        proc.wait(30)
        data = json.loads(out_path.read_text())
        time.sleep(max(0.0, data["last"] + SETTLE - time.monotonic()))
        t_end, c_end = cpu.sample()
        after = redis_counters(stack.r) if stack is not None else {}
    finally:
        stop_process(proc)
    tokens = len(data["received"])
    phase = TurnsPhase(
        system, n, tokens, n * TOKENS, max(0.0, data["last"] - t_start),
        completed=data["completed"], failed=data["failed"], errors=data["errors"],
    )  # fmt: skip
    span = t_end - t_start
    for name in measured:
        used = c_end[name] - c_start[name]
        phase.cores[name] = used / span
        if tokens:
            phase.cpu_us[name] = used / tokens * 1e6
    if tokens:
        phase.cpu_us["total"] = sum(phase.cpu_us[k] for k in measured)
        phase.latency = tuple(x * 1000 for x in p50_p99(data["latency"]))  # type: ignore[assignment]
        for key, value in after.items():
            phase.redis[key] = (value - before[key]) / tokens
    bench.results.setdefault("turns", []).append(phase)
    return phase


def done_cell(p: TurnsPhase) -> str:
    """``"191/200, 9 unfinished at the deadline"``."""
    out = f"{p.completed}/{p.chats}" + (f", {p.failed} failed" if p.failed else "")
    unfinished = p.chats - p.completed - p.failed
    return out + (f", {unfinished} unfinished at the deadline" if unfinished > 0 else "")


def report_turns(phases: list[TurnsPhase]) -> str:
    """The whole-turns table."""
    base = {p.chats: p for p in phases if p.system == "baseline"}
    rows = []
    for p in phases:
        ref = base.get(p.chats)
        total = p.cpu_us.get("total", float("nan"))
        ratio = ""
        if ref is not None and p.system != "baseline" and ref.cpu_us.get("total"):
            ratio = fmt(total / ref.cpu_us["total"], 2) + "x"
        added = ""
        if ref is not None and p.system != "baseline":
            added = f"{fmt(p.latency[0] - ref.latency[0])} / {fmt(p.latency[1] - ref.latency[1])}"
        cores = " ".join(f"{name[0]}{v:.2f}" for name, v in p.cores.items())
        rows.append([
            f"{p.chats} {p.system}", f"{p.tokens:,} / {p.offered:,}", fmt(p.seconds, 1),
            f"{fmt(p.latency[0])} / {fmt(p.latency[1])}", added,
            *(fmt(p.cpu_us[k], 0) if k in p.cpu_us else ""
              for k in ("worker", "gateway", "redis", "baseline", "total")),
            ratio, cores, done_cell(p),
        ])  # fmt: skip
    head = ["chats, system", "tokens delivered / offered", "seconds", "latency ms p50 / p99",
            "added ms p50 / p99", "worker µs/token", "gateway", "redis", "baseline", "total",
            "total vs baseline", "cores used (mean)", "turns done"]  # fmt: skip
    return (
        f"### 2b. Whole turns (each chat a fresh run: trigger → SSE → {TOKENS}-token reply → "
        "marker; CPU from the first trigger to 1 s after the last marker)\n\n" + table(head, rows)
    )


def report_redis_io(turns: list[TurnsPhase], steady: list[Any]) -> str:
    """Redis traffic and memory per delivered token (the capacity model's inputs)."""
    rows = []
    for p in steady:
        if p.redis:
            rows.append([f"{p.chats} {p.system}, {p.profile}", fmt(p.redis["commands"], 2),
                         fmt(p.redis["net_in"], 0), fmt(p.redis["net_out"], 0),
                         fmt(p.redis["memory"], 0)])  # fmt: skip
    for t in turns:
        if t.redis:
            rows.append([f"{t.chats} {t.system}, whole turns", fmt(t.redis["commands"], 2),
                         fmt(t.redis["net_in"], 0), fmt(t.redis["net_out"], 0),
                         fmt(t.redis["memory"], 0)])  # fmt: skip
    if not rows:
        return ""
    head = ["phase", "commands / token", "bytes in / token", "bytes out / token",
            "memory kept B / token"]  # fmt: skip
    return (
        "### Redis traffic and memory per delivered token\n\n"
        + table(head, rows)
        + "\n\nbytes in / out: INFO stats total_net_input_bytes / total_net_output_bytes over "
        "the window (every client: worker, gateway); memory kept: INFO used_memory_dataset "
        "delta over the window (whole turns: including each new run's own keys)."
    )
