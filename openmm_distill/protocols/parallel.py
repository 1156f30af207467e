"""Run a protocol's per-system function over many systems, optionally in worker processes.

A split of the catalog holds 64 molecules and a full NVE or stability run takes
minutes per molecule, so sweeps are run one system per process (``jobs``
workers, one CPU thread each: for small molecules one thread per simulation is
faster than several threads fighting over shared cores). Results come back in
the order of the systems, whatever order the workers finish in.

Workers are started with ``spawn`` (a forked child would inherit the parent's
OpenMP and torch thread pools in an undefined state) and get the model by name
or path: a ready ``openmm.System`` holding a TorchForce cannot be sent to
another process (its XML deserialisation crashes in openmmtorch 1.5).
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, List, Optional, Sequence

from openmm_distill.cpu_runtime import limit_threads
from openmm_distill.errors import ConfigError
from openmm_distill.protocols import openmm_setup, output


def _one_thread_per_worker() -> None:
    limit_threads(1)


def _check_jobs(jobs: Optional[int]) -> int:
    jobs = 1 if jobs is None else jobs
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be a positive integer, got {jobs!r}")
    return jobs


def map_systems(fn: Callable[..., Any], model: openmm_setup.ModelLike, specs: Sequence[Any], *, jobs: Optional[int] = 1,
                desc: str = "systems", show_progress: bool = True,
                on_result: Optional[Callable[[int, Any], None]] = None, **kwargs: Any) -> List[Any]:
    """``[fn(model, spec, **kwargs) for spec in specs]``, in ``jobs`` worker processes when ``jobs > 1``.

    Parameters
    ----------
    fn : callable
        A module-level function (workers import it by name), e.g. :func:`run_nve`.
    model : student name or compiled file (str or path) when ``jobs > 1``
    jobs : int
        Worker processes; 1 runs everything here, in order, with ``fn``'s own progress bars.
    on_result : callable, optional
        ``on_result(index, result)`` as soon as each spec is done (in completion order), so that a
        caller can keep finished work before the whole map ends.
    """
    jobs = _check_jobs(jobs)
    on_result = on_result or (lambda index, result: None)
    if jobs == 1 or len(specs) <= 1:
        results_in_order = []
        for k, spec in enumerate(specs):
            results_in_order.append(fn(model, spec, show_progress=show_progress, **kwargs))
            on_result(k, results_in_order[-1])
        return results_in_order
    if not isinstance(model, (str, os.PathLike)):
        raise ConfigError(f"jobs={jobs} needs the student as a name or file path (workers load it themselves), "
                          f"got a {type(model).__name__}; use jobs=1 for an in-memory model")
    model = os.fspath(model)
    results: List[Any] = [None] * len(specs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(specs)), mp_context=context,
                             initializer=_one_thread_per_worker) as pool:
        futures = {pool.submit(fn, model, spec, show_progress=False, **kwargs): k for k, spec in enumerate(specs)}
        bar = output.progress(total=len(specs), desc=f"{desc} ({jobs} workers)", enabled=show_progress,
                              unit_name="system")
        for future in as_completed(futures):
            k = futures[future]
            results[k] = future.result()
            on_result(k, results[k])
            bar.update(1)
        bar.close()
    return results
