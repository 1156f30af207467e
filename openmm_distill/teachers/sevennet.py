"""SevenNet teacher through sevenn 0.13.0, with the pretrained potentials its wheel ships.

The ``sevenn`` wheel carries the checkpoints of SevenNet-0 (``7net-0``, 842K
parameters, trained on MPtrj), SevenNet-l3i5 (``7net-l3i5``, 1.17M) and the
multi-fidelity SevenNet-MF-0 (``7net-mf-0``, choose a ``modal``), so they load
with no download. The other names in sevenn's registry download their weights
on first use and are not offered here.

Notes on the model, recorded in :attr:`SevenNetTeacher.settings`:

* SevenNet is an E(3)-equivariant message-passing network (NequIP-like); its
  forces are the negative gradient of its energy, so they are conservative.
* It runs in float32 (the checkpoints' dtype): labels carry float32 round-off
  (about 1e-5 relative in the energy).
* It was trained on periodic inorganic crystals (DFT, PBE/PBE+U); it has no
  notion of total charge, so a non-zero charge is refused rather than
  silently ignored.
* Cutoff 5 Angstrom; it works in eV and Angstrom, so no unit conversion is needed.

Threads: torch's thread count is left as the caller set it (labelling workers
set one thread each); ``threads=N`` sets it around every call and restores it.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator, List, Optional

import numpy as np

from openmm_distill.checksums import file_sha256
from openmm_distill.errors import ConfigError, MissingDependencyError, TeacherError
from openmm_distill.teachers.base import Teacher

INSTALL_HINT = 'pip install "openmm-distill[sevennet]"'
# Pretrained names whose checkpoints ship inside the sevenn 0.13.0 wheel.
OFFLINE_MODELS = ("7net-0", "7net-l3i5", "7net-mf-0")


def _import_sevenn():
    try:
        import sevenn
        import sevenn.util
        from sevenn.calculator import SevenNetCalculator
    except ImportError as exc:
        raise MissingDependencyError("sevenn", INSTALL_HINT, "the 'sevennet' teacher") from exc
    return sevenn, SevenNetCalculator


@contextlib.contextmanager
def torch_threads(threads: Optional[int]) -> Iterator[None]:
    """Run a block with ``threads`` torch intra-op threads, then restore the previous count (``None``: no change)."""
    import torch

    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _match_modal(modal: Optional[str], modals: List[str], model: str) -> Optional[str]:
    """The checkpoint's spelling of ``modal`` (case-insensitive), or a ConfigError naming the allowed ones."""
    if not modals:
        if modal is not None:
            raise ConfigError(f"model {model!r} has a single fidelity; remove modal={modal!r}")
        return None
    if modal is None:
        raise ConfigError(f"model {model!r} is multi-fidelity: choose modal=..., one of {', '.join(modals)}")
    by_lower = {m.lower(): m for m in modals}
    if str(modal).lower() not in by_lower:
        raise ConfigError(f"modal={modal!r} is not a fidelity of {model!r}; allowed: {', '.join(modals)}")
    return by_lower[str(modal).lower()]


class SevenNetTeacher(Teacher):
    """SevenNet foundation force field (Park et al., J. Chem. Theory Comput. 2024), pretrained weights offline.

    Parameters
    ----------
    model : str
        Pretrained potential: ``"7net-0"`` (default), ``"7net-l3i5"`` or ``"7net-mf-0"``.
    modal : str, optional
        Fidelity of a multi-fidelity model (``7net-mf-0``: ``"PBE"`` or
        ``"R2SCAN"``, case-insensitive); required for it, refused for the others.
    device : str
        ``"cpu"`` (default) or a CUDA device such as ``"cuda"``.
    threads : int, optional
        torch threads during a call (restored afterwards). ``None`` (default)
        keeps the process's setting. Not part of :attr:`settings` (it does not change the labels).

    Raises
    ------
    MissingDependencyError
        If ``sevenn`` is not installed (the message names the install command).
    ConfigError
        For a model name outside :data:`OFFLINE_MODELS`, a missing or unknown ``modal``, or ``threads < 1``.
    """

    name = "sevennet"

    def __init__(
        self, model: str = "7net-0", modal: Optional[str] = None, device: str = "cpu", threads: Optional[int] = None
    ) -> None:
        super().__init__()
        sevenn, calculator_class = _import_sevenn()
        import torch

        key = str(model).strip().lower()
        if key not in OFFLINE_MODELS:
            raise ConfigError(
                f"SevenNet model {model!r} is not available offline; allowed: {', '.join(OFFLINE_MODELS)}"
            )
        if threads is not None and int(threads) < 1:
            raise ConfigError(f"threads must be >= 1 or None, got {threads!r}")
        self.threads = None if threads is None else int(threads)
        checkpoint = sevenn.util.pretrained_name_to_path(key)
        with warnings.catch_warnings():
            # "No tensor product accelerator": expected on a CPU; cuEquivariant/FlashTP are CUDA-only.
            warnings.simplefilter("ignore", UserWarning)
            modals = list(sevenn.util.load_checkpoint(checkpoint).config.get("modal_list") or [])
            modal = _match_modal(modal, modals, key)
            self._calc = calculator_class(checkpoint, device=torch.device(device), modal=modal)
        self._known_numbers = {int(z) for z in self._calc.type_map}
        parameter = next(self._calc.model.parameters())
        sevenn_version = getattr(sevenn, "__version__", "unknown")
        self.version = f"sevenn {sevenn_version}; {key} {os.path.basename(checkpoint)}"
        self.settings = {
            "model": key,
            "modal": modal,
            "checkpoint": os.path.basename(checkpoint),
            "checkpoint_sha256": file_sha256(checkpoint),
            "sevenn_version": sevenn_version,
            "n_parameters": int(sum(p.numel() for p in self._calc.model.parameters())),
            "device": str(torch.device(device)),
            "dtype": str(parameter.dtype).replace("torch.", ""),
            "cutoff_angstrom": float(self._calc.cutoff),
            "forces": "-grad E (conservative)",
            "conservative_forces": True,
            "charge": "neutral only",
        }

    def _compute(self, numbers: np.ndarray, positions: np.ndarray, box: Optional[np.ndarray], charge: Optional[int]):
        from ase import Atoms
        from ase.calculators.calculator import all_changes

        if charge:
            raise TeacherError(f"SevenNet has no notion of total charge; got charge={int(charge)}, "
                               "only neutral structures (0) are allowed")
        unknown = sorted(set(int(z) for z in numbers) - self._known_numbers)
        if unknown:
            raise TeacherError(f"SevenNet model {self.settings['model']!r} has no parameters for atomic numbers "
                               f"{unknown}")
        atoms = Atoms(numbers=numbers, positions=positions)
        if box is not None:
            atoms.cell = box
            atoms.pbc = True
        with torch_threads(self.threads):
            self._calc.calculate(atoms, ["energy", "forces"], all_changes)
        results = self._calc.results
        return float(results["energy"]), np.asarray(results["forces"], dtype=np.float64)
