"""Student checkpoints: plain dicts of tensors and built-in types, loaded with ``weights_only=True``.

A checkpoint stores what is needed to rebuild the model (architecture,
hyperparameters, elements) and its ``state_dict`` without any wrapper prefix
(the original project lost days to a ``model.`` prefix). Files carry a
``format_version``; other versions are refused with a clear message.
Writes are atomic: temporary file in the same folder, then ``os.replace``.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from openmm_distill.errors import IncompatibleFileError, MissingFileError
from openmm_distill.version import __version__

CHECKPOINT_KIND = "openmm-distill/student-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def model_spec(model: nn.Module) -> Dict[str, Any]:
    """Architecture name and hyperparameters needed to rebuild ``model``."""
    return {
        "architecture": type(model).__name__.lower(),
        "elements": list(model.elements),
        "hyperparameters": {
            "hidden": model.hidden,
            "n_interactions": model.n_interactions,
            "cutoff": model.cutoff,
            "n_rbf": model.n_rbf,
        },
    }


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    preset: Optional[str] = None,
    extra: Optional[Dict[str, Any]] = None,
    provenance: Optional[Dict[str, Any]] = None,
) -> None:
    """Write a student checkpoint atomically.

    ``extra`` holds trainer state (optimizer, epoch, ...) and must itself be
    loadable with ``weights_only=True`` (tensors, numbers, strings, lists, dicts).
    """
    payload = {
        "kind": CHECKPOINT_KIND,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "package_version": __version__,
        "preset": preset,
        **model_spec(model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "provenance": provenance or {},
        "extra": extra or {},
    }
    atomic_torch_save(payload, path)


def read_checkpoint(path: str | os.PathLike) -> Dict[str, Any]:
    """Load and validate a checkpoint dict (no code is executed: ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {str(path)!r} does not exist")
    try:
        with warnings.catch_warnings():
            # A compiled (TorchScript) student is read here first by `openmm-distill compile`, which then rebuilds
            # it; torch's advice to call torch.jit.load instead would only confuse the user.
            warnings.filterwarnings("ignore", message=".*looks like a TorchScript archive")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, ...
        raise IncompatibleFileError(f"{str(path)!r} is not a readable openmm-distill checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("kind") != CHECKPOINT_KIND:
        raise IncompatibleFileError(f"{str(path)!r} is not an openmm-distill student checkpoint")
    version = payload.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise IncompatibleFileError(
            f"{str(path)!r} has checkpoint format version {version}, this openmm-distill reads version "
            f"{CHECKPOINT_FORMAT_VERSION} (written by openmm-distill {payload.get('package_version')}); "
            "retrain or convert it with a matching openmm-distill"
        )
    return payload


def load_checkpoint(path: str | os.PathLike) -> Tuple[nn.Module, Dict[str, Any]]:
    """Rebuild the model from a checkpoint; returns ``(model, payload)``."""
    from openmm_distill.models.registry import build_model

    payload = read_checkpoint(path)
    model = build_model(payload["architecture"], payload["elements"], **payload["hyperparameters"])
    # A model trained in float64 comes back in float64 (not rounded through float32 parameters).
    if any(v.dtype == torch.float64 for k, v in payload["state_dict"].items() if k.endswith("weight")):
        model = model.double()
    model.load_state_dict(payload["state_dict"])
    return model, payload
