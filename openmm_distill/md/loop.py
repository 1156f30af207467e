"""The one MD loop: step an OpenMM Simulation in chunks and hand each state to a callback.

The NVE protocol records energies with it; the watched Langevin runs of the
stability protocol and of exploration (:mod:`openmm_distill.md.langevin`)
check every state with the watchdog and keep frames. The loop owns what they
share: sampling the starting state, stepping, stopping at an OpenMM error
("particle coordinate is NaN") or when the callback says so, and progress.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Union

import openmm
from openmm import app

# on_state(steps_done, state) -> whether to go on.
StateCallback = Callable[[int, openmm.State], bool]


@dataclass
class MDRun:
    """How a chunked run ended.

    Attributes
    ----------
    steps_done : int
        MD steps completed.
    error : str
        The OpenMM exception that stopped the run ("" when none did).
    stopped : bool
        The callback asked to stop.
    """

    steps_done: int
    error: str = ""
    stopped: bool = False

    @property
    def completed(self) -> bool:
        return not self.error and not self.stopped


def run_md(simulation: Union[app.Simulation, openmm.Context], n_chunks: int, steps_per_chunk: int,
           on_state: StateCallback, *, state_options: Optional[Dict[str, bool]] = None,
           integrator: Optional[openmm.Integrator] = None, progress: Optional[Any] = None) -> MDRun:
    """Sample the state, then ``n_chunks`` times: step ``steps_per_chunk`` steps and sample again.

    Parameters
    ----------
    simulation : openmm.app.Simulation or openmm.Context
        Already set up (positions, velocities, integrator).
    n_chunks, steps_per_chunk : int
        The run is ``n_chunks * steps_per_chunk`` steps long.
    on_state : callable
        ``on_state(steps_done, state)`` for the starting state (``steps_done`` 0) and after each
        chunk; return False to stop the run there.
    state_options : dict, optional
        Keyword arguments of ``Context.getState`` (default ``getEnergy=True``).
    integrator : openmm.Integrator, optional
        What steps a bare Context (default its own integrator).
    progress : object with ``update(n)``, optional
        A progress bar, advanced by each chunk's steps.
    """
    context = getattr(simulation, "context", simulation)
    step = simulation.step if hasattr(simulation, "step") else (integrator or context.getIntegrator()).step
    options = state_options or {"getEnergy": True}
    steps_done = 0
    if not on_state(steps_done, context.getState(**options)):
        return MDRun(steps_done, stopped=True)
    for _ in range(n_chunks):
        try:
            step(steps_per_chunk)
        except openmm.OpenMMException as exc:
            return MDRun(steps_done, error=str(exc))
        steps_done += steps_per_chunk
        if progress is not None:
            progress.update(steps_per_chunk)
        if not on_state(steps_done, context.getState(**options)):
            return MDRun(steps_done, stopped=True)
    return MDRun(steps_done)
