"""Pipeline configuration: one YAML file, validated; unknown keys are errors naming the key.

Sections (all optional except ``molecules``):

    name: demo
    output_dir: runs/demo
    teacher: {name: gfn2-xtb, options: {}}
    molecules: [ethanol, my_molecules.csv, ligand.sdf]   # the user's molecules: catalog names, SMILES,
                                                         # CSV (name,smiles), .smi, SDF/MOL/PDB files; or a path
    molecules: {train: [...] | train_split: train, validation: [...], test: [...], limit: N}
                # without validation/test molecules, held-out geometries of the training molecules
    sampling: {...SamplingConfig fields...}        # or sampling_file: path.yaml
    workers: 2
    training: {recipe: tiny, init_from: shipped, set: {optim.epochs: 30, ...}}   # a built-in recipe or a YAML path
    loop: {max_rounds: 3, budget_minutes: 15, explore: {...ExplorationSettings fields...}, set: {...}}
    protocols: {systems: [aspirin], nve_ps: 2.0, throughput: true, ...}
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional

from openmm_distill.config_loader import apply_overrides, from_dict, read_yaml
from openmm_distill.errors import ConfigError, MissingFileError

# Built-in configs shipped with the package.
# Package data (in the wheel too): openmm_distill/pipeline/configs/*.yaml.
BUILTIN_DIR = Path(str(resources.files(__package__) / "configs"))


@dataclass
class TeacherSection:
    name: str = "gfn2-xtb"
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class MoleculesSection:
    """The molecules per role: catalog names, SMILES, or files (CSV ``name,smiles``, ``.smi``, SDF/MOL/PDB
    with explicit hydrogens), or a whole catalog split with ``*_split``. Without validation and test
    molecules, both are held-out geometries (other conformers, hot MD) of the training molecules."""

    train: List[str] = field(default_factory=list)
    validation: List[str] = field(default_factory=list)
    test: List[str] = field(default_factory=list)
    train_split: Optional[str] = None
    validation_split: Optional[str] = None
    test_split: Optional[str] = None
    limit: Optional[int] = None


@dataclass
class TrainingSection:
    """The trainer recipe (its ``model.preset`` is the student's size), its overrides, and where the
    weights start: ``shipped`` (the shipped student of that preset, fine-tuned), ``scratch``
    (random weights), or the path of a training checkpoint or compiled student."""

    recipe: str = "tiny"
    init_from: str = "shipped"
    set: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ProtocolsSection:
    """The validation report. ``systems`` empty: every training molecule of the pipeline. The lengths
    default to the protocols' quick mode (NVE 1 + 5 ps, NVT 2 ps at 300 and 500 K)."""

    systems: List[str] = field(default_factory=list)
    nve: bool = True
    nve_ps: float = 5.0
    nve_equilibration_ps: float = 1.0
    timestep_fs: float = 0.5
    temperature_K: float = 300.0
    throughput: bool = True
    throughput_teachers: bool = True
    stability: bool = True
    stability_ps: float = 2.0


@dataclass
class LoopSection:
    """Active learning after the first student: while a molecule is not "production" and the budget
    lasts, explore it with the student (hot MD, :class:`ExplorationSettings` fields in ``explore``),
    label what it found, fine-tune (trainer overrides in ``set``, on top of ``training.set``) and
    validate again. ``budget_minutes`` counts every stage of the pipeline; null: no limit."""

    max_rounds: int = 3
    budget_minutes: Optional[float] = None
    explore: Dict[str, Any] = field(default_factory=dict)
    set: Dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineConfig:
    name: str = "pipeline"
    output_dir: str = "runs/pipeline"
    teacher: TeacherSection = field(default_factory=TeacherSection)
    molecules: MoleculesSection = field(default_factory=MoleculesSection)
    sampling: Dict[str, Any] = field(default_factory=dict)
    evaluation_sampling: Dict[str, Any] = field(default_factory=dict)
    workers: int = 1
    training: TrainingSection = field(default_factory=TrainingSection)
    protocols: ProtocolsSection = field(default_factory=ProtocolsSection)
    loop: LoopSection = field(default_factory=LoopSection)
    # Where the config came from: relative paths (recipes) resolve against it.
    base_dir: str = ""

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.pop("base_dir")
        return d


_WHAT = "pipeline config"
# training.init_from besides a path: the shipped student of the recipe's preset, or random weights.
INIT_CHOICES = ("shipped", "scratch")


def config_from_dict(values: Dict[str, Any], base_dir: str = "") -> PipelineConfig:
    """Build and validate a :class:`PipelineConfig` from a nested mapping (see :mod:`openmm_distill.config_loader`)."""
    if isinstance(values, dict) and isinstance(values.get("molecules"), (str, list)):
        # `molecules: [a, b.sdf]` or `molecules: file.csv`: the user's molecules, all for training.
        listed = values["molecules"]
        values = dict(values, molecules={"train": [listed] if isinstance(listed, str) else listed})
    cfg = from_dict(PipelineConfig, values, what=_WHAT, exclude=("base_dir",), base_dir=base_dir)
    validate(cfg)
    return cfg


def validate(cfg: PipelineConfig) -> None:
    from openmm_distill.systems import SPLITS

    m = cfg.molecules
    if not (m.train or m.train_split):
        raise ConfigError("molecules.train (names) or molecules.train_split (train/validation/test) is required")
    for key in ("train_split", "validation_split", "test_split"):
        value = getattr(m, key)
        if value is not None and value not in SPLITS:
            raise ConfigError(f"molecules.{key} = {value!r} is not one of {list(SPLITS)}")
    if not isinstance(cfg.workers, int) or cfg.workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {cfg.workers!r}")
    init = cfg.training.init_from
    if init not in INIT_CHOICES and not Path(init).suffix:
        raise ConfigError(f"training.init_from = {init!r}: use {' or '.join(INIT_CHOICES)}, or the path of a "
                          "training checkpoint or compiled student (.pt)")
    loop = cfg.loop
    if loop.max_rounds < 0:
        raise ConfigError(f"loop.max_rounds must be >= 0 (0: no active learning), got {loop.max_rounds!r}")
    if loop.budget_minutes is not None and not loop.budget_minutes > 0:
        raise ConfigError(f"loop.budget_minutes must be a positive number or null, got {loop.budget_minutes!r}")
    exploration_settings(cfg)
    p = cfg.protocols
    for key in ("nve_ps", "nve_equilibration_ps", "timestep_fs", "temperature_K", "stability_ps"):
        if not isinstance(getattr(p, key), (int, float)) or getattr(p, key) <= 0:
            raise ConfigError(f"protocols.{key} must be a positive number, got {getattr(p, key)!r}")


def exploration_settings(cfg: PipelineConfig):
    """The :class:`~openmm_distill.active_learning.exploration.ExplorationSettings` of ``loop.explore``
    (unknown keys and bad values are :class:`ConfigError`)."""
    from openmm_distill.active_learning.exploration import ExplorationSettings

    return from_dict(ExplorationSettings, cfg.loop.explore, "loop.explore", what=_WHAT, exclude=("thresholds",))


def load_pipeline_config(path: Optional[str] = None, overrides: Optional[List[str]] = None) -> PipelineConfig:
    """Read a pipeline YAML (default: the built-in demo config); ``overrides`` are ``key.sub=value`` strings."""
    path = Path(path) if path else BUILTIN_DIR / "default.yaml"
    if not path.is_file() and (BUILTIN_DIR / f"{path}.yaml").is_file():
        path = BUILTIN_DIR / f"{path}.yaml"
    if not path.is_file():
        raise MissingFileError(f"pipeline config {str(path)!r} does not exist; built-in: "
                                f"{sorted(p.stem for p in BUILTIN_DIR.glob('*.yaml'))}")
    # training.set holds dotted trainer keys as they are (training.set.optim.lr=... -> {"optim.lr": ...}).
    values = apply_overrides(read_yaml(path, _WHAT), overrides or [], PipelineConfig, what=_WHAT,
                             exclude=("base_dir",))
    base = str(path.resolve().parent)
    return config_from_dict(values, base_dir=base)


def resolve(cfg: PipelineConfig, relative: str) -> str:
    """A recipe from the config: a path (absolute, or relative to the working directory or the
    config's folder) or the name of a built-in recipe (:func:`openmm_distill.recipes.find_recipe`)."""
    from openmm_distill.recipes import find_recipe

    beside_config = Path(cfg.base_dir) / relative
    return str(beside_config if not Path(relative).is_file() and beside_config.is_file() else find_recipe(relative))
