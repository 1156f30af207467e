"""Backend 1: openmm-torch's ``TorchForce`` (the compiled module runs inside OpenMM's C++ layer)."""
from __future__ import annotations

import functools
from typing import Optional, Sequence

from openmm_distill.errors import MissingDependencyError
from openmm_distill.export.student import CompiledStudent


def import_openmmtorch():
    """Import openmmtorch without the 'simtk.openmm is deprecated' line it triggers (openmmtorch 1.5
    still imports the old ``simtk`` alias; nothing is wrong on the user's side)."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        import openmmtorch
    finally:
        logging.disable(previous)
    return openmmtorch


@functools.lru_cache(maxsize=None)
def torch_force_unavailable() -> Optional[str]:
    """Why openmm-torch's TorchForce cannot run in this process, or None if it can (decided once per process:
    OpenMM loads its plugins when it is first imported)."""
    try:
        import_openmmtorch()
    except ImportError as exc:
        return (f"openmmtorch does not import ({exc}); install openmmtorch==1.5 with torch==2.9.1, or use "
                "backend='python', which works with any torch")
    from openmm_distill.import_order import FIX, torch_plugin_failure

    failure = torch_plugin_failure()
    if failure:
        return f"openmm-torch's kernels did not load ({failure.rsplit('/', 1)[-1]}); {FIX}"
    return None


def make_torch_force(student: CompiledStudent, atomic_numbers: Sequence[int], indices: Optional[Sequence[int]],
                     periodic: bool, cuda_graphs: bool = False):
    """A ``TorchForce`` evaluating ``student`` on the given particles.

    ``cuda_graphs`` records the model as a CUDA graph on the CUDA platform
    (openmm-torch property ``useCUDAGraphs``); it has no effect on other platforms.
    """
    reason = torch_force_unavailable()
    if reason:
        raise MissingDependencyError(f"backend='torch' cannot run here: {reason}")
    openmmtorch = import_openmmtorch()
    module = student.bound_module(atomic_numbers, indices)
    force = openmmtorch.TorchForce(module)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    if cuda_graphs:
        force.setProperty("useCUDAGraphs", "true")
    return force
