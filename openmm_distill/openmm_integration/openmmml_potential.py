"""A compiled student as an openmm-ml potential (``MLPotentialImpl``).

openmm-ml's ``MLPotential(name)`` finds this class through the entry points that
:mod:`openmm_distill_openmmml` registers; :func:`~openmm_distill.openmm_integration.mixed.create_mixed_system`
uses it directly, so both paths build the same System. ``addForces`` is openmm-ml's
contract: add the student's force for ``atoms`` (None: all) in ``forceGroup``.
"""
from __future__ import annotations

from typing import Iterable, Optional

from openmm_distill.errors import ConfigError
from openmm_distill.export.student import load_student
from openmm_distill.openmm_integration.system import BACKENDS, add_student_force

import openmm
from openmm import app
from openmmml.mlpotential import MLPotentialImpl

# What ``createSystem``/``createMixedSystem`` may pass on to addForces: this package's own options, and
# the arguments openmm-ml's mechanical embedding reads itself and forwards to every potential.
STUDENT_ARGS = ("backend", "cuda_graphs")
EMBEDDING_ARGS = ("mlLongRange", "linkAtomDistances")


class StudentPotentialImpl(MLPotentialImpl):
    """openmm-ml's face of a compiled student.

    Parameters
    ----------
    student : shipped student name, compiled file path, or :class:`~openmm_distill.export.student.CompiledStudent`
    """

    def __init__(self, student):
        self.student = load_student(student)

    def addForces(self, topology: app.Topology, system: openmm.System, atoms: Optional[Iterable[int]],
                  forceGroup: int, **args) -> None:
        unknown = sorted(set(args) - set(STUDENT_ARGS) - set(EMBEDDING_ARGS))
        if unknown:
            raise ConfigError(f"unknown argument(s) {unknown} for the openmm-distill potential; it takes "
                              f"backend= (one of {BACKENDS}) and cuda_graphs=")
        backend = args.get("backend", "auto")
        if system.getNumParticles() == 0:
            # openmm-ml's interpolation (interpolate=True) builds the forces in an empty System and deep-copies
            # them into a CustomCVForce, through XML: openmmtorch 1.5 segfaults deserialising a TorchForce.
            if backend == "torch":
                raise ConfigError("interpolate=True copies the student's force through XML, which crashes "
                                  "openmm-torch 1.5's TorchForce; use backend='python' (or 'auto', which does)")
            backend = "python" if backend == "auto" else backend
        add_student_force(system, self.student, topology, atoms=atoms, backend=backend,
                          cuda_graphs=bool(args.get("cuda_graphs", False)), force_group=forceGroup)

    def getMLLongRange(self) -> bool:
        """Students are local (a cutoff of a few Angstrom): the MM force field keeps long-range electrostatics."""
        return False
