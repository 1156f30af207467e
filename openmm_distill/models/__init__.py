"""Student architectures (Angstrom / eV inside), neighbour search, dtype casting and checkpoints."""
from openmm_distill.models.casting import cast_model
from openmm_distill.models.checkpoint import load_checkpoint, save_checkpoint
from openmm_distill.models.neighbors import neighbor_list
from openmm_distill.models.painn import PaiNN
from openmm_distill.models.registry import (
    ARCHITECTURES,
    PRESETS,
    build_model,
    build_student,
    count_parameters,
    get_preset,
    preset_names,
)

__all__ = [
    "ARCHITECTURES", "PRESETS", "PaiNN", "build_model", "build_student", "cast_model", "count_parameters",
    "get_preset", "load_checkpoint", "neighbor_list", "preset_names", "save_checkpoint",
]
