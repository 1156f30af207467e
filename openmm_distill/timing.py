"""The one timing harness: wall-clock cost per call, measured in alternating blocks.

Used by the throughput protocol (:mod:`openmm_distill.protocols.throughput`)
and by the benchmark scripts (``benchmarks/``). The host's speed drifts over
seconds (other tenants, frequency scaling), so timing A, then B, then C in
sequence can turn a 5 % difference into 2x. Blocks of each function alternate
instead (each block ~``block_time`` seconds) until every function has
``min_blocks`` blocks and ``min_time`` seconds of samples; the medians of the
blocks are then side by side. With one function this is simply a robust
(median) cost per call.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Mapping, Optional

from openmm_distill.units import FEMTOSECOND_TO_NANOSECOND, MS_PER_S, SECONDS_PER_DAY


def ns_per_day(ms_per_step: float, timestep_fs: float) -> float:
    """Simulated ns per day of wall time at ``ms_per_step`` and a ``timestep_fs`` step (NaN without a cost)."""
    if not ms_per_step > 0:
        return float("nan")
    return SECONDS_PER_DAY * MS_PER_S / ms_per_step * timestep_fs * FEMTOSECOND_TO_NANOSECOND


class Timings(dict):
    """Median seconds per call, by key; ``calls`` holds how many calls of each were timed."""

    def __init__(self, seconds: Mapping[str, float], calls: Mapping[str, int]):
        super().__init__(seconds)
        self.calls: Dict[str, int] = dict(calls)


def interleaved(fns: Mapping[str, Callable[[], None]], min_time: float, min_blocks: int = 5,
                block_time: float = 0.05, *, warmup: int = 3, max_calls: Optional[int] = None,
                sync: Optional[Callable[[], None]] = None) -> Timings:
    """Median seconds per call of each function, timed in alternating blocks.

    Parameters
    ----------
    fns : mapping of str to callable
        What to time; each call does one unit of work (a force call, an MD step).
    min_time : float
        Seconds of timed samples each function gets at least.
    min_blocks : int
        Blocks each function gets at least.
    block_time : float
        Target length of one block, seconds (sets the calls per block).
    warmup : int
        Untimed calls first (TorchScript's profiling executor specialises on the first calls).
    max_calls : int, optional
        Stop timing a function after this many calls even if ``min_time`` has not passed.
    sync : callable, optional
        Called at the end of every block, inside the timed window (e.g. waiting for queued GPU work).

    Returns
    -------
    Timings
        A dict of median seconds per call, with ``calls`` the number of timed calls per key.
    """
    def block(fn: Callable[[], None], n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if sync is not None:
            sync()
        return time.perf_counter() - t

    reps = {}
    for key, fn in fns.items():
        if warmup:
            block(fn, warmup)
        once = block(fn, 1)
        reps[key] = max(1, int(block_time / max(once, 1e-9)))
        if max_calls is not None:
            reps[key] = min(reps[key], max_calls)
    samples: Dict[str, List[float]] = {key: [] for key in fns}
    spent = {key: 0.0 for key in fns}
    calls = {key: 0 for key in fns}

    def wants_more(key: str) -> bool:
        if max_calls is not None and calls[key] >= max_calls:
            return False
        return len(samples[key]) < min_blocks or spent[key] < min_time

    while any(wants_more(key) for key in fns):
        for key, fn in fns.items():
            if not wants_more(key):
                continue
            n = reps[key] if max_calls is None else max(1, min(reps[key], max_calls - calls[key]))
            dt = block(fn, n)
            samples[key].append(dt / n)
            spent[key] += dt
            calls[key] += n
    return Timings({key: statistics.median(v) for key, v in samples.items()}, calls)
