"""The scripted model server in a process of its own, under gevent, with timestamped tokens.

``python -m bench.model --port N`` serves :class:`chatworker.testing.model_server.ModelServer`.
The reply is chosen by the last user message:

- ``bench:fast`` — eight short words at 1,000 tokens/s (time-to-first-chunk probes);
- ``bench:silent`` — one word, then silence for two minutes (stop latency);
- ``bench:stream:<tokens>:<rate>`` — ``tokens`` words at ``rate`` tokens/s, each word being the
  server's ``time.monotonic()`` at the moment it is written, so a client can compute the
  latency from model emit to its own receipt (``CLOCK_MONOTONIC`` is shared by all processes);
- ``bench:bursty:<tokens>:<rate>`` — the same timestamped words, but in bursts as real models
  send them: bursts of 10-30 tokens at 50-100 tokens/s, each followed by a pause long enough
  that the reply averages ``rate`` tokens/s (:func:`bursts`);
- anything else — ``ok`` at once.

gevent makes the server's one-thread-per-connection design cheap enough for 1,000 concurrent
streams; it runs in its own process so its CPU is never counted against the measured ones.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from chatworker.testing import model_server  # noqa: E402
from chatworker.testing import responder as responder_module  # noqa: E402
from chatworker.testing.script import Silence, Step, Text, last_user_text  # noqa: E402

#: Placeholder word replaced by the emit timestamp.
STAMP = "§"
FAST = "a b c d e f g h"


def reply(body: dict[str, Any]) -> list[Step]:
    """The scripted reply for a request body (see the module docstring)."""
    text = last_user_text(body).strip()
    if text == "bench:fast":
        return [Text(FAST, tokens_per_second=1000)]
    if text == "bench:silent":
        return [Text("waiting ", tokens_per_second=1000), Silence(120)]
    if text.startswith("bench:stream:"):
        _, _, tokens, rate = text.split(":")
        return [Text(" ".join([STAMP] * int(tokens)), tokens_per_second=float(rate))]
    if text.startswith("bench:bursty:"):
        _, _, tokens, rate = text.split(":")
        return bursts(int(tokens), float(rate))
    return [Text("ok", tokens_per_second=1000)]


def bursts(tokens: int, rate: float, rng: random.Random | None = None) -> list[Step]:
    """``tokens`` timestamped words in bursts of 10-30 tokens at 50-100 tokens/s, each burst
    followed by a pause so that burst plus pause lasts ``size / rate``: the reply averages
    ``rate`` tokens/s (the pause is skipped if a burst is already slower than that)."""
    rng = rng or random.Random()
    steps: list[Step] = []
    left = tokens
    while left > 0:
        size = min(left, rng.randint(10, 30))
        speed = rng.uniform(50.0, 100.0)
        steps.append(Text(" ".join([STAMP] * size) + " ", tokens_per_second=speed))
        left -= size
        pause = size / rate - size / speed
        if left > 0 and pause > 0:
            steps.append(Silence(pause))
    return steps


def _install_stamps() -> None:
    """Replace each placeholder token with the time it is written (a private hook)."""
    responder: Any = responder_module.Responder
    original = responder._event

    def _event(self: Any, delta: dict[str, Any]) -> None:
        content = delta.get("content")
        if content and content[0] == STAMP:
            delta = {"content": f"{time.monotonic():.6f} "}
        original(self, delta)

    responder._event = _event


def main(argv: list[str] | None = None) -> None:
    """Serve until killed; prints ``ready <port>`` once listening."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    _install_stamps()
    server = model_server.ModelServer(args.port, default_reply=reply).start()
    server._httpd.socket.listen(4096)  # type: ignore[union-attr]  # bursts of connections
    print(f"ready {server.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        sys.exit(0)


if __name__ == "__main__":
    main()
