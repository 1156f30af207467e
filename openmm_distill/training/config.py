"""Training configuration: nested dataclasses read from YAML, validated strictly.

A recipe (``training/*.yaml``) has five sections, ``model``, ``data``,
``optim``, ``loss`` and ``run``; every key is a field of the matching dataclass
below. Unknown keys and bad values are errors (:class:`ConfigError`) that name
the key, its section and what is allowed, because a typo that silently falls
back to a default is the most expensive kind of training bug: it is found
after the run.

Units: lengths in Angstrom, energies in eV, forces in eV/Angstrom (the
teacher's units, as everywhere inside the package).

Examples
--------
>>> cfg = load_config(find_recipe("tiny"), ["optim.lr=1e-3", "data.path=my.h5"])  # doctest: +SKIP
>>> cfg.optim.lr                                                                     # doctest: +SKIP
0.001
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import yaml

from openmm_distill.config_loader import from_dict, load, to_dict
from openmm_distill.elements import to_atomic_number
from openmm_distill.errors import ConfigError
from openmm_distill.metrics import DEFAULT_MIN_FORCE

PathLike = Union[str, "os.PathLike[str]"]

SPLIT_METHODS = ("catalog", "molecule", "structure")
SCHEDULERS = ("cosine", "plateau", "constant")
DTYPES = ("float32", "float64")


@dataclass
class ModelConfig:
    """Which student to build.

    Attributes
    ----------
    preset : str
        A name from :data:`openmm_distill.models.PRESETS` (``original``, ``tiny``, ``ultra-tiny``).
    elements : list of int or str, optional
        Elements the student supports (atomic numbers or symbols). ``null``
        (default): the elements present in the training data. List more to
        make one student cover molecules that are not in the data yet (their
        reference energies are then 0 and their predictions meaningless).
    hidden, n_interactions, n_rbf : int, optional
        Override the preset's feature width, number of message-passing layers
        and number of radial basis functions.
    cutoff : float, optional
        Override the preset's radial cutoff, Angstrom.
    init_from : str, optional
        Fine-tune: start from the weights of this checkpoint (a ``best.pt`` or
        ``last.pt``), compiled student (``student.pt``) or shipped student
        (``original``, ``tiny``, ``ultra-tiny``) instead of random ones. The student keeps the
        checkpoint's architecture, elements and energy model (reference
        energies, scale, shift: refitting them would shift every prediction),
        except when the data comes from another teacher than the student's
        (a GFN2-xTB student fine-tuned on SevenNet labels): then the reference
        energies and shift are refitted on the training data and the scale is kept.
        ``preset`` must name the checkpoint's preset, and the overrides above must be null,
        except ``hidden``: a larger width widens the student (new channels beside the
        trained ones, energies unchanged at the start; see :mod:`openmm_distill.models.growth`).
        The optimiser, schedule and EMA start fresh, so pick a smaller
        ``optim.lr`` and fewer epochs than for training from scratch.
    """

    preset: str = "original"
    elements: Optional[List[Union[int, str]]] = None
    hidden: Optional[int] = None
    n_interactions: Optional[int] = None
    cutoff: Optional[float] = None
    n_rbf: Optional[int] = None
    init_from: Optional[str] = None


@dataclass
class DataConfig:
    """Where the labelled structures come from and how they are split and batched.

    Attributes
    ----------
    path : str
        HDF5 dataset written by ``openmm_distill.data`` (eV, eV/Angstrom, Angstrom).
        Relative paths are relative to the working directory.
    validation_path : str, optional
        A separate validation dataset. When given, all of ``path`` is used
        for training (``split`` and the fractions are ignored).
    test_path : str, optional
        A separate held-out dataset (used with ``validation_path``), evaluated
        once at the end; its metrics go into the compiled student's metadata.
    split : str
        How ``path`` is split into train / validation / test:
        ``catalog`` uses the split by molecule declared in ``openmm_distill/systems/data/molecules.csv``
        (every molecule in the file must be in the catalog); ``molecule``
        assigns whole molecules at random (seeded by ``run.seed``) by the
        fractions below; ``structure`` assigns structures at random (only
        for a few molecules; validation then measures interpolation).
    validation_fraction, test_fraction : float
        Fractions for the ``molecule`` and ``structure`` splits (of molecules
        or of structures). The test part is never used in training; it is
        recorded in the compiled student for ``openmm-distill evaluate --split test``.
    max_structures : int, optional
        Use at most this many training structures (a seeded random subset);
        for smoke runs and learning curves.
    batch_size : int
        Structures per training step.
    validation_batch_size : int
        Structures per validation step (only memory depends on it).
    num_workers : int
        DataLoader worker processes (0: load in the main process, best for
        small datasets held in memory).
    in_memory : bool
        Read the dataset's arrays into memory once instead of from the file
        per structure (fast; a few thousand small molecules take a few MB).
    """

    path: str = ""
    validation_path: Optional[str] = None
    test_path: Optional[str] = None
    split: str = "molecule"
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    max_structures: Optional[int] = None
    batch_size: int = 16
    validation_batch_size: int = 64
    num_workers: int = 0
    in_memory: bool = True


@dataclass
class OptimConfig:
    """Optimiser, learning-rate schedule, EMA and stopping.

    Attributes
    ----------
    lr : float
        Peak learning rate of AdamW.
    weight_decay : float
        AdamW decoupled weight decay, applied to weight matrices only (not
        biases, embeddings or normalisation buffers).
    betas : list of float
        AdamW (beta1, beta2).
    epochs : int
        Maximum number of epochs.
    warmup_epochs : float
        Linear warm-up from 0 to ``lr`` over this many epochs (may be fractional).
    scheduler : str
        ``cosine`` (decay to ``lr * min_lr_ratio`` at ``epochs``), ``plateau``
        (multiply by ``plateau_factor`` after ``plateau_patience`` epochs
        without improvement of the validation force MAE) or ``constant``.
    min_lr_ratio : float
        Floor of the learning rate as a fraction of ``lr`` (both schedules).
    plateau_factor : float
        Learning-rate factor applied on a plateau, in (0, 1).
    plateau_patience : int
        Epochs without improvement before the plateau schedule lowers the rate.
    grad_clip : float
        Maximum global gradient norm; 0 disables clipping.
    ema_decay : float
        Decay of the exponential moving average of the weights (0 disables
        the average). Validation, ``best.pt`` and the compiled student use
        the averaged weights.
    early_stopping_patience : int
        Stop after this many epochs without improvement of the validation
        force MAE; 0 disables early stopping.
    """

    lr: float = 5e-4
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    epochs: int = 300
    warmup_epochs: float = 2.0
    scheduler: str = "cosine"
    min_lr_ratio: float = 0.01
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    grad_clip: float = 10.0
    ema_decay: float = 0.99
    early_stopping_patience: int = 50


@dataclass
class LossConfig:
    """Loss terms and weights.

    All terms are dimensionless: energy and force errors are divided by the
    student's ``energy_scale`` (the RMS of the training forces, eV/Angstrom;
    see :mod:`openmm_distill.training.reference_energies`), so a student
    that predicts zero forces has a force loss of exactly 1. Why the default
    weights are 1 / 1 / 0.1 and not the original project's 1 / 100 / 10:
    see :mod:`openmm_distill.training.losses`.

    Attributes
    ----------
    energy_weight : float
        Weight of the mean squared per-atom energy error.
    force_weight : float
        Weight of the mean squared force-component error.
    angular_weight : float
        Weight of the mean of ``1 - cos(angle)`` between student and teacher force vectors.
    angular_min_force : float
        Atoms whose teacher force is below this norm (eV/Angstrom) are left out of
        the angular loss and metric: their direction is noise.
    hessian_weight : float
        Weight of the Hessian-row distillation loss (0, the default, disables it).
    hessian_structures_per_batch : int
        Structures per training batch that get one random Hessian row.
    hessian_step : float
        Finite-difference displacement for teacher Hessian rows, Angstrom.
    hessian_teacher : str, optional
        Teacher (registry name) used for finite differences when the dataset
        has no Hessian rows; default: the teacher recorded in the dataset.
    hessian_teacher_options : dict
        Options passed to :func:`openmm_distill.teachers.get_teacher`.
    """

    energy_weight: float = 1.0
    force_weight: float = 1.0
    angular_weight: float = 0.1
    angular_min_force: float = DEFAULT_MIN_FORCE
    hessian_weight: float = 0.0
    hessian_structures_per_batch: int = 1
    hessian_step: float = 0.005
    hessian_teacher: Optional[str] = None
    hessian_teacher_options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RunConfig:
    """Where results go and how the run executes.

    Attributes
    ----------
    output_dir : str
        Folder for ``last.pt``, ``best.pt``, ``config.yaml``, ``metrics.csv``,
        ``loss_curves.png`` and the compiled ``student.pt``.
    seed : int
        Seeds Python, NumPy, torch, the random split and the per-epoch shuffling.
    device : str
        ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    dtype : str
        Training arithmetic: ``float32`` or ``float64``.
    compile_dtype : str
        Arithmetic of the compiled student: ``float32`` or ``float64``.
    threads : int, optional
        ``torch.set_num_threads`` for CPU training; ``null`` keeps torch's default.
    progress : bool
        Show tqdm progress bars.
    tensorboard : bool
        Also log to TensorBoard when ``torch.utils.tensorboard`` can be imported.
    compile : bool
        Compile the best EMA model to TorchScript (``student.pt``) at the end.
    """

    output_dir: str = "runs/student"
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    compile_dtype: str = "float32"
    threads: Optional[int] = None
    progress: bool = True
    tensorboard: bool = True
    compile: bool = True


@dataclass
class TrainConfig:
    """A full training recipe; see the section classes for every key."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dict (YAML/JSON serialisable)."""
        return to_dict(self)


_WHAT = "training config"


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a nested mapping.

    Raises
    ------
    ConfigError
        For an unknown section or key (the message names it and lists the
        allowed ones) or a bad value (the message names the value and what is allowed).
    """
    cfg = from_dict(TrainConfig, values, what=_WHAT)
    validate(cfg)
    return cfg


def _choice(where: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{where} = {value!r} is not allowed; choose one of: {', '.join(allowed)}")


def _check(cond: bool, where: str, value: Any, requirement: str) -> None:
    if not cond:
        raise ConfigError(f"{where} = {value!r} is not allowed; it must be {requirement}")


def validate(cfg: TrainConfig) -> None:
    """Check value ranges and choices; raises :class:`ConfigError` naming the key and the allowed values."""
    from openmm_distill.models import preset_names

    m, d, o, lo, r = cfg.model, cfg.data, cfg.optim, cfg.loss, cfg.run
    _choice("model.preset", m.preset, preset_names())
    if m.elements is not None:
        _check(len(m.elements) > 0, "model.elements", m.elements, "a non-empty list or null")
        for k, el in enumerate(m.elements):
            try:
                to_atomic_number(el)
            except ValueError as exc:
                raise ConfigError(f"model.elements[{k}] = {el!r} is not an element: {exc}") from None
    for key in ("hidden", "n_interactions", "n_rbf"):
        v = getattr(m, key)
        if v is not None:
            _check(v >= 1, f"model.{key}", v, "an integer >= 1 or null")
    if m.cutoff is not None:
        _check(m.cutoff > 0, "model.cutoff", m.cutoff, "> 0 Angstrom or null")

    _choice("data.split", d.split, SPLIT_METHODS)
    if d.test_path and not d.validation_path:
        raise ConfigError(f"data.test_path = {d.test_path!r} needs data.validation_path too (separate files for "
                          "every part), or leave both empty and use data.split")
    _check(0.0 <= d.validation_fraction < 1.0, "data.validation_fraction", d.validation_fraction, "in [0, 1)")
    _check(0.0 <= d.test_fraction < 1.0, "data.test_fraction", d.test_fraction, "in [0, 1)")
    _check(d.validation_fraction + d.test_fraction < 1.0, "data.validation_fraction + data.test_fraction",
           d.validation_fraction + d.test_fraction, "< 1")
    if d.max_structures is not None:
        _check(d.max_structures >= 1, "data.max_structures", d.max_structures, ">= 1 or null")
    _check(d.batch_size >= 1, "data.batch_size", d.batch_size, ">= 1")
    _check(d.validation_batch_size >= 1, "data.validation_batch_size", d.validation_batch_size, ">= 1")
    _check(d.num_workers >= 0, "data.num_workers", d.num_workers, ">= 0")

    _check(o.lr > 0, "optim.lr", o.lr, "> 0")
    _check(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, ">= 0")
    _check(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optim.betas", o.betas,
           "two numbers in [0, 1)")
    _check(o.epochs >= 1, "optim.epochs", o.epochs, ">= 1")
    _check(o.warmup_epochs >= 0, "optim.warmup_epochs", o.warmup_epochs, ">= 0")
    _choice("optim.scheduler", o.scheduler, SCHEDULERS)
    _check(0 < o.min_lr_ratio <= 1, "optim.min_lr_ratio", o.min_lr_ratio, "in (0, 1]")
    _check(0 < o.plateau_factor < 1, "optim.plateau_factor", o.plateau_factor, "in (0, 1)")
    _check(o.plateau_patience >= 1, "optim.plateau_patience", o.plateau_patience, ">= 1")
    _check(o.grad_clip >= 0, "optim.grad_clip", o.grad_clip, ">= 0 (0 disables clipping)")
    _check(0 <= o.ema_decay < 1, "optim.ema_decay", o.ema_decay, "in [0, 1) (0 disables the average)")
    _check(o.early_stopping_patience >= 0, "optim.early_stopping_patience", o.early_stopping_patience,
           ">= 0 (0 disables early stopping)")

    for key in ("energy_weight", "force_weight", "angular_weight", "hessian_weight"):
        v = getattr(lo, key)
        _check(v >= 0, f"loss.{key}", v, ">= 0")
    _check(lo.energy_weight + lo.force_weight + lo.angular_weight + lo.hessian_weight > 0,
           "loss weights", [lo.energy_weight, lo.force_weight, lo.angular_weight, lo.hessian_weight],
           "not all zero")
    _check(lo.angular_min_force >= 0, "loss.angular_min_force", lo.angular_min_force, ">= 0 eV/Angstrom")
    _check(lo.hessian_structures_per_batch >= 1, "loss.hessian_structures_per_batch",
           lo.hessian_structures_per_batch, ">= 1")
    _check(lo.hessian_step > 0, "loss.hessian_step", lo.hessian_step, "> 0 Angstrom")
    if lo.hessian_teacher is not None:
        from openmm_distill.teachers import available_teachers

        _choice("loss.hessian_teacher", lo.hessian_teacher, available_teachers())

    _check(bool(r.output_dir), "run.output_dir", r.output_dir, "a non-empty path")
    _check(r.device == "auto" or r.device == "cpu" or r.device == "cuda" or r.device.startswith("cuda:"),
           "run.device", r.device, "one of auto, cpu, cuda, cuda:N")
    _choice("run.dtype", r.dtype, DTYPES)
    _choice("run.compile_dtype", r.compile_dtype, DTYPES)
    if r.threads is not None:
        _check(r.threads >= 1, "run.threads", r.threads, ">= 1 or null")


def load_config(path: Optional[PathLike] = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML recipe, apply ``section.key=value`` overrides and validate.

    Parameters
    ----------
    path : path-like, optional
        YAML file; ``None`` starts from the defaults.
    overrides : sequence of str
        Strings like ``"optim.lr=1e-3"`` (values parsed as YAML).

    Returns
    -------
    TrainConfig

    Raises
    ------
    ConfigError
        Unknown section/key, bad value, unreadable file.
    """
    cfg = load(TrainConfig, path, overrides, what=_WHAT)
    validate(cfg)
    return cfg


def resolve_paths(cfg: TrainConfig, base: Optional[PathLike] = None) -> TrainConfig:
    """A copy with ``model.init_from``, the data paths and ``run.output_dir`` made absolute.

    Relative paths are taken relative to ``base`` (default: the working directory).
    """
    base = Path(base) if base is not None else Path.cwd()
    new = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model), data=dataclasses.replace(cfg.data),
                              run=dataclasses.replace(cfg.run))

    def absolute(p: Optional[str]) -> Optional[str]:
        if not p:
            return p
        q = Path(os.path.expanduser(p))
        return str(q if q.is_absolute() else (base / q).resolve())

    init = cfg.model.init_from
    # A shipped student's name stays a name (unless a file of that name is where it points).
    shipped_name = bool(init) and Path(init).suffix == "" and not (base / init).exists() and "/" not in init
    new.model.init_from = init if shipped_name else absolute(init)
    new.data.path = absolute(cfg.data.path)
    new.data.validation_path = absolute(cfg.data.validation_path)
    new.data.test_path = absolute(cfg.data.test_path)
    new.run.output_dir = absolute(cfg.run.output_dir)
    return new


def save_config(cfg: TrainConfig, path: PathLike) -> None:
    """Write the resolved config as YAML (atomically: temporary file then rename)."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Resolved training config (every key, defaults filled in) written by openmm-distill train.\n"
    text += yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=False)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def describe_keys() -> str:
    """Every section and key with its default, as a YAML recipe (for ``--show-keys`` and templates)."""
    text = "# Every recipe key with its default (openmm-distill train --show-keys).\n"
    return text + yaml.safe_dump(TrainConfig().to_dict(), sort_keys=False, default_flow_style=False)
