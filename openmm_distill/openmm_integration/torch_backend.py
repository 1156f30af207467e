"""Backend 1: openmm-torch's ``TorchForce`` (the compiled module runs inside OpenMM's C++ layer)."""
from __future__ import annotations

from typing import Optional, Sequence

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


def make_torch_force(student: CompiledStudent, atomic_numbers: Sequence[int], indices: Optional[Sequence[int]],
                     periodic: bool, cuda_graphs: bool = False):
    """A ``TorchForce`` evaluating ``student`` on the given particles.

    ``cuda_graphs`` records the model as a CUDA graph on the CUDA platform
    (openmm-torch property ``useCUDAGraphs``); it has no effect on other platforms.
    """
    try:
        openmmtorch = import_openmmtorch()
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the 'torch' backend needs openmm-torch built for this torch version "
            "(pip install openmmtorch==1.5 with torch==2.9.1); or use backend='python', "
            f"which works with any torch: {exc}"
        ) from exc
    from openmm_distill.import_order import FIX, torch_plugin_failure

    failure = torch_plugin_failure()
    if failure:
        raise RuntimeError(f"openmm-torch's kernels did not load ({failure}). {FIX}")
    module = student.bound_module(atomic_numbers, indices)
    force = openmmtorch.TorchForce(module)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    if cuda_graphs:
        force.setProperty("useCUDAGraphs", "true")
    return force
