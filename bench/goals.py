"""The performance goals, each with the figure this run measured and ``met`` or ``missed``.

Every goal is a ratio or a difference against the baseline measured in the same run (or an
absolute figure where the goal is one). Only the figures are reported; nothing fails.
"""

from __future__ import annotations

from typing import Any

from bench.stats import fmt, p50_p99, percentile, table

RATIO = 1.5  # total CPU per delivered token vs the baseline's
REDIS_US = 15.0  # Redis CPU µs per delivered token
DELIVERED = 0.95  # share of the offered tokens delivered
ADDED_P99_MS = 25.0  # p99 latency added over the baseline
WARM_MS = 1.0  # first chunk, warm run: p50 over the baseline's
COLD_MS = 5.0  # first chunk, cold trigger and resume: p50


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "missed")


def goal_rows(results: dict[str, Any], label: str = "chatworker") -> list[list[str]]:
    """``[goal, measured, status]`` rows for the system ``label`` from the bench's results."""
    rows: list[list[str]] = []
    lat = results.get("latency")
    if lat:
        a50, _ = p50_p99(lat["a"])
        b50, _ = p50_p99(lat[f"{label}:b"])
        c50, _ = p50_p99(lat[f"{label}:c"])
        d50, _ = p50_p99(lat[f"{label}:d"])
        rows += [
            [f"first chunk, warm run: ≤ +{WARM_MS:g} ms p50 over the baseline",
             f"+{fmt(b50 - a50, 2)} ms ({fmt(b50, 2)} vs {fmt(a50, 2)})",
             _status(b50 - a50 <= WARM_MS)],
            [f"first chunk, cold trigger: ≤ {COLD_MS:g} ms p50", f"{fmt(c50, 2)} ms",
             _status(c50 <= COLD_MS)],
            [f"first chunk, resumed from suspension: ≤ {COLD_MS:g} ms p50", f"{fmt(d50, 2)} ms",
             _status(d50 <= COLD_MS)],
        ]  # fmt: skip
    scale = results.get("scale", [])
    base = {(p.chats, p.profile): p for p in scale if p.system == "baseline"}
    redis_us: list[tuple[str, float]] = []
    for p in scale:
        ref = base.get((p.chats, p.profile))
        if p.system != label or ref is None:
            continue
        name = f"{p.chats} chats" + (f", {p.profile}" if p.profile != "steady" else ", steady")
        total = percentile(p.cpu_per_chunk.get("total", []), 50)
        ref_total = percentile(ref.cpu_per_chunk.get("total", []), 50)
        ratio = total / ref_total if ref_total else float("nan")
        rows.append([f"total CPU per token ≤ {RATIO:g}x the baseline's: {name}",
                     f"{fmt(ratio, 2)}x ({fmt(total, 0)} vs {fmt(ref_total, 0)} µs)",
                     _status(ratio <= RATIO if ratio == ratio else None)])  # fmt: skip
        redis_us.append((name, percentile(p.cpu_per_chunk.get("redis", []), 50)))
        if p.profile == "steady":
            mine = percentile(p.rates, 50) / p.expected
            theirs = percentile(ref.rates, 50) / ref.expected
            added99 = p50_p99(p.latency)[1] - p50_p99(ref.latency)[1]
            if theirs >= DELIVERED:
                ok: bool | None = mine >= DELIVERED and added99 <= ADDED_P99_MS
            else:
                ok = None  # the goal applies where the baseline delivers
            rows.append([
                f"≥ {DELIVERED:.0%} of offered tokens delivered, p99 added ≤ "
                f"{ADDED_P99_MS:g} ms (where the baseline delivers ≥ {DELIVERED:.0%}): {name}",
                f"{mine:.0%} (baseline {theirs:.0%}), p99 added {fmt(added99, 1)} ms",
                _status(ok),
            ])  # fmt: skip
    turns = results.get("turns", [])
    tbase = {t.chats: t for t in turns if t.system == "baseline"}
    for t in turns:
        tref = tbase.get(t.chats)
        if t.system != label or tref is None or not tref.cpu_us.get("total"):
            continue
        total = t.cpu_us.get("total", float("nan"))
        ratio = total / tref.cpu_us["total"]
        rows.append([f"total CPU per token ≤ {RATIO:g}x the baseline's: {t.chats} chats, "
                     "whole turns", f"{fmt(ratio, 2)}x ({fmt(total, 0)} vs "
                     f"{fmt(tref.cpu_us['total'], 0)} µs)", _status(ratio <= RATIO)])  # fmt: skip
        redis_us.append((f"{t.chats} chats, whole turns", t.cpu_us.get("redis", float("nan"))))
    if redis_us:
        worst = max(v for _, v in redis_us)
        rows.append(
            [
                f"Redis CPU per token ≤ {REDIS_US:g} µs at every load",
                ", ".join(f"{name}: {fmt(v, 0)}" for name, v in redis_us) + " µs",
                _status(worst <= REDIS_US),
            ]
        )
    return rows


def report_goals(results: dict[str, Any], label: str = "chatworker") -> str:
    """The goals table."""
    rows = goal_rows(results, label)
    if not rows:
        return ""
    return (
        "### Goals (issue: durability for almost nothing), measured in this run\n\n"
        + table(["goal", "measured", "status"], rows)
        + "\n\nCPU ratios: worker + gateway + Redis CPU per delivered token against the "
        "baseline process's, p50 of the 1-s intervals (whole turns: over the whole phase). "
        "n/a: the baseline itself delivers under 95% there."
    )
