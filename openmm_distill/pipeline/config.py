"""Pipeline configuration: one YAML file, validated; unknown keys are errors naming the key.

Sections (all optional except ``molecules``):

    name: demo
    output_dir: runs/demo
    teacher: {name: gfn2-xtb, options: {}}
    molecules: {train: [ethanol_like, ...] | split: train, validation: [...], limit: N}
    sampling: {...SamplingConfig fields...}        # or sampling_file: path.yaml
    workers: 2
    training: {recipe: training/tiny.yaml, set: {optim.epochs: 30, ...}}
    protocols: {systems: [aspirin], nve_ps: 2.0, throughput: true, ...}
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from openmm_distill.errors import ConfigError

# Built-in configs shipped with the package.
BUILTIN_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class TeacherSection:
    name: str = "gfn2-xtb"
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class MoleculesSection:
    """Molecule names from the catalog per role, or a whole catalog split with ``*_split``."""

    train: List[str] = field(default_factory=list)
    validation: List[str] = field(default_factory=list)
    test: List[str] = field(default_factory=list)
    train_split: Optional[str] = None
    validation_split: Optional[str] = None
    test_split: Optional[str] = None
    limit: Optional[int] = None


@dataclass
class TrainingSection:
    recipe: str = "training/tiny.yaml"
    set: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ProtocolsSection:
    systems: List[str] = field(default_factory=lambda: ["aspirin"])
    nve: bool = True
    nve_ps: float = 2.0
    nve_equilibration_ps: float = 0.5
    timestep_fs: float = 0.5
    temperature_K: float = 300.0
    throughput: bool = True
    throughput_teachers: bool = True
    stability: bool = False
    stability_ps: float = 2.0


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
    # Where the config came from: relative paths (recipes) resolve against it.
    base_dir: str = ""

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.pop("base_dir")
        return d


_SECTIONS = {"teacher": TeacherSection, "molecules": MoleculesSection, "training": TrainingSection,
             "protocols": ProtocolsSection}


def _build(cls, values: Any, where: str):
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping, got {values!r}")
    allowed = [f.name for f in fields(cls)]
    for key in values:
        if key not in allowed:
            raise ConfigError(f"unknown key {where + '.' if where else ''}{key!r}; allowed keys"
                              f"{' in ' + where if where else ''}: {', '.join(allowed)}")
    return cls(**values)


def config_from_dict(values: Dict[str, Any], base_dir: str = "") -> PipelineConfig:
    if not isinstance(values, dict):
        raise ConfigError(f"a pipeline config must be a YAML mapping, got {type(values).__name__}")
    allowed = [f.name for f in fields(PipelineConfig) if f.name != "base_dir"]
    for key in values:
        if key not in allowed:
            raise ConfigError(f"unknown key {key!r} in the pipeline config; allowed keys: {', '.join(allowed)}")
    top = {k: v for k, v in values.items() if k not in _SECTIONS}
    sections = {k: _build(cls, values.get(k), k) for k, cls in _SECTIONS.items()}
    cfg = PipelineConfig(**top, **sections, base_dir=base_dir)
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
    p = cfg.protocols
    for key in ("nve_ps", "nve_equilibration_ps", "timestep_fs", "temperature_K", "stability_ps"):
        if not isinstance(getattr(p, key), (int, float)) or getattr(p, key) <= 0:
            raise ConfigError(f"protocols.{key} must be a positive number, got {getattr(p, key)!r}")


def load_pipeline_config(path: Optional[str] = None, overrides: Optional[List[str]] = None) -> PipelineConfig:
    """Read a pipeline YAML (default: the built-in demo config); ``overrides`` are ``key.sub=value`` strings."""
    path = Path(path) if path else BUILTIN_DIR / "default.yaml"
    if not path.is_file() and (BUILTIN_DIR / f"{path}.yaml").is_file():
        path = BUILTIN_DIR / f"{path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"pipeline config {str(path)!r} does not exist; built-in: "
                                f"{sorted(p.stem for p in BUILTIN_DIR.glob('*.yaml'))}")
    with open(path) as handle:
        values = yaml.safe_load(handle) or {}
    for text in overrides or []:
        if "=" not in text:
            raise ConfigError(f"override {text!r} must look like key.sub=value")
        key, raw = text.split("=", 1)
        node = values
        parts = key.strip().split(".")
        # training.set holds dotted trainer keys as they are (training.set.optim.lr=... -> {"optim.lr": ...}).
        if parts[:2] == ["training", "set"] and len(parts) > 2:
            parts = parts[:2] + [".".join(parts[2:])]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    base = str(path.resolve().parent)
    return config_from_dict(values, base_dir=base)


def resolve(cfg: PipelineConfig, relative: str) -> str:
    """A path from the config: absolute, relative to the working directory, or to the repo/config folder."""
    candidates = [Path(relative), Path(cfg.base_dir) / relative, Path(__file__).resolve().parents[2] / relative]
    for c in candidates:
        if c.exists():
            return str(c)
    return os.fspath(relative)
