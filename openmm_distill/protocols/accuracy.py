"""Accuracy: a student's energies and forces against its teacher.

Reference data come from either

* a dataset file (HDF5 written by :mod:`openmm_distill.data`), whose labels are
  the teacher's, or
* fresh geometries of chosen systems: RDKit conformers (ETKDG + MMFF, explicit
  hydrogens) of molecules with a SMILES, or the given structure for files and
  boxes, each randomly displaced, and labelled live by the teacher.

The student is evaluated through its ASE calculator
(:class:`openmm_distill.ase_calculator.StudentCalculator`), which runs the same
compiled file as OpenMM. Units: eV, eV/Angstrom, Angstrom; per-atom energies
in meV/atom.
"""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from openmm_distill.errors import ConfigError, DistillError
from openmm_distill.protocols import environment, openmm_setup, output
from openmm_distill.protocols.accuracy_metrics import (
    DEFAULT_MIN_FORCE,
    angular_errors_deg,
    energy_metrics,
    force_metrics,
)
from openmm_distill.protocols.output import ProtocolOutput
from openmm_distill.protocols.plots import plot_error_histograms, plot_parity
from openmm_distill.systems.resolve import (
    MolecularSystem,
    resolve_system,
    split_list,
    system_specs,
)
from openmm_distill.targets import check_targets
from openmm_distill.units import MEV_PER_EV


@dataclass
class AccuracySettings:
    """Settings of the accuracy protocol.

    Attributes
    ----------
    n_conformers : int
        RDKit conformers per molecule with a SMILES (fewer may come back after RMSD pruning).
    n_displacements : int
        Randomly displaced copies per conformer (the conformer itself is also evaluated); a
        molecule always gets ``n_conformers * (1 + n_displacements)`` structures, with more
        displacements when RDKit returns fewer distinct conformers.
    displacement_sigma_angstrom : float
        Standard deviation of the Gaussian displacement of every coordinate, Angstrom.
    max_structures : int or None
        Cap on structures taken from a dataset file (evenly spaced), or per system when sampling.
    min_force : float
        Atoms whose teacher force is smaller (eV/Angstrom) are left out of angular errors.
    seed : int
    """

    n_conformers: int = 3
    n_displacements: int = 7
    displacement_sigma_angstrom: float = 0.05
    max_structures: Optional[int] = None
    min_force: float = DEFAULT_MIN_FORCE
    seed: int = 0

    @classmethod
    def quick(cls, **overrides) -> "AccuracySettings":
        """24 structures per molecule (3 conformers x (1 + 7 displaced)); at most 200 from a dataset."""
        return replace(cls(max_structures=200), **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def full(cls, **overrides) -> "AccuracySettings":
        """200 structures per molecule (10 conformers x (1 + 19 displaced)); the whole dataset."""
        return replace(cls(n_conformers=10, n_displacements=19), **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class Sample:
    """One reference structure: geometry (Angstrom) and, once labelled, teacher energy (eV) and forces (eV/Angstrom)."""

    molecule: str
    atomic_numbers: np.ndarray
    positions: np.ndarray
    box: Optional[np.ndarray] = None
    energy: Optional[float] = None
    forces: Optional[np.ndarray] = None
    key: str = ""


def _rng(seed: int, name: str) -> np.random.Generator:
    # crc32, not hash(): Python's string hash changes between processes.
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def sample_geometries(system: Union[str, MolecularSystem], settings: AccuracySettings) -> List[Sample]:
    """Unlabelled geometries of one system: conformers (if it has a SMILES) and random displacements.

    Periodic systems and structure files without a SMILES use their given
    structure as the only "conformer".
    """
    molsys = resolve_system(system)
    rng = _rng(settings.seed, molsys.name)
    conformers: List[np.ndarray] = []
    numbers = molsys.atomic_numbers
    if molsys.smiles and not molsys.periodic:
        from openmm_distill.data.conformers import embed_conformers

        conf = embed_conformers(molsys.smiles, settings.n_conformers, seed=settings.seed)
        numbers = conf.atomic_numbers
        conformers = conf.positions
    if not conformers:
        conformers = [molsys.positions_angstrom]
    samples: List[Sample] = [Sample(molsys.name, numbers, np.array(x0), molsys.box_angstrom, key=f"{molsys.name}/c{c}/d0")
                             for c, x0 in enumerate(conformers)]
    # Small or rigid molecules return fewer conformers after RMSD pruning; more
    # displacements (round robin over the conformers) keep the sample size fixed.
    target = max(1, settings.n_conformers) * (1 + settings.n_displacements)
    for d in range(target - len(samples)):
        c = d % len(conformers)
        x = conformers[c] + rng.normal(0.0, settings.displacement_sigma_angstrom, size=conformers[c].shape)
        samples.append(Sample(molsys.name, numbers, x, molsys.box_angstrom,
                              key=f"{molsys.name}/c{c}/d{d // len(conformers) + 1}"))
    if settings.max_structures is not None:
        samples = samples[: settings.max_structures]
    return samples


def label_samples(samples: Sequence[Sample], teacher, show_progress: bool = True, desc: str = "teacher") -> tuple:
    """Label samples with ``teacher.compute``; returns ``(labelled, failures)`` (failures: list of (key, reason))."""
    from openmm_distill.errors import TeacherError

    labelled, failures = [], []
    for s in output.progress(samples, desc=desc, enabled=show_progress, unit_name="structure"):
        try:
            r = teacher.compute(s.atomic_numbers, s.positions, s.box)
        except TeacherError as exc:
            failures.append((s.key, str(exc)))
            continue
        labelled.append(replace(s, energy=float(r.energy), forces=np.asarray(r.forces, dtype=np.float64)))
    return labelled, failures


def samples_from_dataset(path: Union[str, Path], molecules: Optional[Sequence[str]] = None,
                         max_structures: Optional[int] = None) -> tuple:
    """Labelled samples from an HDF5 dataset; returns ``(samples, teacher description)``.

    Parameters
    ----------
    molecules : sequence of str, optional
        Keep only these molecules.
    max_structures : int, optional
        Evenly spaced subset of at most this many structures (deterministic).
    """
    from openmm_distill.data.store import open_dataset

    with open_dataset(str(path)) as ds:
        names = ds.structure_molecule()
        index = np.arange(len(ds))
        if molecules:
            wanted = set(molecules)
            index = index[[n in wanted for n in names]]
            if not index.size:
                raise ConfigError(f"no structures of {sorted(wanted)} in {path} (it has {sorted(set(names))[:20]})")
        if max_structures is not None and index.size > max_structures:
            index = index[np.unique(np.linspace(0, index.size - 1, int(max_structures)).round().astype(int))]
        samples = []
        for i in index:
            s = ds[int(i)]
            samples.append(Sample(s.molecule, np.asarray(s.atomic_numbers), np.asarray(s.positions),
                                  None if s.box is None else np.asarray(s.box), float(s.energy),
                                  np.asarray(s.forces), s.key))
        teacher = ds.metadata.get("teacher", {})
    return samples, teacher


def predict(samples: Sequence[Sample], calculator, show_progress: bool = True) -> tuple:
    """Student energies and forces via an ASE calculator.

    Returns
    -------
    (energies, forces, kept, failures)
        Energies (eV, shape (S',)) and forces (list of (N_s, 3), eV/Angstrom)
        of the samples the student could evaluate, those samples, and
        ``(key, reason)`` for the others (unsupported element, box too small).
    """
    from openmm_distill.export.predict import predict_structures

    def predict_one(s: Sample) -> tuple:
        from ase import Atoms

        atoms = Atoms(numbers=s.atomic_numbers, positions=s.positions)
        if s.box is not None:
            atoms.cell = s.box
            atoms.pbc = True
        atoms.calc = calculator
        return float(atoms.get_potential_energy()), np.array(atoms.get_forces(), dtype=np.float64)

    result = predict_structures(predict_one, samples, progress=show_progress, desc="student")
    failures = [(samples[i].key or samples[i].molecule, reason) for i, reason in result.failures]
    return result.energies, result.forces, [samples[i] for i in result.kept], failures


def evaluate(samples: Sequence[Sample], pred_energy: np.ndarray, pred_forces: Sequence[np.ndarray],
             min_force: float = DEFAULT_MIN_FORCE) -> Dict[str, Any]:
    """Overall and per-molecule force and energy metrics (see :mod:`openmm_distill.protocols.accuracy_metrics`)."""
    ref_f = np.concatenate([s.forces for s in samples])
    pred_f = np.concatenate(pred_forces)
    z = np.concatenate([s.atomic_numbers for s in samples])
    ref_e = np.array([s.energy for s in samples])
    n_atoms = np.array([len(s.atomic_numbers) for s in samples])
    groups = [s.molecule for s in samples]
    out: Dict[str, Any] = {"forces": force_metrics(pred_f, ref_f, z, min_force),
                           "energy": energy_metrics(pred_energy, ref_e, n_atoms, groups),
                           "n_structures": len(samples), "n_atoms_total": int(n_atoms.sum()),
                           "per_molecule": {}}
    atom_group = np.repeat(np.array(groups, dtype=object), n_atoms)
    for name in dict.fromkeys(groups):
        mask_s = np.array([g == name for g in groups])
        mask_a = atom_group == name
        out["per_molecule"][name] = {
            "n_structures": int(mask_s.sum()),
            "n_atoms": int(n_atoms[mask_s][0]),
            "forces": force_metrics(pred_f[mask_a], ref_f[mask_a], z[mask_a], min_force),
            "energy": energy_metrics(pred_energy[mask_s], ref_e[mask_s], n_atoms[mask_s], [name] * int(mask_s.sum())),
        }
    return out


def preset_targets(metrics: Dict[str, Any], preset: Optional[str], teacher: str = "gfn2-xtb") -> Dict[str, Any]:
    """The training targets of the student's preset and teacher (:mod:`openmm_distill.targets`), checked
    against these metrics: metric -> ``{"label", "value", "target", "kind", "passed"}`` (empty without a preset)."""
    if not preset:
        return {}
    f, e = metrics["forces"], metrics["energy"]
    return check_targets({"force_r2": f["r2"], "force_mae": f["mae"], "angle_deg": f["angle_deg"],
                          "energy_mae_mev_per_atom": e["mae_mev_per_atom"]}, preset, teacher)


@dataclass
class AccuracyData:
    """Arrays behind the metrics (for plots and ``accuracy_samples.npz``)."""

    samples: List[Sample]
    pred_energy: np.ndarray
    pred_forces: List[np.ndarray]
    failures: List[tuple] = field(default_factory=list)


def run_accuracy(student, systems: Union[None, str, Sequence[Any]] = None,
                 settings: Optional[AccuracySettings] = None, *, dataset: Union[None, str, Path] = None,
                 teacher: Union[None, str, Any] = None, teacher_weights: Optional[str] = None,
                 show_progress: bool = True) -> tuple:
    """Evaluate a student against its teacher; returns ``(metrics dict, AccuracyData, teacher description)``.

    Parameters
    ----------
    student : student name, compiled file, CompiledStudent, or an ASE calculator
    systems : systems to sample (ignored names are an error); with ``dataset``,
        an optional filter on its molecule names
    dataset : path, optional
        HDF5 dataset with teacher labels; no teacher is run then.
    teacher : str or Teacher, optional
        Default: the teacher in the student's metadata, else ``"gfn2-xtb"``.
    teacher_weights : str, optional
        Orb-v2 checkpoint.
    """
    from ase.calculators.calculator import Calculator

    from openmm_distill.ase_calculator import StudentCalculator
    from openmm_distill.protocols.teachers import default_teacher_name, student_teacher

    settings = settings or AccuracySettings.quick()
    if isinstance(student, Calculator):
        calculator, meta = student, {}
    else:
        from openmm_distill.cpu_runtime import keep_freed_memory
        from openmm_distill.export.student import load_student

        keep_freed_memory()  # a protocol calls the student many times: keep its freed blocks for reuse
        loaded = load_student(student)
        calculator, meta = StudentCalculator(loaded), loaded.metadata
    failures: List[tuple] = []
    if dataset is not None:
        molecules = [str(s) for s in split_list(systems)] or None
        samples, teacher_info = samples_from_dataset(dataset, molecules, settings.max_structures)
        teacher_info = {**teacher_info, "source": f"labels from {dataset}"}
    else:
        # The student's own teacher with the model it recorded, unless the caller names another.
        teacher_obj, label = student_teacher(teacher, meta, teacher_weights)
        teacher_info = {**teacher_obj.describe(), "label": label, "source": "labelled live"}
        samples = []
        for spec in system_specs(systems):
            unlabelled = sample_geometries(spec, settings)
            labelled, failed = label_samples(unlabelled, teacher_obj, show_progress,
                                             desc=f"{unlabelled[0].molecule}: {label}" if unlabelled else label)
            samples += labelled
            failures += failed
    # Structures the student cannot evaluate (unknown element, box narrower than twice the
    # cutoff) are reported as failures instead of ending the run.
    pred_e, pred_f, kept, failed = predict(samples, calculator, show_progress)
    failures += failed
    if not kept:
        raise DistillError("no structure could be evaluated: " + "; ".join(r for _, r in failures[:3]))
    metrics = evaluate(kept, pred_e, pred_f, settings.min_force)
    metrics["failures"] = [{"key": k, "reason": r} for k, r in failures]
    metrics["preset_targets"] = preset_targets(metrics, meta.get("preset"), default_teacher_name(meta))
    return metrics, AccuracyData(kept, pred_e, pred_f, failures), teacher_info


def summarize_accuracy(metrics: Dict[str, Any], teacher_info: Dict[str, Any], model_name: str,
                       settings: AccuracySettings, dataset: Optional[str] = None) -> str:
    """Markdown summary: overall table, per-molecule table, per-element MAE."""
    f, e = metrics["forces"], metrics["energy"]
    teacher_name = teacher_info.get("label") or teacher_info.get("name") or "teacher"
    source = (f"structures from `{dataset}`" if dataset else
              f"RDKit conformers (up to {settings.n_conformers} per molecule) each with "
              f"{settings.n_displacements} random displacements (σ = {settings.displacement_sigma_angstrom:g} Å), "
              f"labelled live by {teacher_name}")
    lines = [
        f"# Accuracy vs teacher: {model_name}", "",
        f"{metrics['n_structures']} structures ({metrics['n_atoms_total']} atoms): {source}. "
        f"Angular errors leave out atoms with a teacher force below {settings.min_force:g} eV/Å. "
        "Energies: absolute (students learn the teacher's absolute energies) and after removing each "
        "molecule's mean error (a constant offset changes no force).", "",
        output.markdown_table(
            ["force R²", "force RMSE (eV/Å)", "force MAE (eV/Å)", "angular error (°)",
             "abs. component error p50/p90/p95/max (eV/Å)",
             "per-atom error norm p50/p90/p95/max (eV/Å)", "energy MAE (meV/atom)", "offset-corrected (meV/atom)"],
            [[f["r2"], f["rmse"], f["mae"], f["angle_deg"],
              " / ".join(output.fmt(f["component_abs_error"][k]) for k in ("p50", "p90", "p95", "max")),
              " / ".join(output.fmt(f["atom_error_norm"][k]) for k in ("p50", "p90", "p95", "max")),
              e["mae_mev_per_atom"], e["offset_corrected_mae_mev_per_atom"]]]),
        "", "## Per molecule", "",
        output.markdown_table(
            ["molecule", "structures", "atoms", "force R²", "force RMSE", "angle (°)", "energy MAE (meV/atom)",
             "offset-corr. (meV/atom)"],
            [[name, m["n_structures"], m["n_atoms"], m["forces"]["r2"], m["forces"]["rmse"], m["forces"]["angle_deg"],
              m["energy"]["mae_mev_per_atom"], m["energy"]["offset_corrected_mae_mev_per_atom"]]
             for name, m in metrics["per_molecule"].items()]),
        "", "## Force MAE per element (eV/Å)", "",
        output.markdown_table(["element", "atoms", "MAE"],
                              [[el, f.get("per_element_count", {}).get(el), v]
                               for el, v in f.get("per_element_mae", {}).items()]),
    ]
    targets = {k: v for k, v in (metrics.get("preset_targets") or {}).items() if v.get("target") is not None}
    if targets:
        missed = [f"{v['label']} {output.fmt(v['value'])} (target {'≥' if v['kind'] == 'min' else '≤'} "
                  f"{v['target']:g})" for v in targets.values() if not v["passed"]]
        lines += ["", "Training targets of the preset (`openmm_distill.targets`): "
                  + ("all met." if not missed else "missed: " + "; ".join(missed) + ".")]
    if metrics.get("failures"):
        lines += ["", f"{len(metrics['failures'])} structure(s) could not be evaluated (first: "
                      f"{metrics['failures'][0]['reason']})."]
    return "\n".join(lines)


def run_accuracy_protocol(student, systems: Union[None, str, Sequence[Any]] = None,
                          settings: Optional[AccuracySettings] = None, output_dir: Union[None, str, Path] = None, *,
                          dataset: Union[None, str, Path] = None, teacher: Union[None, str, Any] = None,
                          teacher_weights: Optional[str] = None, show_progress: bool = True) -> ProtocolOutput:
    """Run :func:`run_accuracy` and write ``accuracy.json``, parity and error-histogram PNGs,
    ``accuracy_samples.npz`` (the arrays) and ``summary.md``."""
    settings = settings or AccuracySettings.quick()
    output_dir = Path(output_dir) if output_dir is not None else output.default_output_dir("accuracy", student)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics, data, teacher_info = run_accuracy(student, systems, settings, dataset=dataset, teacher=teacher,
                                               teacher_weights=teacher_weights, show_progress=show_progress)
    name = openmm_setup.model_label(student) if not hasattr(student, "calculate") else type(student).__name__
    files = _write_accuracy_files(output_dir, data, settings, name)
    payload = {"protocol": "accuracy",
               "model": openmm_setup.student_info(student) if not hasattr(student, "calculate") else {"name": name},
               "settings": asdict(settings), "dataset": None if dataset is None else str(dataset),
               "teacher": teacher_info, "environment": environment.environment_info(), "metrics": metrics}
    return output.finish("accuracy", output_dir, payload,
                         summarize_accuracy(metrics, teacher_info, name, settings,
                                            None if dataset is None else str(dataset)), files)


def _write_accuracy_files(output_dir: Path, data: AccuracyData, settings: AccuracySettings, name: str) -> List[Path]:
    samples = data.samples
    ref_f = np.concatenate([s.forces for s in samples])
    pred_f = np.concatenate(data.pred_forces)
    z = np.concatenate([s.atomic_numbers for s in samples])
    n = np.array([len(s.atomic_numbers) for s in samples])
    ref_e = np.array([s.energy for s in samples])
    groups = np.array([s.molecule for s in samples], dtype=object)
    # Relative energies: each molecule's mean removed, for teacher and student separately.
    ref_rel, pred_rel = np.empty_like(ref_e), np.empty_like(ref_e)
    for g in dict.fromkeys(groups.tolist()):
        m = groups == g
        ref_rel[m] = (ref_e[m] - ref_e[m].mean()) / n[m] * MEV_PER_EV
        pred_rel[m] = (data.pred_energy[m] - data.pred_energy[m].mean()) / n[m] * MEV_PER_EV
    files = [
        plot_parity(output_dir / "accuracy_parity.png", ref_f, pred_f, ref_e / n, data.pred_energy / n, ref_rel,
                    pred_rel, z, title=f"{name} vs teacher"),
        plot_error_histograms(output_dir / "accuracy_errors.png", (pred_f - ref_f).ravel(),
                              np.linalg.norm(pred_f - ref_f, axis=1),
                              angular_errors_deg(pred_f, ref_f, settings.min_force), title=f"{name}: force errors"),
    ]
    npz = output_dir / "accuracy_samples.npz"
    np.savez_compressed(npz, atomic_numbers=z, n_atoms=n, molecule=groups.astype(str),
                        teacher_energy_ev=ref_e, student_energy_ev=data.pred_energy,
                        teacher_forces_ev_per_angstrom=ref_f, student_forces_ev_per_angstrom=pred_f,
                        positions_angstrom=np.concatenate([s.positions for s in samples]))
    files.append(npz)
    return files
