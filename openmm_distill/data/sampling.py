"""Geometry sampling for one molecule: conformers plus off-equilibrium structures.

For each molecule (SMILES), :func:`sample_molecule` makes, per ETKDG conformer
(explicit hydrogens, MMFF-relaxed, fixed seed):

* the conformer itself;
* ``random_samples`` random Gaussian displacements (``random_sigma`` Angstrom);
* ``normal_mode_samples`` Boltzmann normal-mode displacements at
  ``normal_mode_temperature_K``;
* ``contact_samples`` close contacts: a random 1-3 pair with a hydrogen (two
  atoms bonded to a common neighbour, e.g. the hydrogens of an NH2 group)
  pushed together to ``contact_scale`` (a random factor in that range) of its
  distance, where thermal sampling never goes;
* for the first ``md_conformers`` conformers, ``md_snapshots`` frames of
  Langevin MD at each of ``md_temperatures_K``, driven by the teacher
  (default) or by MMFF94 (``md_driver="mmff"``, see :mod:`.md_sampling`).

Normal-mode Hessian. The default source is MMFF94 (central differences of
RDKit's analytic gradient at the MMFF-relaxed conformer): it costs about a
millisecond, where the teacher's finite-difference Hessian costs 6N teacher
calls per conformer (~1 s for 20 atoms with GFN2-xTB, minutes with a large
network). The modes only choose *directions and amplitudes* of displacement;
every sampled geometry is still labelled by the teacher, so a less accurate
Hessian costs sampling efficiency, not label accuracy. ``"teacher"`` is
available when the teacher's own curvature matters (or MMFF lacks parameters,
where it is used automatically if a teacher is given).

Reproducibility. Every random stream is seeded from ``(seed, crc32(name),
conformer, method)``: the same molecule gives the same geometries and keys in
any process, shard or order, and changing one method's count does not change
the others' samples. Each geometry's ``provenance`` records how it was made.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from openmm_distill.config_loader import from_dict, read_yaml, to_dict
from openmm_distill.data.conformers import embed_conformers, mmff_hessian
from openmm_distill.data.displacements import (
    close_contact_displacement,
    is_linear,
    normal_mode_displacement,
    normal_modes,
    one_three_pairs,
    random_displacement,
    teacher_hessian,
)
from openmm_distill.data.md_sampling import MMFFCalculator, langevin_snapshots
from openmm_distill.data.records import Failure, Geometry
from openmm_distill.errors import ConfigError, TeacherError

HESSIAN_SOURCES = ("mmff", "teacher")
MD_DRIVERS = ("teacher", "mmff")
_METHOD_CODES = {"conformer": 0, "random": 1, "normal_mode": 2, "md": 3, "contact": 4}


def _check_int(name: str, value: Any, minimum: int, maximum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"sampling.{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ConfigError(f"sampling.{name}={value!r} is out of range; allowed: {allowed}")
    return int(value)


def _check_float(name: str, value: Any, low: float, high: float, *, low_inclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"sampling.{name} must be a number, got {value!r}")
    value = float(value)
    ok = (value >= low if low_inclusive else value > low) and value <= high
    if not ok or not np.isfinite(value):
        bracket = "[" if low_inclusive else "("
        raise ConfigError(f"sampling.{name}={value!r} is out of range; allowed: {bracket}{low}, {high}]")
    return value


@dataclass(frozen=True)
class SamplingConfig:
    """How geometries are sampled for each molecule.

    Counts are per conformer (MD: per conformer and temperature). A count of 0
    switches a method off. All fields are validated on construction; errors
    name the bad value and the allowed range.

    Attributes
    ----------
    n_conformers : int
        ETKDG conformers requested (>= 1; RMSD pruning may return fewer).
    optimize_conformers : bool
        MMFF94-relax conformers (UFF when MMFF lacks parameters).
    include_conformers : bool
        Label the conformers themselves.
    random_samples : int
        Gaussian displacements per conformer.
    random_sigma : float
        Their standard deviation per coordinate, Angstrom (0, 1].
    normal_mode_samples : int
        Normal-mode displacements per conformer.
    normal_mode_temperature_K : float
        Boltzmann temperature of the mode amplitudes, Kelvin (0, 5000].
    normal_mode_hessian : str
        ``"mmff"`` (default) or ``"teacher"``; see the module docstring.
    normal_mode_max_displacement : float
        Cap on any atom's displacement, Angstrom (0, 2].
    contact_samples : int
        Close-contact geometries per conformer (default 0).
    contact_scale : tuple of float
        Range of the factor applied to the pair's distance, each in (0, 1].
    md_temperatures_K : tuple of float
        Langevin MD temperatures, Kelvin (each in (0, 5000]).
    md_driver : str
        ``"teacher"`` (default: the teacher drives the MD, snapshots sample its
        ensemble and come labelled; ``md_interval_steps`` teacher calls per
        snapshot) or ``"mmff"`` (MMFF94 drives, the teacher labels each
        snapshot once: much cheaper, MMFF's ensemble).
    md_conformers : int
        MD runs start from the first ``md_conformers`` conformers.
    md_snapshots : int
        Snapshots per run (per conformer and temperature).
    md_interval_steps, md_equilibration_steps : int
        MD steps between snapshots / before the first interval.
    md_timestep_fs : float
        Femtoseconds (0, 5].
    md_friction_per_fs : float
        Langevin friction, 1/fs (0, 10].
    seed : int
        Master seed (>= 0).
    """

    n_conformers: int = 4
    optimize_conformers: bool = True
    include_conformers: bool = True
    random_samples: int = 2
    random_sigma: float = 0.03
    normal_mode_samples: int = 2
    normal_mode_temperature_K: float = 500.0
    normal_mode_hessian: str = "mmff"
    normal_mode_max_displacement: float = 0.5
    contact_samples: int = 0
    contact_scale: Tuple[float, float] = (0.6, 0.9)
    md_temperatures_K: Tuple[float, ...] = (300.0, 500.0, 800.0)
    md_driver: str = "teacher"
    md_conformers: int = 1
    md_snapshots: int = 4
    md_interval_steps: int = 5
    md_equilibration_steps: int = 5
    md_timestep_fs: float = 1.0
    md_friction_per_fs: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("n_conformers", _check_int("n_conformers", self.n_conformers, 1, 1000))
        for name in ("optimize_conformers", "include_conformers"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"sampling.{name} must be true or false, got {getattr(self, name)!r}")
            set_(name, bool(getattr(self, name)))
        for name in ("random_samples", "normal_mode_samples", "contact_samples", "md_conformers", "md_snapshots",
                     "md_equilibration_steps"):
            set_(name, _check_int(name, getattr(self, name), 0))
        set_("md_interval_steps", _check_int("md_interval_steps", self.md_interval_steps, 1))
        set_("seed", _check_int("seed", self.seed, 0))
        set_("random_sigma", _check_float("random_sigma", self.random_sigma, 0.0, 1.0))
        set_("normal_mode_temperature_K", _check_float("normal_mode_temperature_K", self.normal_mode_temperature_K, 0.0, 5000.0))
        set_(
            "normal_mode_max_displacement",
            _check_float("normal_mode_max_displacement", self.normal_mode_max_displacement, 0.0, 2.0),
        )
        set_("md_timestep_fs", _check_float("md_timestep_fs", self.md_timestep_fs, 0.0, 5.0))
        set_("md_friction_per_fs", _check_float("md_friction_per_fs", self.md_friction_per_fs, 0.0, 10.0))
        if self.normal_mode_hessian not in HESSIAN_SOURCES:
            raise ConfigError(
                f"sampling.normal_mode_hessian={self.normal_mode_hessian!r} is not supported; "
                f"allowed: {', '.join(HESSIAN_SOURCES)}"
            )
        if self.md_driver not in MD_DRIVERS:
            raise ConfigError(f"sampling.md_driver={self.md_driver!r} is not supported; allowed: {', '.join(MD_DRIVERS)}")
        scale = self.contact_scale
        if not isinstance(scale, (list, tuple)) or len(scale) != 2:
            raise ConfigError(f"sampling.contact_scale must be two numbers [low, high], got {scale!r}")
        low, high = (_check_float("contact_scale", v, 0.0, 1.0) for v in scale)
        if low > high:
            raise ConfigError(f"sampling.contact_scale={list(scale)!r}: low must not exceed high")
        set_("contact_scale", (low, high))
        temps = self.md_temperatures_K
        if isinstance(temps, (int, float)):
            temps = (temps,)
        if not isinstance(temps, (list, tuple)):
            raise ConfigError(f"sampling.md_temperatures_K must be a list of temperatures, got {temps!r}")
        set_("md_temperatures_K", tuple(_check_float("md_temperatures_K", t, 0.0, 5000.0) for t in temps))
        if not (self.include_conformers or self.random_samples or self.normal_mode_samples or self.contact_samples
                or self.md_samples_per_run):
            raise ConfigError("sampling produces no geometries: enable conformers, random, normal-mode, contact or "
                              "MD samples")

    @property
    def md_samples_per_run(self) -> int:
        return self.md_snapshots if self.md_temperatures_K and self.md_conformers else 0

    @property
    def needs_teacher(self) -> bool:
        """Whether sampling itself calls the teacher (teacher-driven MD, or a teacher Hessian)."""
        return (bool(self.md_samples_per_run) and self.md_driver == "teacher") or (
            self.normal_mode_samples > 0 and self.normal_mode_hessian == "teacher"
        )

    def geometries_per_molecule(self) -> int:
        """Upper bound on geometries per molecule (fewer if conformers are pruned)."""
        per_conf = int(self.include_conformers) + self.random_samples + self.normal_mode_samples + self.contact_samples
        md = min(self.md_conformers, self.n_conformers) * len(self.md_temperatures_K) * self.md_snapshots
        return self.n_conformers * per_conf + md

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict (tuples as lists), as :meth:`from_dict` and YAML/JSON take it."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Optional[Dict[str, Any]]) -> "SamplingConfig":
        """Build from a mapping; unknown keys are errors that name the key and list the allowed ones."""
        data = dict(data or {})
        if isinstance(data.get("md_temperatures_K"), (int, float)):  # one temperature
            data["md_temperatures_K"] = [data["md_temperatures_K"]]
        return from_dict(cls, data, "sampling")

    @classmethod
    def from_yaml(cls, path: str) -> "SamplingConfig":
        """Read a YAML mapping (optionally under a top-level ``sampling:`` key)."""
        data = read_yaml(path, "sampling config")
        if set(data) == {"sampling"}:
            data = data["sampling"]
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "SamplingConfig":
        return self.from_dict({**self.to_dict(), **changes})


@dataclass
class SamplingResult:
    """Geometries of one molecule and what could not be sampled.

    Attributes
    ----------
    geometries : list of Geometry
    failures : list of Failure
        Keyed by the structure key or a prefix (``"<name>/c0/md/500K"``) when a
        whole run failed, or by the molecule name when nothing could be made.
    """

    geometries: List[Geometry] = field(default_factory=list)
    failures: List[Failure] = field(default_factory=list)


def molecule_seed(seed: int, name: str) -> int:
    """Deterministic 31-bit seed for one molecule (independent of process and order)."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**31 - 1)


def _rng(config: SamplingConfig, name: str, conformer: int, method: str, extra: int = 0) -> np.random.Generator:
    return np.random.default_rng(
        [config.seed, zlib.crc32(name.encode("utf-8")), conformer, _METHOD_CODES[method], extra]
    )


def sample_molecule(
    name: str,
    smiles: str,
    config: Optional[SamplingConfig] = None,
    teacher=None,
) -> SamplingResult:
    """Sample geometries of one molecule.

    Parameters
    ----------
    name : str
        Molecule name; prefix of every key (must not contain ``"/"``).
    smiles : str
    config : SamplingConfig, optional
        Defaults to ``SamplingConfig()``.
    teacher : openmm_distill.teachers.Teacher, optional
        Needed for MD and for a teacher Hessian (``config.needs_teacher``).

    Returns
    -------
    SamplingResult
        Geometries (positions in Angstrom) with keys ``<name>/c<j>/conformer``,
        ``<name>/c<j>/random/<k>``, ``<name>/c<j>/normal_mode/<k>``, ``<name>/c<j>/contact/<k>``,
        ``<name>/c<j>/md/<T>K/<k>``. MD geometries carry their teacher label.
        Teacher failures during MD or a teacher Hessian are returned as
        failures, not raised.

    Raises
    ------
    ConfigError
        Bad name, invalid SMILES, no embeddable conformer, or a teacher-requiring
        config without a teacher.
    """
    config = config or SamplingConfig()
    if not name or "/" in name:
        raise ConfigError(f"molecule name {name!r} must be non-empty and must not contain '/'")
    if config.needs_teacher and teacher is None:
        raise ConfigError("this sampling configuration runs the teacher (MD or teacher Hessian); pass a teacher")
    conf = embed_conformers(
        smiles, config.n_conformers, molecule_seed(config.seed, name), optimize=config.optimize_conformers
    )
    numbers = conf.atomic_numbers
    result = SamplingResult()

    def add(key: str, positions: np.ndarray, provenance: Dict[str, Any], energy=None, forces=None) -> None:
        base = {"seed": config.seed, "conformer_optimizer": conf.optimizer}
        result.geometries.append(
            Geometry(
                key=f"{name}/{key}",
                molecule=name,
                atomic_numbers=numbers.copy(),
                positions=np.asarray(positions, dtype=np.float64),
                charge=conf.charge,
                smiles=smiles,
                provenance={**base, **provenance},
                energy=energy,
                forces=forces,
            )
        )

    for j, (cid, x0) in enumerate(zip(conf.conformer_ids, conf.positions)):
        if config.include_conformers:
            add(f"c{j}/conformer", x0, {"method": "conformer", "conformer": j})
        if config.random_samples:
            rng = _rng(config, name, j, "random")
            for k in range(config.random_samples):
                add(
                    f"c{j}/random/{k}",
                    random_displacement(x0, config.random_sigma, rng),
                    {"method": "random", "conformer": j, "sample": k, "sigma_angstrom": config.random_sigma},
                )
        if config.normal_mode_samples:
            _normal_mode_samples(result, add, name, j, cid, x0, conf, config, teacher)
        if config.contact_samples:
            _contact_samples(add, name, j, x0, conf, config)
        if j < config.md_conformers and config.md_samples_per_run:
            driver, calculator = config.md_driver, None
            if driver == "mmff":
                try:
                    calculator = MMFFCalculator(conf.mol, cid)
                except ValueError:
                    # No MMFF parameters: let the teacher drive, if there is one.
                    driver = "teacher"
                    if teacher is None:
                        result.failures.append(Failure(f"{name}/c{j}/md", "MMFF has no parameters and no teacher was given"))
                        continue
            for t_index, temperature in enumerate(config.md_temperatures_K):
                tag = f"c{j}/md/{temperature:g}K"
                try:
                    frames = langevin_snapshots(
                        teacher,
                        numbers,
                        x0,
                        temperature_K=temperature,
                        n_snapshots=config.md_snapshots,
                        interval_steps=config.md_interval_steps,
                        equilibration_steps=config.md_equilibration_steps,
                        timestep_fs=config.md_timestep_fs,
                        friction_per_fs=config.md_friction_per_fs,
                        rng=_rng(config, name, j, "md", t_index),
                        charge=conf.charge,
                        calculator=calculator,
                    )
                except TeacherError as exc:
                    frames = getattr(exc, "snapshots", [])
                    result.failures.append(Failure(f"{name}/{tag}", f"MD from snapshot {len(frames)}: {exc}"))
                for k, frame in enumerate(frames):
                    add(
                        f"{tag}/{k}",
                        frame.positions,
                        {
                            "method": "md",
                            "conformer": j,
                            "sample": k,
                            "temperature_K": temperature,
                            "md_step": frame.step,
                            "timestep_fs": config.md_timestep_fs,
                            "friction_per_fs": config.md_friction_per_fs,
                            "md_driver": driver,
                        },
                        energy=frame.energy,
                        forces=frame.forces,
                    )
    return result


def _contact_samples(add, name, j, x0, conf, config) -> None:
    pairs = one_three_pairs([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in conf.mol.GetBonds()])
    # Pairs with a hydrogen only: light atoms are what hot MD pushes together; compressing a
    # heavy-atom angle this far costs tens of eV (forces ~100 eV/A), far beyond any dynamics.
    if len(pairs):
        pairs = pairs[(conf.atomic_numbers[pairs] == 1).any(axis=1)]
    if not len(pairs):
        return  # no 1-3 pair with a hydrogen
    rng = _rng(config, name, j, "contact")
    low, high = config.contact_scale
    for k in range(config.contact_samples):
        pair = pairs[rng.integers(len(pairs))]
        scale = float(rng.uniform(low, high))
        add(f"c{j}/contact/{k}", close_contact_displacement(x0, pair, scale, rng),
            {"method": "contact", "conformer": j, "sample": k, "pair": [int(pair[0]), int(pair[1])],
             "scale": round(scale, 6)})


def _normal_mode_samples(result, add, name, j, cid, x0, conf, config, teacher) -> None:
    source = config.normal_mode_hessian
    hessian = None
    if source == "mmff":
        hessian = mmff_hessian(conf.mol, cid)
        if hessian is None:
            if teacher is None:
                result.failures.append(
                    Failure(f"{name}/c{j}/normal_mode", "MMFF has no parameters for this molecule and no teacher was given")
                )
                return
            source = "teacher"
    if hessian is None:
        try:
            hessian = teacher_hessian(teacher, conf.atomic_numbers, x0, charge=conf.charge)
        except TeacherError as exc:
            result.failures.append(Failure(f"{name}/c{j}/normal_mode", f"teacher Hessian: {exc}"))
            return
    eigenvalues, modes = normal_modes(hessian, conf.atomic_numbers, linear=is_linear(x0))
    rng = _rng(config, name, j, "normal_mode")
    for k in range(config.normal_mode_samples):
        x = normal_mode_displacement(
            x0,
            eigenvalues,
            modes,
            config.normal_mode_temperature_K,
            rng,
            max_displacement=config.normal_mode_max_displacement,
        )
        add(
            f"c{j}/normal_mode/{k}",
            x,
            {
                "method": "normal_mode",
                "conformer": j,
                "sample": k,
                "temperature_K": config.normal_mode_temperature_K,
                "hessian": source,
            },
        )


def geometries_from_arrays(
    name: str,
    atomic_numbers: np.ndarray,
    positions: Sequence[np.ndarray],
    *,
    boxes: Optional[Sequence[Optional[np.ndarray]]] = None,
    charge: int = 0,
    smiles: str = "",
    source: str = "user",
) -> List[Geometry]:
    """Wrap user-supplied geometries (Angstrom) of one molecule for labelling as they are.

    Keys are ``<name>/given/<k>``; provenance is ``{"method": "given", "source": source, "sample": k}``.
    """
    if not name or "/" in name:
        raise ConfigError(f"molecule name {name!r} must be non-empty and must not contain '/'")
    boxes = list(boxes) if boxes is not None else [None] * len(positions)
    return [
        Geometry(
            key=f"{name}/given/{k}",
            molecule=name,
            atomic_numbers=np.asarray(atomic_numbers, dtype=np.int64),
            positions=np.asarray(x, dtype=np.float64),
            box=None if b is None else np.asarray(b, dtype=np.float64),
            charge=int(charge),
            smiles=smiles,
            provenance={"method": "given", "source": source, "sample": k},
        )
        for k, (x, b) in enumerate(zip(positions, boxes))
    ]
