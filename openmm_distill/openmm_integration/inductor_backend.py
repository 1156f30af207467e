"""Backend 3: ``openmm.PythonForce`` calling the student compiled by ``torch.compile`` (TorchInductor).

The same weights as the compiled file, rebuilt as eager PyTorch and handed to
TorchInductor, which fuses the network's many small operations into generated
C++ (CPU) or Triton (GPU) kernels. On a CPU this is about twice as fast as the
TorchScript interpreter at 20-100 atoms (``benchmarks/student_speed.py``).

The price is compilation on the first force call of a process: 1-2 minutes on
a 2-core CPU, about 20 s (tracing only) once TorchInductor's on-disk cache holds
the kernels (``$TORCHINDUCTOR_CACHE_DIR``, by default under the temporary folder).
See :func:`openmm_distill.export.eager.inductor_deployed` for what is compiled.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch

from openmm_distill.export.eager import check_cpp_compiler, inductor_deployed
from openmm_distill.export.student import CompiledStudent
from openmm_distill.export.torchscript import module_from_bytes, module_to_bytes
from openmm_distill.openmm_integration.python_backend import StudentComputation, python_force

import openmm


class InductorStudentComputation(StudentComputation):
    """``computation(state) -> (energy, forces)`` with the network compiled by TorchInductor on first use."""

    def __init__(self, module_bytes: bytes, periodic: bool, metadata: Dict[str, Any], device: Optional[str] = None):
        super().__init__(module_bytes, periodic, device)
        self.metadata = metadata

    @property
    def module(self):
        if self._module is None:
            module = module_from_bytes(self.module_bytes, map_location=self.device)
            self._module = inductor_deployed(module, self.metadata, self.device)
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
        check_cpp_compiler("backend='inductor'", "backend='torch' or 'python'")
    module = student.bound_module(atomic_numbers, indices)
    computation = InductorStudentComputation(module_to_bytes(module), bool(periodic), dict(student.metadata), device)
    return python_force(computation, periodic, "backend='inductor'")
