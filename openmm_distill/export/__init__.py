"""Compile students to TorchScript with embedded metadata, and load them back."""
from openmm_distill.export.deployed import DeployedStudent
from openmm_distill.export.student import CompiledStudent, available_students, load_student
from openmm_distill.export.torchscript import compile_student, load_compiled, read_metadata

__all__ = ["CompiledStudent", "DeployedStudent", "available_students", "compile_student", "load_compiled",
           "load_student", "read_metadata"]
