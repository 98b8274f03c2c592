"""The benchmark suite: ``python -m bench`` (or ``python bench/run.py``), ``--quick`` for short;
``python -m bench soak`` runs the reliability soak instead (``bench/soak.py``), and
``python -m bench timeline`` shows where a turn's start goes (``bench/timeline.py``).

It starts a throwaway redis-server, the scripted model server (its own gevent process), one
celery worker process (gevent pool), one chatworker gateway process and one baseline process
(both ``gunicorn -k gevent -w 1``), then measures, every comparison side by side in the same
run:

1. time to first chunk: (a) the baseline route, (b) a warm run, (c) a cold trigger, (d) a run
   resumed from suspension, interleaved round by round; and stop latency;
2. streaming at scale: N concurrent chats at a fixed token rate through chatworker and through
   the baseline, driven by a separate gevent load generator process; one size again with a
   bursty model (bursts of 50-100 tokens/s with pauses, same average rate); then whole turns
   (``bench/turns.py``): every chat a fresh run, CPU counted from trigger to marker;
3. the cost of waiting: worker memory, Redis memory and Redis connections of waiting runs and
   open streams.

At the end it prints the capacity model of docs/capacity.md computed from the run's figures
(``bench/capacity.py``) and each performance goal with its measured figure, ``met`` or
``missed`` (``bench/goals.py``).

It prints Markdown tables. Figures are medians and 99th percentiles over repeated samples
(rounds, 1-second intervals, or every chunk, as each table says). Nothing here passes or fails.

``--ref LABEL=DIR`` adds the chatworker code of another checkout (say, the commit before a
change) as one more system, with its own redis-server, worker and gateway, measured in the same
rounds and phases: a before/after comparison on a noisy machine is only fair side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):  # ``python bench/run.py``: import as the ``bench`` package
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(_here)]
    sys.path.insert(0, str(Path(_here).parent))

import redis

from bench.capacity import report_capacity
from bench.goals import report_goals
from bench.procs import (
    ROOT,
    App,
    Cpu,
    ModelProcess,
    RedisServer,
    Worker,
    bench_env,
    rss_bytes,
    stop_process,
)
from bench.stats import fmt, p50_p99, percentile, table
from bench.turns import redis_counters, report_redis_io, report_turns, whole_turns

if TYPE_CHECKING:
    from bench.probe import Prober

MS = 1000.0


@dataclass
class Config:
    """How much to measure."""

    rounds: int = 200
    warmup: int = 10
    sizes: tuple[int, ...] = (50, 200, 1000)
    rate: float = 20.0
    window: float = 8.0
    settle: float = 2.0
    stagger: float = 1.0
    waiting: int = 1000
    #: Chat counts of the whole-turns phases (each chat a fresh run).
    turns: tuple[int, ...] = (50, 200, 1000)
    #: Chat count of the bursty scale phase.
    bursty: int = 200
    margin: float = 30.0  # seconds a phase may overrun its replies before it is cut off
    profile: bool = False
    profile_dir: str | None = None
    refs: list[tuple[str, Path]] = field(default_factory=list)
    ref_env: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def quick(cls) -> Config:
        """About three minutes."""
        return cls(rounds=40, warmup=5, sizes=(50, 200), window=4.0, waiting=200, margin=10.0,
                   turns=(50, 200))


# -- helpers ----------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    """nproc, RAM, CPU model, and the versions that matter."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    import celery
    import gevent

    return {
        "nproc": str(os.cpu_count()),
        "ram": f"{mem / 2**30:.1f} GiB",
        "cpu": model,
        "python": platform.python_version(),
        "versions": f"celery {celery.__version__}, gevent {gevent.__version__}, "
        f"redis-py {getattr(redis, '__version__', '?')}",
        "kernel": platform.release(),
    }


def redis_connections(redis_port: int, pids: dict[str, int]) -> dict[str, int]:
    """How many TCP connections to Redis each named process holds (from ``/proc``)."""
    inodes: set[str] = set()
    for table_path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table_path).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            remote_port = int(parts[2].rsplit(":", 1)[1], 16)
            if remote_port == redis_port and parts[3] == "01":  # ESTABLISHED
                inodes.add(parts[9])
    out: dict[str, int] = {}
    for name, pid in pids.items():
        count = 0
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    count += 1
        except OSError:
            pass
        out[name] = count
    return out


@dataclass
class Phase:
    """One scale phase's results."""

    system: str
    chats: int
    expected: float
    #: ``steady`` (every chat at ``rate`` tokens/s) or ``bursty`` (bursts with pauses).
    profile: str = "steady"
    rates: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    cpu_per_chunk: dict[str, list[float]] = field(default_factory=dict)
    cores: dict[str, list[float]] = field(default_factory=dict)
    completed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    #: Redis commands per delivered token over the window, by command (``INFO commandstats``).
    commands: dict[str, float] = field(default_factory=dict)
    #: Redis's own CPU µs per token by command (``usec`` of ``INFO commandstats``).
    command_usec: dict[str, float] = field(default_factory=dict)
    #: Redis per delivered token over the window: commands, network bytes, memory kept.
    redis: dict[str, float] = field(default_factory=dict)


def command_counts(r: redis.Redis[str]) -> dict[str, tuple[int, int]]:
    """``INFO commandstats`` as ``{command: (calls, usec)}``."""
    out: dict[str, tuple[int, int]] = {}
    for name, stats in r.info("commandstats").items():
        out[name.removeprefix("cmdstat_")] = (int(stats["calls"]), int(stats["usec"]))
    return out


# -- the bench ----------------------------------------------------------------------------------
@contextmanager
def _source_tree(root: Path) -> Iterator[None]:
    """Start the test helpers' processes in ``root`` (another checkout) instead of this one."""
    import tests.gateway.conftest_helpers as gateway_helpers
    import tests.support as support

    # The gateway helpers read ROOT from their own module globals: both are pointed at root.
    saved = support.ROOT, gateway_helpers.__dict__["ROOT"]
    support.ROOT = root
    gateway_helpers.__dict__["ROOT"] = root
    try:
        yield
    finally:
        support.ROOT, gateway_helpers.__dict__["ROOT"] = saved


@dataclass
class Stack:
    """One chatworker deployment under test: its redis-server, celery worker and gateway,
    running the code of one source tree (this one, or a ``--ref`` checkout)."""

    label: str
    root: Path
    redis_server: RedisServer
    worker: Worker
    gateway: App
    r: redis.Redis[str]
    pids: dict[str, int]
    prober: Prober
    warm: list[dict[str, str]] = field(default_factory=list)


class Bench:
    """The processes under test and the measurements."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.exit = ExitStack()
        self.tmp = Path(tempfile.mkdtemp(prefix="chatworker-bench-"))
        self.results: dict[str, Any] = {}
        self.stacks: list[Stack] = []

    # -- processes ------------------------------------------------------------------------------
    def __enter__(self) -> Bench:
        self.exit.__enter__()
        try:
            self._start()
        except BaseException:
            self.exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.exit.close()

    def _start(self) -> None:
        cfg = self.config
        self.model = ModelProcess(dict(os.environ)).start()
        self.exit.callback(self.model.stop)
        os.environ.setdefault("CHATWORKER_SECRET_KEY", "bench-" + uuid.uuid4().hex)
        # slots: the warm runs of the scale phases stay while the whole turns' fresh runs go
        warm = max(max(cfg.sizes), cfg.waiting, cfg.bursty)
        main = self._start_stack("chatworker", ROOT, warm + max(cfg.turns, default=0) + 100)
        env = bench_env(main.redis_server.url, self.model.url)
        for key in ("CHATWORKER_REDIS_URL", "CHATWORKER_BROKER_URL", "CHATWORKER_TASKS",
                    "OPENAI_BASE_URL", "OPENAI_API_KEY"):  # fmt: skip
            os.environ[key] = env[key]
        from chatworker import config

        config.reset_redis()
        self.baseline = App(env, name="bench-base", app="bench.baseline:create_app()").start()
        self.exit.callback(self.baseline.stop)
        self.pids = {**main.pids, "baseline": self.baseline.worker_pid, "model": self.model.pid}
        from bench.probe import Prober

        for stack in self.stacks:
            stack.prober = Prober("127.0.0.1", stack.gateway.port, self.baseline.port, stack.r)
        for label, root in cfg.refs:
            slots = max(max(cfg.sizes), cfg.bursty) + max(cfg.turns, default=0) + 100
            stack = self._start_stack(label, root, slots)
            stack.prober = Prober("127.0.0.1", stack.gateway.port, self.baseline.port, stack.r)

    def _start_stack(self, label: str, root: Path, slots: int) -> Stack:
        server = RedisServer().start()
        self.exit.callback(server.stop)
        env = bench_env(server.url, self.model.url)
        if root != ROOT:  # its chatworker first; ``bench`` from here if it has none
            env["PYTHONPATH"] = os.pathsep.join([str(root), str(ROOT)])
        env.update(self.config.ref_env.get(label, {}))
        with _source_tree(root):
            worker = Worker(env, pool="gevent", concurrency=slots, name=f"bench-{label}").start()
            self.exit.callback(worker.stop)
            gateway = App(env, name=f"bench-{label}-gw").start()
            self.exit.callback(gateway.stop)
        assert worker.proc is not None and server.proc is not None
        pids = {"worker": worker.proc.pid, "gateway": gateway.worker_pid, "redis": server.proc.pid}
        r = redis.Redis.from_url(server.url, decode_responses=True)
        stack = Stack(label, root, server, worker, gateway, r, pids, None)  # type: ignore[arg-type]
        self.stacks.append(stack)
        return stack

    @property
    def main(self) -> Stack:
        """The stack running this tree's code."""
        return self.stacks[0]

    def connections(self, stack: Stack) -> dict[str, int]:
        """Redis connections: per measured process, and the server's ``connected_clients``."""
        held = redis_connections(
            stack.redis_server.port,
            {"worker": stack.pids["worker"], "gateway": stack.pids["gateway"],
             "baseline": self.pids["baseline"]},
        )  # fmt: skip
        held["connected_clients"] = int(stack.r.info("clients")["connected_clients"])
        return held

    # -- 1. latency probes --------------------------------------------------------------------
    def latency(self) -> dict[str, list[float]]:
        """Time to first chunk (a)-(d) and stop latency, interleaved round by round (every
        stack's cases in every round)."""
        cfg = self.config
        pools = {
            stack.label: (
                [stack.prober.new_chat("bench-warm") for _ in range(8)],
                [stack.prober.new_chat("bench-suspend") for _ in range(8)],
                [stack.prober.new_chat("bench-warm") for _ in range(4)],
            )
            for stack in self.stacks
        }
        samples: dict[str, list[float]] = {}
        gap = 0.01

        def keep(key: str, value: float) -> None:
            samples.setdefault(key, []).append(value * MS)

        prober = self.main.prober
        for i in range(cfg.warmup + cfg.rounds):
            record = i >= cfg.warmup
            timing = prober.baseline()
            if record:
                keep("a", timing.start)
                keep("a_tok", timing.token)
            for stack in self.stacks:
                warm, sleepy, stoppers = pools[stack.label]
                timings = {
                    "b": stack.prober.turn_on_open_stream(warm[i % len(warm)], "waiting"),
                    "c": stack.prober.cold(),
                    "d": stack.prober.turn_on_open_stream(sleepy[i % len(sleepy)], "suspended"),
                }
                time.sleep(gap)
                stop = stack.prober.stop(stoppers[i % len(stoppers)])
                if record:
                    for key, t in timings.items():
                        keep(f"{stack.label}:{key}", t.start)
                        keep(f"{stack.label}:{key}_tok", t.token)
                    keep(f"{stack.label}:stop", stop)
                time.sleep(gap)
        for stack in self.stacks:
            warm, sleepy, stoppers = pools[stack.label]
            for chat in [*warm, *sleepy, *stoppers]:
                if chat.stream is not None:
                    chat.stream.close()
            for chat in [*warm, *stoppers]:  # free their worker slots
                stack.prober.cancel(chat)
        self.results["latency"] = samples
        return samples

    def model_parse(self) -> dict[str, list[float]]:
        """CPU per model chunk: the SDK's models, chatworker's reader, ``json.loads`` of lines."""
        from bench.sdk import json_us_per_chunk, reader_us_per_chunk, sdk_us_per_chunk

        url = self.model.url
        out = {
            "sdk": sdk_us_per_chunk(url),
            "reader": reader_us_per_chunk(url),
            "json": json_us_per_chunk(url),
        }
        self.results["model_parse"] = out
        return out

    # -- runs for the waiting and scale phases -------------------------------------------------
    def start_runs(self, stack: Stack, task: str, count: int, wanted: str) -> list[dict[str, str]]:
        """Trigger ``count`` runs of ``task`` through the stack's gateway (a short first turn)
        and wait until each is ``wanted`` (waiting or suspended)."""
        prober = stack.prober
        prober.trigger_token(task)

        def one(_: int) -> dict[str, str]:
            chat = prober.trigger(task, "hi")
            return {"run": chat.run_id, "token": chat.token, "chat": chat.chat_id, "after": ""}

        with ThreadPoolExecutor(8) as pool:
            chats = list(pool.map(one, range(count)))
        self.wait_runs(stack, chats, wanted, timeout=180)
        return chats

    def wait_runs(
        self, stack: Stack, chats: list[dict[str, str]], wanted: str, timeout: float
    ) -> int:
        """Poll until every run has status ``wanted`` or has ended; returns how many ended."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = Counter(self._fields(stack, chats, "status"))
            ended = sum(statuses.get(s, 0) for s in ("failed", "canceled", "completed"))
            if statuses.get(wanted, 0) + ended == len(chats):
                return ended
            if time.monotonic() > deadline:
                raise RuntimeError(f"runs never all became {wanted!r}: {dict(statuses)}")
            time.sleep(0.1)

    @staticmethod
    def _fields(stack: Stack, chats: list[dict[str, str]], name: str) -> list[Any]:
        from chatworker.store import keys

        pipe = stack.r.pipeline(transaction=False)
        for chat in chats:
            pipe.hget(keys.run(chat["run"]), name)
        return list(pipe.execute())

    def ready_warm(self, stack: Stack, chats: list[dict[str, str]]) -> None:
        """Wait until the runs are warm again: stop turns still streaming (a phase cut off at
        its deadline), replace runs that ended (a failed turn), note where each stream is."""
        from bench.probe import Chat

        for chat, streaming in zip(chats, self._fields(stack, chats, "is_streaming"), strict=True):
            if streaming == "1":
                stack.prober.stop_turn(Chat(chat["run"], chat["token"], chat["chat"]))
        if self.wait_runs(stack, chats, "waiting", timeout=300):
            statuses = self._fields(stack, chats, "status")
            dead = [i for i, status in enumerate(statuses) if status != "waiting"]
            fresh = self.start_runs(stack, "bench-warm", len(dead), "waiting")
            for i, chat in zip(dead, fresh, strict=True):
                chats[i] = chat
        for chat, last in zip(chats, self._fields(stack, chats, "last_event_id"), strict=True):
            chat["after"] = str(last)

    def active_runs(self, stack: Stack) -> int:
        """Runs that hold a worker slot right now (a live owner lease)."""
        from chatworker.store import keys

        return sum(int(stack.r.zcard(key)) for key in keys.index_buckets(keys.ACTIVE))

    # -- 3. the cost of waiting ---------------------------------------------------------------
    def waiting_costs(self) -> None:
        """Suspended runs, then warm runs (kept for the scale phases): worker RSS, Redis memory
        and connections."""
        from chatworker.store import keys

        cfg = self.config
        stack = self.main
        out: dict[str, Any] = {"count": cfg.waiting}
        worker = stack.pids["worker"]
        out["rss_idle"] = rss_bytes(worker)
        out["conn_idle"] = self.connections(stack)
        mem0 = int(stack.r.info("memory")["used_memory_dataset"])
        suspended = self.start_runs(stack, "bench-suspend", cfg.waiting, "suspended")
        time.sleep(1.5)  # let the worker finish its post-turn work and the allocator settle
        mem1 = int(stack.r.info("memory")["used_memory_dataset"])
        out["rss_suspended"] = rss_bytes(worker)
        out["active_suspended"] = self.active_runs(stack)
        out["redis_per_suspended"] = (mem1 - mem0) / cfg.waiting
        sizes: dict[str, list[int]] = {}
        for chat in suspended[:50]:
            run_id = chat["run"]
            for name, key in (
                ("run hash", keys.run(run_id)),
                ("checkpoint", keys.checkpoint(run_id)),
                ("output stream", keys.output(run_id)),
                ("chat pointer", keys.chat_run("bench-suspend", chat["chat"])),
            ):
                sizes.setdefault(name, []).append(int(stack.r.memory_usage(key, samples=0) or 0))
        out["key_sizes"] = {k: percentile(v, 50) for k, v in sizes.items()}
        out["conn_suspended"] = self.connections(stack)
        self.results["waiting"] = out
        self.warm_up(stack)
        out["warm_count"] = len(stack.warm)
        out["rss_warm"] = rss_bytes(worker)
        out["rss_per_warm"] = (out["rss_warm"] - out["rss_suspended"]) / len(stack.warm)
        out["active_warm"] = self.active_runs(stack)
        out["conn_warm"] = self.connections(stack)
        self.ready_warm(stack, stack.warm)
        self.hold_streams(stack, stack.warm)

    def hold_streams(self, stack: Stack, chats: list[dict[str, str]]) -> None:
        """Open an SSE stream to each of ``chats`` (idle, between turns) from the load
        generator: the gateway's RSS per open stream and the Redis connections it then holds."""
        gateway = stack.pids["gateway"]
        spec: dict[str, Any] = {
            "mode": "runs", "host": "127.0.0.1", "port": stack.gateway.port,
            "prefix": "/api/chat", "chats": chats, "count": len(chats), "message": "",
            "stagger": 0.0, "deadline": 1.0, "open_timeout": 120,
            "out": str(self.tmp / "hold.json"),
        }  # fmt: skip
        spec_path = self.tmp / "hold.spec.json"
        spec_path.write_text(json.dumps(spec))
        time.sleep(0.5)
        rss0 = rss_bytes(gateway)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.load", str(spec_path)], cwd=ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        try:
            line = proc.stdout.readline().split()
            if not line or line[0] != "open":
                raise RuntimeError(f"load generator failed to open its streams: {line}")
            streams = int(line[1])
            time.sleep(1.0)  # every stream's first read parked in the hub
            rss1 = rss_bytes(gateway)
            self.results["conn_sse"] = {"streams": streams, **self.connections(stack)}
            self.results["waiting"].update(
                sse_streams=streams, gateway_rss_idle=rss0, gateway_rss_streams=rss1,
                gateway_rss_per_stream=(rss1 - rss0) / max(1, streams),
            )  # fmt: skip
            proc.stdin.write("close\n")
            proc.stdin.flush()
            proc.stdout.readline()  # "done"
            proc.wait(30)
        finally:
            stop_process(proc)

    def warm_up(self, stack: Stack) -> None:
        """Give the stack its warm runs for the scale phases (once)."""
        cfg = self.config
        if not stack.warm:
            count = max(max(cfg.sizes), cfg.bursty, cfg.waiting if stack is self.main else 0)
            stack.warm = self.start_runs(stack, "bench-warm", count, "waiting")
            time.sleep(1.5)

    # -- 2. streaming at scale ------------------------------------------------------------------
    def scale(self, stack: Stack | None, n: int, profile: str = "steady") -> Phase:
        """One phase: ``n`` chats streaming at ``rate`` tokens/s through ``stack`` (None: the
        baseline app); ``profile`` ``bursty``: in bursts of 50-100 tokens/s with pauses,
        averaging ``rate`` (``bench.model.bursts``)."""
        cfg = self.config
        system = stack.label if stack is not None else "baseline"
        chats: list[dict[str, str]] = []
        if stack is not None:
            self.warm_up(stack)
            chats = stack.warm[:n]
            self.ready_warm(stack, chats)
            stack.warm[:n] = chats
        tokens = int(cfg.rate * (cfg.stagger + cfg.settle + cfg.window + 2))
        kind = "bursty" if profile == "bursty" else "stream"
        out_path = self.tmp / f"{system}-{n}-{profile}.json"
        spec: dict[str, Any] = {
            "mode": "runs" if stack is not None else "baseline",
            "host": "127.0.0.1",
            "port": stack.gateway.port if stack is not None else self.baseline.port,
            "prefix": "/api/chat",
            "chats": chats,
            "count": n,
            "message": f"bench:{kind}:{tokens}:{cfg.rate:g}",
            "stagger": cfg.stagger,
            "deadline": cfg.stagger + tokens / cfg.rate + cfg.margin,
            "open_timeout": 120,
            "out": str(out_path),
        }
        spec_path = self.tmp / f"{system}-{n}-{profile}.spec.json"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.load", str(spec_path)], cwd=ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        measured = dict(stack.pids) if stack is not None else {"baseline": self.pids["baseline"]}
        try:
            line = proc.stdout.readline().split()
            if not line or line[0] != "open":
                raise RuntimeError(f"load generator failed to open its streams: {line}")
            proc.stdin.write("go\n")
            proc.stdin.flush()
            line = proc.stdout.readline().split()
            t0 = float(line[1])
            cpu = Cpu({**measured, "model": self.pids["model"], "client": proc.pid})
            start = t0 + cfg.stagger + cfg.settle
            samples = []
            stats: list[dict[str, tuple[int, int]]] = []
            counters: list[dict[str, float]] = []
            for k in range(int(cfg.window) + 1):
                time.sleep(max(0.0, start + k - time.monotonic()))
                samples.append(cpu.sample())
                if stack is not None and k in (0, int(cfg.window)):
                    stats.append(command_counts(stack.r))
                    counters.append(redis_counters(stack.r))
            proc.stdout.readline()  # "done"
            proc.wait(30)
        finally:
            stop_process(proc)
        data = json.loads(out_path.read_text())
        phase = Phase(
            system, n, n * cfg.rate, profile, completed=data["completed"], failed=data["failed"],
            errors=data["errors"],
        )  # fmt: skip
        order = sorted(range(len(data["received"])), key=data["received"].__getitem__)
        received = [data["received"][i] for i in order]
        latency = [data["latency"][i] for i in order]
        lo = bisect_left(received, samples[0][0])
        hi = bisect_left(received, samples[-1][0])
        phase.latency = [x * MS for x in latency[lo:hi]]
        for (ta, ca), (tb, cb) in pairwise(samples):
            chunks = bisect_left(received, tb) - bisect_left(received, ta)
            phase.rates.append(chunks / (tb - ta))
            for name in ca:
                used = cb[name] - ca[name]
                phase.cores.setdefault(name, []).append(used / (tb - ta))
                if name not in ("model", "client") and chunks:
                    phase.cpu_per_chunk.setdefault(name, []).append(used / chunks * 1e6)
            if chunks:
                total = sum(cb[k] - ca[k] for k in measured)
                phase.cpu_per_chunk.setdefault("total", []).append(total / chunks * 1e6)
        window_tokens = bisect_left(received, samples[-1][0]) - lo
        if len(stats) == 2 and window_tokens:
            before, after = stats
            for name, (calls, usec) in after.items():
                c0, u0 = before.get(name, (0, 0))
                if calls > c0:
                    phase.commands[name] = (calls - c0) / window_tokens
                    phase.command_usec[name] = (usec - u0) / window_tokens
            phase.redis = {
                key: (value - counters[0][key]) / window_tokens
                for key, value in counters[1].items()
            }
        self.results.setdefault("scale", []).append(phase)
        return phase

    def profile(self) -> dict[str, list[tuple[str, float]]]:
        """py-spy the worker and the gateway (then the baseline) under the largest load."""
        from bench.pyspy import record

        cfg = self.config
        size = max(cfg.sizes)
        out: dict[str, Any] = {}
        for stack, names in ((self.main, ("worker", "gateway")), (None, ("baseline",))):
            delay = cfg.stagger + cfg.settle
            dest = Path(cfg.profile_dir) if cfg.profile_dir else self.tmp
            pids = stack.pids if stack is not None else self.pids
            if stack is not None:  # the recording starts once the runs are ready
                self.ready_warm(stack, stack.warm[:size])
            recorders = [record(pids[name], delay, cfg.window, dest / f"{name}.txt")
                         for name in names]  # fmt: skip
            self.scale(stack, size)
            self.results["scale"].pop()  # a profiled phase is not a measurement
            for name, rec in zip(names, recorders, strict=True):
                out[name] = rec.result()
        self.results["profile"] = out
        return out


# -- reporting ----------------------------------------------------------------------------------
def _describe_ref(cfg: Config, label: str, root: Path) -> str:
    """How a ``--ref`` system differs: another checkout, and/or its environment."""
    code = "this checkout" if root == ROOT else "another checkout"
    env = " ".join(f"{k}={v}" for k, v in cfg.ref_env.get(label, {}).items())
    return f"{code} with {env}" if env else code


def report_latency(samples: dict[str, list[float]], rounds: int, labels: list[str]) -> str:
    """The time-to-first-chunk table (Δ: minus the baseline's percentile of the same run)."""
    a50, a99 = p50_p99(samples["a"])
    t50, t99 = p50_p99(samples["a_tok"])
    rows = [["(a) baseline route", fmt(a50, 2), fmt(a99, 2), "", "", fmt(t50, 2), fmt(t99, 2),
             "", ""]]  # fmt: skip
    names = {
        "b": "(b) warm run, SSE open, POST message",
        "c": "(c) cold trigger: POST run, then SSE",
        "d": "(d) resumed from suspension",
    }
    for label in labels:
        tag = f" [{label}]" if len(labels) > 1 else ""
        for key, name in names.items():
            s50, s99 = p50_p99(samples[f"{label}:{key}"])
            k50, k99 = p50_p99(samples[f"{label}:{key}_tok"])
            rows.append([
                name + tag, fmt(s50, 2), fmt(s99, 2), fmt(s50 - a50, 2), fmt(s99 - a99, 2),
                fmt(k50, 2), fmt(k99, 2), fmt(k50 - t50, 2), fmt(k99 - t99, 2),
            ])  # fmt: skip
    for label in labels:
        tag = f" [{label}]" if len(labels) > 1 else ""
        s50, s99 = p50_p99(samples[f"{label}:stop"])
        rows.append([f"stop: POST stop → `abort` (model silent){tag}", fmt(s50, 2), fmt(s99, 2),
                     "", "", "", "", "", ""])  # fmt: skip
    head = ["case", "first chunk p50", "p99", "Δ(a) p50", "Δ(a) p99", "first token p50", "p99",
            "Δ(a) p50", "Δ(a) p99"]  # fmt: skip
    return f"### 1. Time to first chunk, ms ({rounds} rounds, cases interleaved)\n\n" + table(
        head, rows
    )


def report_parse(parse: dict[str, list[float]]) -> str:
    """The model-stream parsing table."""
    rows = [
        ["`openai` SDK stream (`create(stream=True)`)", fmt(percentile(parse["sdk"], 50))],
        [
            "chatworker's reader (SDK request + SSE decoder, dicts)",
            fmt(percentile(parse["reader"], 50)),
        ],
        ["raw lines + `json.loads`", fmt(percentile(parse["json"], 50))],
    ]
    return (
        "### Reading one model chunk (CPU µs per chunk, median of 3 runs of 2,000 chunks)\n\n"
        + table(["how", "µs/chunk"], rows)
    )


def report_scale(phases: list[Phase], window: float, rate: float) -> str:
    """The streaming-at-scale table."""
    rows = []
    base = {(p.chats, p.profile): p for p in phases if p.system == "baseline"}
    for phase in phases:
        r50, r99 = percentile(phase.rates, 50), percentile(phase.rates, 1)
        l50, l99 = p50_p99(phase.latency)
        ref = base.get((phase.chats, phase.profile))
        if ref is not None and phase.system != "baseline":
            b50, b99 = p50_p99(ref.latency)
            added = f"{fmt(l50 - b50)} / {fmt(l99 - b99)}"
            c_ref = percentile(ref.cpu_per_chunk.get("total", []), 50)
        else:
            added, c_ref = "", float("nan")
        cpc = phase.cpu_per_chunk

        def cell(name: str, cpc: dict[str, list[float]] = cpc) -> str:
            if name not in cpc:
                return ""
            return f"{fmt(percentile(cpc[name], 50), 0)} / {fmt(percentile(cpc[name], 99), 0)}"

        total50 = percentile(cpc.get("total", []), 50)
        ratio = fmt(total50 / c_ref, 2) + "x" if c_ref == c_ref and c_ref else ""
        cores = " ".join(f"{name[0]}{percentile(v, 50):.2f}" for name, v in phase.cores.items())
        rows.append([
            phase_name(phase), f"{fmt(r50, 0)} / {fmt(r99, 0)}",
            fmt(phase.expected, 0), f"{fmt(l50)} / {fmt(l99)}", added,
            cell("worker"), cell("gateway"), cell("redis"), cell("baseline"), cell("total"),
            ratio, cores, f"{phase.completed}/{phase.chats}" + (
                f", {phase.failed} cut off" if phase.failed else ""),
        ])  # fmt: skip
    head = [
        "chats, system",
        "tokens/s p50 / p1",
        "offered",
        "latency ms p50 / p99",
        "added ms p50 / p99",
        "worker µs/token p50 / p99",
        "gateway",
        "redis",
        "baseline",
        "total",
        "total vs baseline",
        "cores used (p50)",
        "turns done",
    ]
    return (
        f"### 2. Streaming at scale ({rate:g} tokens/s per chat, {window:g} s window, "
        "rates and CPU per 1-s interval, latency per token)\n\n"
        + table(head, rows)
        + "\n\nA token is one streamed model chunk (one word here): under load a worker merges "
        "tokens already queued into one `text-delta`, so rates and CPU are counted per token, "
        "the unit the baseline and chatworker both deliver.\n\n"
        "bursty: the model sends bursts of 10-30 tokens at 50-100 tokens/s with pauses, "
        f"averaging {rate:g} tokens/s per chat.\n\n"
        "cores: w worker, g gateway, r redis, b baseline, m model server, c load "
        "generator (CPU seconds per second). turns done: answers complete before the phase's "
        "deadline; cut off: ended by `abort` or `__run_end`, or the stream broke."
    )


def phase_name(phase: Phase) -> str:
    """``"200 chatworker"``, ``"200 chatworker, bursty"``."""
    extra = f", {phase.profile}" if phase.profile != "steady" else ""
    return f"{phase.chats} {phase.system}{extra}"


def report_commands(phases: list[Phase]) -> str:
    """Redis commands per delivered token, by command, from ``INFO commandstats``."""
    rows = []
    for phase in phases:
        if not phase.commands:
            continue
        total_calls = sum(phase.commands.values())
        total_usec = sum(phase.command_usec.values())
        top = sorted(phase.commands, key=phase.commands.__getitem__, reverse=True)
        detail = ", ".join(
            f"{name} {phase.commands[name]:.2f} ({phase.command_usec[name]:.1f} µs)"
            for name in top if phase.commands[name] >= 0.01
        )
        rows.append([phase_name(phase), fmt(total_calls, 2), fmt(total_usec, 1),
                     detail])  # fmt: skip
    if not rows:
        return ""
    head = ["chats, system", "commands / token", "command µs / token", "by command (µs / token)"]
    return (
        "### Redis commands per delivered token (INFO commandstats over the window)\n\n"
        + table(head, rows)
        + "\n\ncommand µs is the time Redis reports spending inside the commands; its CPU per "
        "token in the table above also counts reading and writing the sockets."
    )


def report_waiting(w: dict[str, Any], sse: dict[str, Any] | None) -> str:
    """The cost-of-waiting table."""
    mib = 2**20
    rows = [
        ["worker RSS, idle", f"{w['rss_idle'] / mib:,.1f} MiB", ""],
        [
            f"worker RSS after {w['count']} runs suspended",
            f"{w['rss_suspended'] / mib:,.1f} MiB",
            f"runs holding a worker slot: {w['active_suspended']}",
        ],
        [
            f"worker RSS with {w['warm_count']} runs warm-waiting",
            f"{w['rss_warm'] / mib:,.1f} MiB",
            f"runs holding a worker slot: {w['active_warm']}",
        ],
        ["worker RSS per warm-waiting run", f"{w['rss_per_warm'] / 1024:,.1f} KiB", ""],
    ]
    if "sse_streams" in w:
        rows += [
            [
                f"gateway RSS with {w['sse_streams']} SSE streams open",
                f"{w['gateway_rss_streams'] / mib:,.1f} MiB",
                f"before: {w['gateway_rss_idle'] / mib:,.1f} MiB",
            ],
            ["gateway RSS per open SSE stream", f"{w['gateway_rss_per_stream'] / 1024:,.1f} KiB",
             "streams idle between turns"],
        ]  # fmt: skip
    rows += [
        [
            "Redis memory per suspended run",
            f"{w['redis_per_suspended']:,.0f} B",
            "INFO used_memory_dataset delta / runs",
        ],
    ]
    for name, size in w["key_sizes"].items():
        rows.append([f"  MEMORY USAGE {name} (median)", f"{size:,.0f} B", ""])

    def conns(label: str, c: dict[str, int]) -> list[str]:
        return [
            label,
            str(c["connected_clients"]),
            f"worker {c.get('worker', 0)}, gateway {c.get('gateway', 0)}, "
            f"baseline {c.get('baseline', 0)}",
        ]

    rows.append(conns("Redis connected_clients, idle", w["conn_idle"]))
    rows.append(conns(f"… with {w['count']} runs suspended", w["conn_suspended"]))
    rows.append(conns(f"… with {w['warm_count']} runs warm-waiting", w["conn_warm"]))
    if sse:
        rows.append(conns(f"… and {sse['streams']} SSE clients open on the gateway", sse))
    return "### 3. Cost of waiting\n\n" + table(["what", "value", "detail"], rows)


def report_profile(profile: dict[str, Any]) -> str:
    """py-spy summaries."""
    parts = ["### Profile (py-spy, share of samples, top functions inclusive)"]
    for name, top in profile.items():
        parts.append(f"\n{name}:\n")
        parts.append(table(["function", "% of samples"], [[f, fmt(p, 1)] for f, p in top]))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run the suite and print the tables (``soak`` as the first argument: the soak;
    ``timeline``: where a turn's start goes)."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["soak"]:
        from bench.soak import main as soak

        return soak(args_in[1:])
    if args_in[:1] == ["timeline"]:
        from bench.timeline import main as timeline

        return timeline(args_in[1:])
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a short run (about 3 min)")
    parser.add_argument("--rounds", type=int, help="time-to-first-chunk rounds")
    parser.add_argument("--sizes", help="comma-separated chat counts, e.g. 100,500,1000")
    parser.add_argument("--window", type=float, help="seconds measured per scale phase")
    parser.add_argument(
        "--only",
        default="latency,waiting,scale,bursty,turns",
        help="sections to run: latency, waiting, scale, bursty, turns",
    )
    parser.add_argument("--turns", help="comma-separated chat counts of the whole-turns phases")
    parser.add_argument(
        "--profile", action="store_true", help="also py-spy the processes under the largest load"
    )
    parser.add_argument("--profile-dir", help="keep py-spy's raw stacks in this directory")
    parser.add_argument("--json", help="also write the raw figures to this file")
    parser.add_argument(
        "--ref",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="also measure the chatworker code of another checkout DIR (e.g. the commit before "
        "a change), side by side in the same run; repeatable",
    )
    parser.add_argument(
        "--ref-env",
        action="append",
        default=[],
        metavar="LABEL:NAME=VALUE",
        help="an environment variable for the --ref system LABEL (e.g. --ref gc=. --ref-env "
        "gc:CHATWORKER_GC_THRESHOLD=default measures a setting side by side); repeatable",
    )
    args = parser.parse_args(args_in)
    cfg = Config.quick() if args.quick else Config()
    if args.rounds:
        cfg.rounds = args.rounds
    if args.sizes:
        cfg.sizes = tuple(int(s) for s in args.sizes.split(","))
    if args.window:
        cfg.window = args.window
    if args.turns:
        cfg.turns = tuple(int(s) for s in args.turns.split(","))
    cfg.profile = args.profile
    cfg.profile_dir = args.profile_dir
    for ref in args.ref:
        label, sep, path = ref.partition("=")
        if not sep or not (Path(path) / "chatworker").is_dir():
            parser.error(f"--ref {ref!r}: expected LABEL=DIR, DIR holding a chatworker checkout")
        cfg.refs.append((label, Path(path).resolve()))
    for item in args.ref_env:
        label, _, assignment = item.partition(":")
        name, sep, value = assignment.partition("=")
        if not sep or not name or label not in {ref for ref, _ in cfg.refs}:
            parser.error(f"--ref-env {item!r}: expected LABEL:NAME=VALUE for a --ref LABEL")
        cfg.ref_env.setdefault(label, {})[name] = value
    only = set(args.only.split(","))
    info = machine()
    started = time.monotonic()
    print(
        f"machine: {info['nproc']} cores, {info['ram']} RAM, {info['cpu']}; "
        f"Python {info['python']}; {info['versions']}",
        flush=True,
    )
    with Bench(cfg) as bench:
        main_stack = bench.main
        server = main_stack.r.info("server")
        print(
            f"redis-server {server['redis_version']}; worker: celery -P gevent -c "
            f"{main_stack.worker.concurrency}; gateway and baseline: gunicorn -k gevent -w 1"
            + "".join(
                f"; [{label}] = {_describe_ref(cfg, label, root)}" for label, root in cfg.refs
            ),
            flush=True,
        )
        labels = [stack.label for stack in bench.stacks]
        if "latency" in only:
            bench.latency()
            print("\n" + report_latency(bench.results["latency"], cfg.rounds, labels), flush=True)
            print("\n" + report_parse(bench.model_parse()), flush=True)
        if "waiting" in only:
            bench.waiting_costs()
        if "scale" in only:
            for n in cfg.sizes:
                bench.scale(None, n)
                for stack in bench.stacks:
                    bench.scale(stack, n)
                print(f"  … {n} chats measured ({time.monotonic() - started:.0f} s)", flush=True)
        if "bursty" in only:
            bench.scale(None, cfg.bursty, "bursty")
            for stack in bench.stacks:
                bench.scale(stack, cfg.bursty, "bursty")
            print(f"  … {cfg.bursty} bursty chats measured ({time.monotonic() - started:.0f} s)",
                  flush=True)  # fmt: skip
        if bench.results.get("scale"):
            print("\n" + report_scale(bench.results["scale"], cfg.window, cfg.rate), flush=True)
            print("\n" + report_commands(bench.results["scale"]), flush=True)
        if "turns" in only:
            for n in cfg.turns:
                whole_turns(bench, None, n)
                for stack in bench.stacks:
                    whole_turns(bench, stack, n)
                print(f"  … {n} whole turns measured ({time.monotonic() - started:.0f} s)",
                      flush=True)  # fmt: skip
            print("\n" + report_turns(bench.results["turns"]), flush=True)
        io = report_redis_io(bench.results.get("turns", []), bench.results.get("scale", []))
        if io:
            print("\n" + io, flush=True)
        if "waiting" in only:
            print(
                "\n" + report_waiting(bench.results["waiting"], bench.results.get("conn_sse")),
                flush=True,
            )
        if cfg.profile:
            bench.profile()
            print("\n" + report_profile(bench.results["profile"]), flush=True)
        capacity = report_capacity(bench.results)
        if capacity:
            print("\n" + capacity, flush=True)
        goals = report_goals(bench.results)
        if goals:
            print("\n" + goals, flush=True)
        if args.json:
            raw = dict(bench.results)
            raw["scale"] = [vars(p) for p in raw.get("scale", [])]
            raw["turns"] = [vars(p) for p in raw.get("turns", [])]
            Path(args.json).write_text(json.dumps(raw, default=str))
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
