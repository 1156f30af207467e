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

import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from openmm_distill.errors import ConfigError

_RANDOM_ORB_CACHE: Dict[str, str] = {}


def random_orb_v2_checkpoint(path: Union[None, str, Path] = None, seed: int = 0) -> str:
    """Save a randomly initialised Orb-v2 (``orb_v2_architecture``) ``state_dict``; returns the file path.

    Parameters
    ----------
    path : path, optional
        Where to write it; default a file in the system temp folder (reused within a process).
    seed : int
        torch seed of the initialisation (the caller's RNG state is restored afterwards).
    """
    import torch

    key = str(path) if path is not None else f"tmp-{seed}"
    if key in _RANDOM_ORB_CACHE and Path(_RANDOM_ORB_CACHE[key]).is_file():
        return _RANDOM_ORB_CACHE[key]
    try:
        from orb_models.forcefield import pretrained
        from orb_models.forcefield.atomic_system import SystemConfig
    except ImportError as exc:
        raise ImportError("Orb-v2 needs orb-models: pip install 'openmm-distill[orb]' (orb-models==0.5.5)") from exc
    out = Path(path) if path is not None else Path(tempfile.gettempdir()) / f"openmm_distill_orb_v2_random_{seed}.ckpt"
    out.parent.mkdir(parents=True, exist_ok=True)
    rng_state = torch.get_rng_state()
    try:
        torch.manual_seed(seed)
        # The same system config as orb_v2(): radius 6 Angstrom, at most 20 neighbours.
        model = pretrained.orb_v2_architecture(device="cpu",
                                               system_config=SystemConfig(radius=6.0, max_num_neighbors=20))
        torch.save(model.state_dict(), out)
    finally:
        torch.set_rng_state(rng_state)
    _RANDOM_ORB_CACHE[key] = str(out)
    return str(out)


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
