"""Evaluate a compiled student against the teacher labels of a dataset.

The student is run exactly as OpenMM runs it: through the compiled
TorchScript module, one structure at a time, positions converted from
Angstrom to nm, energies returned in kJ/mol (converted back to eV) and forces
taken as ``-dE/dx`` in kJ/mol/nm (converted back to eV/Angstrom). What is
measured is therefore the deployed file, dtype and unit conversions included,
not the training checkpoint.

Which structures: all of them, or one split. For ``--split`` the split the
student was trained with is used when its metadata records one (molecule
names for the ``catalog``/``molecule`` splits; structure indices for the
``structure`` split, only on the very same dataset); otherwise the molecule
catalog's split (``systems/molecules.csv``) by molecule name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from openmm_distill.errors import DistillError
from openmm_distill.training.metrics import METRIC_NAMES, METRIC_UNITS, MetricAccumulator
from openmm_distill.training.targets import check_targets
from openmm_distill.units import ANGSTROM_TO_NM, EV_PER_ANGSTROM_TO_KJ_PER_MOL_PER_NM, EV_TO_KJ_PER_MOL

SPLITS = ("all", "train", "validation", "test")


@dataclass
class EvaluationReport:
    """Accuracy of a compiled student on a set of structures.

    Attributes
    ----------
    student, data : str
        Paths of the compiled student and the dataset.
    preset : str or None
        Preset whose targets apply (from the student's metadata unless overridden).
    split : str
        ``all``, ``train``, ``validation`` or ``test``.
    split_source : str
        How the split was chosen (``student metadata (molecule)``, ``catalog``, ...).
    n_structures : int
    molecules : list of str
    metrics : dict
        ``energy_mae_mev_per_atom`` (meV/atom), ``force_mae`` and ``force_rmse``
        (eV/Angstrom), ``force_r2``, ``angle_deg`` (degrees).
    targets : dict
        Per metric: value, target, passed (see :func:`openmm_distill.training.targets.check_targets`).
    """

    student: str
    data: str
    preset: Optional[str]
    split: str
    split_source: str
    n_structures: int
    molecules: List[str]
    metrics: Dict[str, float]
    targets: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def passed(self) -> Optional[bool]:
        """True if every target is met, False if one is missed, None without targets."""
        verdicts = [t["passed"] for t in self.targets.values()]
        if not verdicts or any(v is None for v in verdicts):
            return None
        return all(verdicts)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "student": self.student, "data": self.data, "preset": self.preset, "split": self.split,
            "split_source": self.split_source, "n_structures": self.n_structures, "molecules": self.molecules,
            "metrics": self.metrics, "metric_units": dict(METRIC_UNITS), "targets": self.targets,
            "passed": self.passed,
        }

    def format(self) -> str:
        """Human-readable table."""
        lines = [
            f"student : {self.student} (preset: {self.preset or 'unknown'})",
            f"data    : {self.data}, split {self.split} ({self.split_source}): {self.n_structures} structures, "
            f"{len(self.molecules)} molecules",
            "",
            f"{'metric':28s} {'value':>10s} {'target':>10s}  verdict",
        ]
        for metric, t in self.targets.items():
            target = "" if t["target"] is None else ((">= " if t["kind"] == "min" else "<= ") + f"{t['target']:g}")
            verdict = "-" if t["passed"] is None else ("PASS" if t["passed"] else "FAIL")
            lines.append(f"{t['label']:28s} {t['value']:10.4f} {target:>10s}  {verdict}")
        lines.append(f"{'force RMSE (eV/A)':28s} {self.metrics['force_rmse']:10.4f}")
        if self.passed is not None:
            lines += ["", "all targets met" if self.passed else "some targets missed"]
        return "\n".join(lines)


def select_structures(structure_molecules: List[str], split: str, metadata: Dict[str, Any],
                      data_hash: Optional[str] = None) -> tuple:
    """File indices of the structures in ``split``, and a note saying how they were chosen.

    See the module docstring for the rules. Raises :class:`DistillError` when the
    split cannot be determined or selects nothing.
    """
    n = len(structure_molecules)
    if split == "all":
        return np.arange(n), "whole dataset"
    if split not in SPLITS:
        raise DistillError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    recorded = metadata.get("data_split") or {}
    method = recorded.get("method")
    names = np.asarray(structure_molecules, dtype=object)
    if method == "structure":
        if data_hash is None or f"sha256:{data_hash}" != metadata.get("training_data_hash"):
            raise DistillError(
                "this student was trained with a random split by structure, which is defined only on its own "
                "training file (hash mismatch); evaluate with --split all, or on a dataset of other molecules"
            )
        val = set(recorded.get("validation_indices", []))
        test = set(recorded.get("test_indices", []))
        if split == "train":
            idx = [i for i in range(n) if i not in val and i not in test]
        else:
            idx = sorted(val if split == "validation" else test)
        return np.asarray(idx, dtype=np.int64), "student metadata (structure split)"
    if method == "molecule":
        wanted = set(recorded.get(f"{split}_molecules", []))
        source = "student metadata (molecule split)"
    else:
        from openmm_distill.systems.catalog import molecules

        wanted = {e.name for e in molecules(split=split)}
        source = "molecule catalog"
    idx = np.flatnonzero(np.array([m in wanted for m in names], dtype=bool))
    if idx.size == 0:
        present = sorted(set(structure_molecules))
        raise DistillError(
            f"no structure of the dataset belongs to the {split} split ({source}); the dataset holds "
            f"{', '.join(present[:8])}{'...' if len(present) > 8 else ''}; use --split all"
        )
    return idx, source


def predict_compiled(module, atomic_numbers: np.ndarray, positions_angstrom: np.ndarray,
                     box_angstrom: Optional[np.ndarray] = None) -> tuple:
    """Energy (eV) and forces (eV/Angstrom, [N, 3]) of one structure from a compiled student.

    The module is called with nm and returns kJ/mol, as inside OpenMM.
    """
    module.set_atoms(torch.as_tensor(np.asarray(atomic_numbers, dtype=np.int64)), None)
    pos_nm = torch.tensor(np.asarray(positions_angstrom, dtype=np.float64) * ANGSTROM_TO_NM, requires_grad=True)
    box_nm = None if box_angstrom is None else torch.tensor(np.asarray(box_angstrom, dtype=np.float64) * ANGSTROM_TO_NM)
    energy_kj = module(pos_nm, box_nm)
    (grad,) = torch.autograd.grad(energy_kj, pos_nm)
    energy_ev = float(energy_kj.detach()) / EV_TO_KJ_PER_MOL
    forces = (-grad.detach().to(torch.float64) / EV_PER_ANGSTROM_TO_KJ_PER_MOL_PER_NM).numpy()
    return energy_ev, forces


def evaluate_compiled(student: str, data: str, *, split: str = "all", preset: Optional[str] = None,
                      max_structures: Optional[int] = None, min_force: float = 0.05,
                      progress: bool = False) -> EvaluationReport:
    """Accuracy of a compiled student on a dataset (or one split of it).

    Parameters
    ----------
    student : str
        Compiled TorchScript student (``openmm-distill compile`` or the trainer's ``student.pt``).
    data : str
        HDF5 dataset with teacher labels (eV, eV/Angstrom, Angstrom).
    split : {"all", "train", "validation", "test"}
    preset : str, optional
        Targets to check; default: the preset recorded in the student.
    max_structures : int, optional
        Evaluate only the first this-many selected structures (quick checks).
    min_force : float
        Teacher force norm (eV/Angstrom) below which atoms are left out of the angular error.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    EvaluationReport
    """
    from openmm_distill.export import load_compiled
    from openmm_distill.export.student import resolve_student_path
    from openmm_distill.training.datasets import dataset_sha256, open_labelled

    # A shipped student's name works here as everywhere else (openmm-distill evaluate --student tiny).
    module, metadata = load_compiled(resolve_student_path(student))
    with open_labelled(data) as labelled:
        structure_molecules = labelled.structure_molecule()
        data_hash = dataset_sha256(data) if split != "all" else None
        idx, source = select_structures(structure_molecules, split, metadata, data_hash)
        if max_structures is not None:
            idx = idx[:max_structures]
        acc = MetricAccumulator(min_force)
        from tqdm.auto import tqdm

        for i in tqdm(idx, disable=not progress, desc="evaluate", leave=False):
            s = labelled[int(i)]
            energy, forces = predict_compiled(module, s.atomic_numbers, s.positions, s.box)
            acc.update(torch.tensor([energy]), torch.tensor([s.energy]), torch.tensor([s.n_atoms]),
                       torch.from_numpy(forces), torch.from_numpy(np.asarray(s.forces)))
    metrics = {k: v for k, v in acc.compute().items() if k in METRIC_NAMES}
    preset = preset or metadata.get("preset")
    return EvaluationReport(
        student=str(student), data=str(data), preset=preset, split=split,
        split_source=source, n_structures=int(len(idx)),
        molecules=sorted({structure_molecules[int(i)] for i in idx}), metrics=metrics,
        targets=check_targets(metrics, preset),
    )
