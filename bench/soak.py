"""``python -m bench soak``: the reliability soak of ``tests/faults/test_soak.py`` at full size.

Two celery worker processes, one gunicorn gateway, a redis-server and the scripted model server;
200 chats x 5 turns driven over HTTP with random stops, dropped and resumed streams, and two
workers SIGKILLed mid-stream and restarted. It checks that every accepted message is answered
exactly once and that every client's events equal the stream, then prints the figures. Unlike
the benchmark it passes or fails: the exit status is 1 when a check failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bench.stats import table


def report(figures: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    restart = figures["turn_restart_after_kill_s"]
    rows = [
        ["chats x turns (seed)", f"{figures['chats']} x {figures['turns']} ({figures['seed']})"],
        ["time to answer every message", f"{figures['seconds']} s"],
        ["messages accepted (trigger + 202) / answered once",
         f"{figures['messages_accepted']:,} / {figures['messages_answered']:,}"],
        ["stop requests / turns stopped", f"{figures['stop_requests']} / "
                                          f"{figures['stopped_turns']}"],
        ["SSE reconnects with Last-Event-ID", str(figures["stream_reconnects"])],
        ["SSE events checked against the stream", f"{figures['events_checked']:,}"],
        ["workers SIGKILLed (mid-stream) and restarted", f"{figures['worker_kills']} "
                                                         f"({figures['mid_stream_kills']})"],
        ["runs the killed workers owned / turns interrupted and restarted",
         f"{figures['runs_owned_by_killed_workers']} / "
         f"{figures['turns_interrupted_and_restarted']}"],
        ["on_turn_complete re-run after a kill / of those, it had already run",
         f"{figures['on_turn_complete_replayed']} / {figures['on_turn_complete_ran_twice']}"],
        ["interrupted turn started again after the kill (min / median / max)",
         f"{restart.get('min', '-')} / {restart.get('median', '-')} / {restart.get('max', '-')} s"
         if restart else "-"],
        ["every run of the killed worker picked up again after",
         ", ".join(f"{s} s" for s in figures["all_runs_picked_up_after_kill_s"]) or "-"],
        ["replacement worker ready after",
         ", ".join(f"{s} s" for s in figures["replacement_worker_ready_s"]) or "-"],
        ["runs recovered / of those, whose worker was alive",
         f"{figures['runs_recovered']} / {figures['runs_recovered_whose_worker_lived']}"],
        ["statuses once every answer was in", ", ".join(
            f"{k} {v}" for k, v in sorted(figures["statuses_after"].items()))],
    ]  # fmt: skip
    return table(["what", "value"], rows)


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print its figures; 1 when a check failed."""
    parser = argparse.ArgumentParser(
        prog="python -m bench soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="the small size the test suite runs")
    parser.add_argument("--chats", type=int, help="concurrent chats (default 200)")
    parser.add_argument("--turns", type=int, help="messages per chat (default 5)")
    parser.add_argument("--kills", type=int, help="workers killed mid-stream (default 2)")
    parser.add_argument("--seed", type=int, help="replay the random plan of an earlier run")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    from tests.faults.test_soak import SoakConfig, run_soak

    cfg = SoakConfig.ci() if args.quick else SoakConfig.full()
    for name, least in (("chats", 1), ("turns", 1), ("kills", 0), ("seed", 0)):
        value = getattr(args, name)
        if value is not None:
            if value < least:
                parser.error(f"--{name} {value}: must be at least {least}")
            setattr(cfg, name, value)
    print(f"soak: {cfg.chats} chats x {cfg.turns} turns, {cfg.kills} worker kills, "
          f"seed {cfg.seed}", flush=True)  # fmt: skip
    started = time.monotonic()
    try:
        figures = run_soak(cfg)
    except AssertionError as exc:
        print(f"\nFAILED (seed {cfg.seed}): {exc}", flush=True)
        return 1
    print("\n" + report(figures), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out)
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
