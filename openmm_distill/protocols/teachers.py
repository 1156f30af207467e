"""Teachers for the protocols: by registry name, plus Orb-v2's architecture with random weights.

No pretrained Orb-v2 weights can be downloaded on machines without internet.
Its *cost* does not depend on the weights, so throughput measurements build
``orb_models.forcefield.pretrained.orb_v2_architecture`` with random weights,
save them as a local checkpoint and load that through the real teacher
adapter (:class:`openmm_distill.teachers.orb_v2.OrbV2Teacher`): the same code
path as the pretrained model. Accuracy against random weights measures
nothing, so :func:`get_protocol_teacher` refuses it unless asked.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from openmm_distill.errors import ConfigError

from openmm_distill.teachers.orb_v2 import random_orb_v2_checkpoint  # noqa: F401  (re-exported)


def get_protocol_teacher(name: str, weights_path: Optional[str] = None, *, allow_random_weights: bool = False,
                         **options: Any) -> Tuple[Any, str]:
    """A teacher and its label for tables.

    Parameters
    ----------
    name : str
        Registry name (``"gfn2-xtb"``, ``"orb-v2"``, ``"ase"``).
    weights_path : str, optional
        Orb-v2 checkpoint. Without it, ``allow_random_weights=True`` builds the
        architecture with random weights (for cost measurements only).
    options
        Passed to :func:`openmm_distill.teachers.get_teacher`.

    Returns
    -------
    (Teacher, str)
    """
    from openmm_distill.teachers import get_teacher

    key = str(name).strip().lower()
    if key == "orb-v2":
        label = "orb-v2"
        if weights_path is None:
            if not allow_random_weights:
                raise ConfigError("the orb-v2 teacher needs weights (--teacher-weights PATH); pretrained weights "
                                  "cannot be downloaded here and random weights are only good for timing")
            weights_path = random_orb_v2_checkpoint()
            label = "orb-v2 (architecture, random weights)"
        return get_teacher("orb-v2", weights_path=str(weights_path), **options), label
    if weights_path is not None:
        options = {**options, "weights_path": weights_path}
    return get_teacher(key, **options), key


def default_teacher_name(student_metadata: Dict[str, Any]) -> str:
    """The teacher recorded in a student's metadata (``teacher`` as a name or a dict), else ``"gfn2-xtb"``."""
    teacher = student_metadata.get("teacher") if student_metadata else None
    if isinstance(teacher, dict):
        teacher = teacher.get("name")
    if isinstance(teacher, str) and teacher.strip():
        return teacher.strip().lower()
    return "gfn2-xtb"
