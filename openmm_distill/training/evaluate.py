"""Evaluate a compiled student against the teacher labels of a dataset.

The student is run exactly as OpenMM runs it, through the package's one
evaluation loop (:func:`openmm_distill.export.predict.predict_structures`):
what is measured is the deployed file, dtype and unit conversions included,
not the training checkpoint.

Which structures: all of them, or one split. For ``--split`` the split the
student was trained with is used when its metadata records one (molecule
names for the ``catalog``/``molecule`` splits; structure indices for the
``structure`` split, only on the very same dataset); otherwise the molecule
catalog's split (``openmm_distill/systems/data/molecules.csv``) by molecule name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from openmm_distill.errors import DistillError
from openmm_distill.metrics import DEFAULT_MIN_FORCE, METRIC_NAMES, METRIC_UNITS, MetricAccumulator
from openmm_distill.targets import check_targets
from openmm_distill.teachers.registry import recorded_teacher

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
        Per metric: value, target, passed (see :func:`openmm_distill.targets.check_targets`).
    molecule_smiles : dict
        Molecule name -> SMILES as recorded in the dataset.
    accumulators : dict
        Molecule name -> its :class:`~openmm_distill.metrics.MetricAccumulator` (pooled by group for coverage).
    kind_accumulators : dict
        Kind of geometry (the sampling ``method`` in each structure's provenance: ``md``, ``conformer``,
        ``normal_mode``, ``random``, ``contact``, ``student_md``...; ``unrecorded`` without one) -> its
        accumulator.
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
    molecule_smiles: Dict[str, str] = field(default_factory=dict)
    accumulators: Dict[str, MetricAccumulator] = field(default_factory=dict, repr=False)
    kind_accumulators: Dict[str, MetricAccumulator] = field(default_factory=dict, repr=False)

    def per_molecule(self) -> Dict[str, Dict[str, float]]:
        """Metrics of each molecule (same names and units as ``metrics``), worst force R^2 first."""
        rows = {name: _metrics_row(acc) for name, acc in self.accumulators.items()}
        return dict(sorted(rows.items(), key=lambda item: item[1]["force_r2"]))

    def per_kind(self) -> Dict[str, Dict[str, float]]:
        """Metrics of each kind of geometry (see ``kind_accumulators``), most structures first.

        On a student's own training file beside new molecules this tells capacity from coverage: errors
        as large on the geometries it was trained on as on new ones mean a bigger student (or longer
        training), not more data, is what would help.
        """
        rows = {kind: _metrics_row(acc) for kind, acc in self.kind_accumulators.items()}
        return dict(sorted(rows.items(), key=lambda item: (-item[1]["n_structures"], item[0])))

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
            "passed": self.passed, "per_molecule": self.per_molecule(), "per_kind": self.per_kind(),
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


def _metrics_row(acc: MetricAccumulator) -> Dict[str, float]:
    """The reported metrics of one group of structures, with its structure count."""
    return {k: v for k, v in acc.compute().items() if k in METRIC_NAMES + ("n_structures",)}


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


def evaluate_compiled(student: str, data: str, *, split: str = "all", preset: Optional[str] = None,
                      max_structures: Optional[int] = None, min_force: float = DEFAULT_MIN_FORCE,
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
        Evaluate a seeded random subset of this many of the selected structures (quick checks that
        still span the whole file; the same subset every time).
    min_force : float
        Teacher force norm (eV/Angstrom) below which atoms are left out of the angular error.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    EvaluationReport
    """
    from openmm_distill.export.predict import CompiledPredictor, predict_structures
    from openmm_distill.training.datasets import dataset_sha256, limit_structures, open_labelled

    # A shipped student's name works here as everywhere else (openmm-distill evaluate --student tiny).
    predictor = CompiledPredictor(student)
    metadata = predictor.student.metadata
    with open_labelled(data) as labelled:
        structure_molecules = labelled.structure_molecule()
        data_hash = dataset_sha256(data) if split != "all" else None
        idx, source = select_structures(structure_molecules, split, metadata, data_hash)
        idx = limit_structures(idx, max_structures, seed=0)
        structures = [labelled[int(i)] for i in idx]
    predictions = predict_structures(predictor, structures, keep_going=False, progress=progress, desc="evaluate")
    # One accumulator per molecule; the whole set's metrics pool them (per-molecule and per-group reports).
    per_molecule: Dict[str, MetricAccumulator] = {}
    per_kind: Dict[str, MetricAccumulator] = {}
    smiles: Dict[str, str] = {}
    for s, energy, forces in zip(structures, predictions.energies, predictions.forces):
        values = (torch.tensor([energy]), torch.tensor([s.energy]), torch.tensor([s.n_atoms]),
                  torch.from_numpy(forces), torch.from_numpy(np.asarray(s.forces)))
        per_molecule.setdefault(s.molecule, MetricAccumulator(min_force)).update(*values)
        per_kind.setdefault(geometry_kind(s.provenance), MetricAccumulator(min_force)).update(*values)
        smiles.setdefault(s.molecule, s.smiles)
    acc = MetricAccumulator(min_force)
    for molecule_acc in per_molecule.values():
        acc.merge(molecule_acc)
    metrics = {k: v for k, v in acc.compute().items() if k in METRIC_NAMES}
    preset = preset or metadata.get("preset")
    return EvaluationReport(
        student=str(student), data=str(data), preset=preset, split=split,
        split_source=source, n_structures=int(len(idx)),
        molecules=sorted({structure_molecules[int(i)] for i in idx}), metrics=metrics,
        targets=check_targets(metrics, preset, recorded_teacher(metadata.get("teacher"))[0]), molecule_smiles=smiles,
        accumulators=per_molecule, kind_accumulators=per_kind,
    )


def geometry_kind(provenance: Optional[Dict[str, Any]]) -> str:
    """How a structure was made, from its provenance: the sampling ``method`` (``unrecorded`` without one)."""
    method = (provenance or {}).get("method")
    return str(method) if method else "unrecorded"
