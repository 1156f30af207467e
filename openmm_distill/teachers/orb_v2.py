"""Orb-v2 teacher through orb-models 0.5.5.

Weights come from orb-models' own loader, :func:`orb_models.forcefield.pretrained.orb_v2`,
given either its default URL (needs internet on first use; cached afterwards) or
a local checkpoint via ``weights_path`` (a ``state_dict`` saved with ``torch.save``).
Both go through the same code path, so a locally saved checkpoint exercises
exactly what a pretrained one does.

Notes on the model, recorded in :attr:`OrbV2Teacher.settings`:

* orb-v2 is a *direct* force model: forces come from a separate output head,
  not from the gradient of the energy, so they are not exactly conservative
  (an NVE run with it drifts; finite differences of its energy do not match
  its forces exactly).
* It runs in float32 by default (``precision="float32-high"``).
* The graph is built by orb-models' own featurisation
  (:func:`orb_models.forcefield.atomic_system.ase_atoms_to_atom_graphs`),
  radius 6 Angstrom, at most 20 neighbours per atom.
* It has no notion of total charge, so a non-zero charge passed to
  :meth:`compute` is refused (:class:`~openmm_distill.errors.TeacherError`)
  rather than labelled as if the structure were neutral.
* It works in eV and Angstrom, so no unit conversion is needed.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from openmm_distill.errors import ConfigError, MissingDependencyError, TeacherError
from openmm_distill.teachers.base import Teacher

INSTALL_HINT = "pip install 'orb-models==0.5.5'  (or: pip install 'openmm-distill[orb]')"
PRECISIONS = ("float32-high", "float32-highest", "float64")


def _import_orb():
    try:
        from orb_models.forcefield import pretrained
        from orb_models.forcefield.atomic_system import ase_atoms_to_atom_graphs
    except ImportError as exc:
        raise MissingDependencyError("orb-models", INSTALL_HINT, "the 'orb-v2' teacher") from exc
    return pretrained, ase_atoms_to_atom_graphs


def default_weights_url() -> str:
    """The URL of the pretrained orb-v2 checkpoint that orb-models downloads by default."""
    import inspect

    pretrained, _ = _import_orb()
    return inspect.signature(pretrained.orb_v2).parameters["weights_path"].default


class OrbV2Teacher(Teacher):
    """Orb-v2 foundation force field (Orbital Materials), direct-force variant.

    Parameters
    ----------
    weights_path : str, optional
        Local checkpoint (``state_dict`` of :func:`orb_models.forcefield.pretrained.orb_v2_architecture`)
        or URL. Default: orb-models' pretrained orb-v2 URL.
    device : str
        ``"cpu"`` (default) or a CUDA device such as ``"cuda"``.
    precision : str
        ``"float32-high"`` (default), ``"float32-highest"`` or ``"float64"``.
    compile : bool
        ``torch.compile`` the model (default False: compilation costs more than
        it saves for small molecules on a CPU).
    """

    name = "orb-v2"

    def __init__(
        self,
        weights_path: Optional[str] = None,
        device: str = "cpu",
        precision: str = "float32-high",
        compile: bool = False,
    ) -> None:
        super().__init__()
        import torch

        pretrained, self._to_graph = _import_orb()
        if precision not in PRECISIONS:
            raise ConfigError(f"precision={precision!r} is not supported; allowed: {', '.join(PRECISIONS)}")
        if weights_path is None:
            weights_path = default_weights_url()
        elif "://" not in str(weights_path) and not os.path.exists(weights_path):
            raise ConfigError(f"orb-v2 weights_path {weights_path!r} does not exist")
        self._device = torch.device(device)
        # orb-models' loader sets the process-wide default dtype and matmul
        # precision; restore both so loading a teacher does not change the
        # numerics of everything else in the process.
        old_dtype = torch.get_default_dtype()
        old_matmul = torch.get_float32_matmul_precision()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._model = pretrained.orb_v2(
                    weights_path=str(weights_path), device=self._device, precision=precision, compile=compile
                )
        except (RuntimeError, OSError, ValueError) as exc:
            raise ConfigError(f"could not load orb-v2 weights from {weights_path!r}: {exc}") from exc
        finally:
            torch.set_default_dtype(old_dtype)
            torch.set_float32_matmul_precision(old_matmul)
        self._dtype = next(self._model.parameters()).dtype
        self._system_config = self._model.system_config
        from importlib.metadata import version

        self.version = f"orb-models {version('orb-models')}; weights {os.path.basename(str(weights_path))}"
        self.settings = {
            "weights": str(weights_path),
            "device": str(self._device),
            "precision": precision,
            "dtype": str(self._dtype).replace("torch.", ""),
            "compile": bool(compile),
            "radius_angstrom": float(self._system_config.radius),
            "max_num_neighbors": int(self._system_config.max_num_neighbors),
            "forces": "direct (non-conservative force head)",
            "conservative_forces": False,
            "charge": "neutral only",
        }

    def _compute(self, numbers: np.ndarray, positions: np.ndarray, box: Optional[np.ndarray], charge: Optional[int]):
        import torch
        from ase import Atoms

        if charge:
            raise TeacherError(f"Orb-v2 has no notion of total charge; got charge={int(charge)}, "
                               "only neutral structures (0) are allowed")
        atoms = Atoms(numbers=numbers, positions=positions)
        if box is not None:
            atoms.cell = box
            atoms.pbc = True
        graph = self._to_graph(
            atoms, system_config=self._system_config, device=self._device, output_dtype=self._dtype
        )
        with torch.no_grad():
            out = self._model.predict(graph.to(self._device))
        energy = out["energy"].detach().cpu().double().numpy().reshape(-1)[0]
        forces = out["forces"].detach().cpu().double().numpy()
        return float(energy), forces


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
        raise MissingDependencyError("orb-models", INSTALL_HINT, "Orb-v2") from exc
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
