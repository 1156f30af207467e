"""Where the pipeline's student starts: the shipped student of its size, a user's file, or random weights.

``training.init_from: shipped`` (the default) fine-tunes the shipped student whose
preset is the recipe's ``model.preset`` (``tiny`` -> ``openmm_distill/students/tiny.pt``):
it already knows organic chemistry, so a few molecules' data bring it close fast.
``scratch`` trains new weights; a path names a training checkpoint or a compiled
student. A compiled student carries its weights, so it is turned into a training
checkpoint (the trainer's ``model.init_from``) without retraining.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from openmm_distill.errors import ConfigError, IncompatibleFileError


@dataclass(frozen=True)
class StartingStudent:
    """The student fine-tuning starts from.

    Attributes
    ----------
    label : str
        For messages: ``shipped 'tiny'`` or the file's path.
    path : pathlib.Path
        A compiled student or a training checkpoint.
    compiled : bool
        True for a compiled (TorchScript) file, False for a training checkpoint.
    elements : list of int
        Atomic numbers it knows.
    preset : str or None
    """

    label: str
    path: Path
    compiled: bool
    elements: List[int]
    preset: Optional[str]


def starting_student(init_from: str, preset: str) -> Optional[StartingStudent]:
    """The :class:`StartingStudent` of ``training.init_from`` (None for ``scratch``).

    Raises
    ------
    ConfigError
        No shipped student of ``preset``, or a file of another preset.
    MissingFileError, IncompatibleFileError
        A path that does not exist or is neither a checkpoint nor a compiled student.
    """
    from openmm_distill.export.student import CompiledStudent, available_students, resolve_student_path
    from openmm_distill.models.checkpoint import read_checkpoint

    if init_from == "scratch":
        return None
    if init_from == "shipped":
        if preset not in available_students():
            raise ConfigError(f"no shipped student of preset {preset!r} to start from (shipped: "
                              f"{', '.join(available_students())}); set training.init_from: scratch, or a recipe "
                              "of a shipped preset")
        student = CompiledStudent(resolve_student_path(preset))
        start = StartingStudent(f"shipped {preset!r}", student.path, True, student.elements,
                                student.metadata.get("preset"))
    else:
        path = Path(init_from)
        try:
            payload = read_checkpoint(path)
            start = StartingStudent(str(path), path, False, list(payload["elements"]), payload.get("preset"))
        except IncompatibleFileError:
            student = CompiledStudent(path)
            start = StartingStudent(str(path), path, True, student.elements, student.metadata.get("preset"))
    if start.preset and start.preset != preset:
        raise ConfigError(f"training.init_from: {start.label} is a {start.preset!r} student but the recipe's "
                          f"model.preset is {preset!r}; use the recipe of {start.preset!r}")
    return start


def write_checkpoint(start: StartingStudent, path: "str | os.PathLike") -> Path:
    """A training checkpoint of ``start`` at ``path`` (a checkpoint is copied as it is)."""
    import shutil

    from openmm_distill.export.eager import eager_model
    from openmm_distill.export.torchscript import load_compiled
    from openmm_distill.models.checkpoint import save_checkpoint

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not start.compiled:
        shutil.copyfile(start.path, path)
        return path
    module, meta = load_compiled(start.path)
    save_checkpoint(path, eager_model(module, meta), preset=meta.get("preset"),
                    provenance={"converted_from": str(start.path), "compiled_created": meta.get("created"),
                                "training_data_hash": meta.get("training_data_hash")})
    return path
