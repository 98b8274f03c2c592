"""Put on a worker's PYTHONPATH to run its clock ahead by ``CHATWORKER_TEST_CLOCK_SKEW`` seconds,
as a machine whose clock drifted would (``time.time`` is what every wall-clock reading uses)."""

import os
import time

_skew = float(os.environ.get("CHATWORKER_TEST_CLOCK_SKEW") or 0)
if _skew:
    _time, _time_ns = time.time, time.time_ns
    time.time = lambda: _time() + _skew
    time.time_ns = lambda: _time_ns() + int(_skew * 1e9)
