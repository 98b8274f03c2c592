"""Where the milliseconds of a turn's start go: ``python -m bench timeline [--rounds N]``.

Runs the suite's first-chunk rounds (a warm run, a cold trigger, a run resumed from suspension)
while ``redis-cli MONITOR`` records every command Redis executes, with Redis's own microsecond
timestamps. For each round it then lines up the commands that started the turn, from the
request's first command (the ``create`` script of a trigger, the ``send`` script of a message)
to the append carrying the reply's ``start`` chunk: the Celery start message (``LPUSH``), the
claim, the run's state read back, the take, ``__turn_start``, the first step's steering check,
then the ``start`` chunk. It prints the median offset of each step, per case. Work between two
commands is the caller's (the gateway before the first, the worker between the others, the
model call after the last); the gateway's side (request parsing, token check, SSE) is not in
Redis, so it is not in the table: the suite's first-chunk table holds the totals.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import statistics
import subprocess
import threading
from collections import defaultdict
from dataclasses import dataclass, field

from bench.run import Bench, Config
from bench.stats import table
from chatworker.store.scripts import NAMES, source

_LINE = re.compile(r'^(\d+\.\d+) \[\d+ ([^\]]+)\] "([A-Za-z]+)"(.*)$')
_RUN = re.compile(r"run_[A-Za-z0-9]{20}")
_SCRIPTS = {hashlib.sha1(source(n).encode()).hexdigest(): n for n in NAMES}


@dataclass
class Command:
    """One command Redis ran for a client (not from inside a script)."""

    t: float
    name: str
    args: str


@dataclass
class Round:
    """The commands of one turn's start, by step, in ms after the first."""

    case: str
    steps: dict[str, float] = field(default_factory=dict)


def parse(lines: list[str]) -> list[Command]:
    """MONITOR output → the commands clients sent (script calls named by script)."""
    out: list[Command] = []
    for line in lines:
        m = _LINE.match(line)
        if m is None or m.group(2) == "lua":
            continue
        name, args = m.group(3).upper(), m.group(4)
        if name == "EVALSHA":
            sha = args.split('"')[1] if '"' in args else ""
            name = _SCRIPTS.get(sha, "script")
        out.append(Command(float(m.group(1)), name, args))
    return out


_STEPS = ("LPUSH chat", "claim", "state read", "take", "turn_start", "steer_take", "start chunk")


def rounds(commands: list[Command], horizon: float = 0.2) -> list[Round]:
    """One :class:`Round` per ``create`` or ``send`` call followed by its turn's start."""
    found: list[Round] = []
    for i, first in enumerate(commands):
        if first.name not in ("create", "send"):
            continue
        ids = _RUN.findall(first.args)
        if not ids:
            continue
        run_id, t0 = ids[0], first.t
        steps: dict[str, float] = {}
        for c in commands[i + 1:]:
            if c.t - t0 > horizon or "start chunk" in steps:
                break
            ms = (c.t - t0) * 1000
            if c.name == "LPUSH" and '"chat"' in c.args[:10] and "LPUSH chat" not in steps:
                steps["LPUSH chat"] = ms
            elif run_id not in c.args:
                continue
            elif c.name in ("claim", "take", "turn_start", "steer_take"):
                steps.setdefault(c.name, ms)
            elif c.name in ("HGETALL", "GET") and "claim" in steps and "take" not in steps:
                steps["state read"] = ms  # the last read between the claim and the take
            elif c.name in ("append", "append_batch") and '\\"type\\":\\"start\\"' in c.args:
                steps["start chunk"] = ms
        if "start chunk" not in steps or "take" not in steps:
            continue
        if first.name == "create":
            case = "cold trigger"
        elif "claim" in steps:
            case = "resumed from suspension"
        else:
            case = "warm run"
            steps.pop("LPUSH chat", None)  # another round's start message
        found.append(Round(case, steps))
    return found


def report(found: list[Round]) -> str:
    """The median offset of each step per case, and the gap from the step before."""
    by_case: dict[str, list[Round]] = defaultdict(list)
    for r in found:
        by_case[r.case].append(r)
    cases = [c for c in ("warm run", "cold trigger", "resumed from suspension") if c in by_case]
    rows = []
    first = {"warm run": "send", "cold trigger": "create", "resumed from suspension": "send"}
    for step in ("request's first command", *_STEPS):
        row = [step]
        for case in cases:
            if step == "request's first command":
                row.append(f"0.00 ({first[case]})")
                continue
            values = [r.steps[step] for r in by_case[case] if step in r.steps]
            row.append(f"{statistics.median(values):.2f}" if values else "")
        rows.append(row)
    head = ["step (ms after the request's first command, median)",
            *[f"{c} ({len(by_case[c])})" for c in cases]]
    return "### Where a turn's start goes (Redis MONITOR)\n\n" + table(head, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench timeline", description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    cfg = Config.quick()
    cfg.rounds = args.rounds
    with Bench(cfg) as bench:
        port = bench.main.redis_server.port
        monitor = subprocess.Popen(["redis-cli", "-p", str(port), "monitor"],
                                   stdout=subprocess.PIPE, text=True)
        assert monitor.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(monitor.stdout or []),
                                  daemon=True)
        reader.start()
        try:
            bench.latency()
        finally:
            monitor.terminate()
            reader.join(10)
    print(report(rounds(parse(lines))), flush=True)
    return 0
