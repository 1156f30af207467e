"""Backend 3: ``openmm.PythonForce`` calling the student compiled by ``torch.compile`` (TorchInductor).

The same weights as the compiled file, rebuilt as eager PyTorch and handed to
TorchInductor, which fuses the network's many small operations into generated
C++ (CPU) or Triton (GPU) kernels. On a CPU this is about twice as fast as the
TorchScript interpreter at 20-100 atoms (``benchmarks/student_speed.py``).

The price is compilation on the first force call of a process: 1-2 minutes on
a 2-core CPU, about 20 s (tracing only) once TorchInductor's on-disk cache holds
the kernels (``$TORCHINDUCTOR_CACHE_DIR``, by default under the temporary folder).
Shapes are compiled as dynamic, so the changing number of neighbour pairs does
not trigger recompilation. Only the network is compiled: the neighbour search has
data-dependent shapes and stays as it is.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Sequence

import openmm
import torch

from openmm_distill.export.eager import eager_deployed
from openmm_distill.export.student import CompiledStudent
from openmm_distill.export.torchscript import module_from_bytes, module_to_bytes
from openmm_distill.openmm_integration.python_backend import StudentComputation, python_force


def check_cpp_compiler() -> None:
    """Raise a clear error when TorchInductor has no C++ compiler to build CPU kernels with."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # pragma: no cover - private API moved; let torch.compile report it
        return
    try:
        get_cpp_compiler()
    except Exception as exc:
        raise RuntimeError(
            "backend='inductor' needs a C++ compiler for TorchInductor's CPU kernels (g++ or clang++ on PATH, "
            "or the CXX environment variable); install one, or use backend='torch' or 'python' "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc


class InductorStudentComputation(StudentComputation):
    """``computation(state) -> (energy, forces)`` with the network compiled by TorchInductor on first use."""

    def __init__(self, module_bytes: bytes, periodic: bool, metadata: Dict[str, Any], device: Optional[str] = None):
        super().__init__(module_bytes, periodic, device)
        self.metadata = metadata

    @property
    def module(self):
        if self._module is None:
            deployed = eager_deployed(module_from_bytes(self.module_bytes, map_location=self.device), self.metadata)
            network = deployed.model
            if self.device == "cpu":
                # torch warns "No CUDA runtime is found" while building CPU kernels: true and beside the point.
                logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            network.atomic_energies = torch.compile(network.atomic_energies, dynamic=True)
            self._module = deployed.to(self.device)
        return self._module

    def __getstate__(self):
        return {**super().__getstate__(), "metadata": self.metadata}

    def __setstate__(self, state):
        self.__init__(state["module_bytes"], state["periodic"], state["metadata"], state["device"])


def make_inductor_force(student: CompiledStudent, atomic_numbers: Sequence[int], indices: Optional[Sequence[int]],
                        periodic: bool, device: Optional[str] = None) -> openmm.PythonForce:
    """An ``openmm.PythonForce`` evaluating ``student`` through TorchInductor on the given particles."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        check_cpp_compiler()
    module = student.bound_module(atomic_numbers, indices)
    computation = InductorStudentComputation(module_to_bytes(module), bool(periodic), dict(student.metadata), device)
    force = python_force(computation, periodic, "backend='inductor'")
    force.setName(f"openmm-distill student {student.name} (PythonForce, TorchInductor)")
    return force
