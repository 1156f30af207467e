"""The one timing harness (openmm_distill.timing): medians of alternating blocks, call caps, sync."""
from __future__ import annotations

import time

from openmm_distill.timing import interleaved


def test_interleaved_times_each_function_side_by_side():
    synced = []
    timings = interleaved({"short": lambda: time.sleep(0.001), "long": lambda: time.sleep(0.004)}, min_time=0.05,
                          min_blocks=3, block_time=0.01, warmup=1, sync=lambda: synced.append(1))
    assert set(timings) == {"short", "long"}
    assert 0.001 <= timings["short"] < timings["long"]
    assert timings["long"] / timings["short"] > 1.5
    assert all(timings.calls[k] >= 3 for k in timings) and synced


def test_max_calls_caps_a_slow_function():
    calls = []
    timings = interleaved({"step": lambda: calls.append(1)}, min_time=10.0, min_blocks=1, warmup=2, max_calls=7)
    assert timings.calls["step"] == 7 and len(calls) == 2 + 1 + 7  # warm-up, the sizing call, the timed calls
