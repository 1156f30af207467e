"""Everything a training run needs before its first step, built from a config.

:func:`prepare` returns a plain :class:`TrainingSetup`: which structures are
trained on, validated on and held out (:class:`DataPlan`), the student and its
energy model, the data-parallel wrapper, the loaders, the optimiser, the
learning-rate schedule and the weight average. Each piece has its own
function, so a test or a notebook can build one piece alone. The order of the
steps in :func:`prepare` is part of the contract: every random draw (the
student's initial weights above all) follows ``seed_everything(run.seed)`` in
the same order, so the same config builds the same setup in any process.

Units: Angstrom, eV and eV/Angstrom (the teacher's units).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from torch import nn

from openmm_distill.cpu_runtime import keep_freed_memory
from openmm_distill.elements import to_atomic_number
from openmm_distill.errors import ConfigError
from openmm_distill.models import build_student, count_parameters, load_checkpoint
from openmm_distill.models.casting import cast_model
from openmm_distill.models.growth import widen
from openmm_distill.teachers.registry import recorded_teacher, teacher_label
from openmm_distill.training import datasets as ds
from openmm_distill.training import distributed as ddp
from openmm_distill.training.config import ModelConfig, TrainConfig
from openmm_distill.training.ema import ExponentialMovingAverage
from openmm_distill.training.reference_energies import (
    EnergyModel,
    apply_energy_model,
    energy_model_of,
    fit_energy_model,
)
from openmm_distill.training.schedules import LRSchedule
from openmm_distill.training.seeding import seed_everything

logger = logging.getLogger("openmm_distill.training")


@dataclass
class DataPlan:
    """Which structures are trained on, validated on and held out, and where they come from.

    Attributes
    ----------
    path, val_path, test_path : str
        Dataset files of the training, validation and test structures (the same file for a split).
    split : DataSplit
        Structure indices of each part in its file.
    dataset_metadata : dict
        Metadata of the training file (its teacher above all).
    data_hash, val_data_hash : str
        SHA-256 of the training and validation files' content (:func:`datasets.dataset_sha256`).
    """

    path: str
    val_path: str
    test_path: str
    split: ds.DataSplit
    dataset_metadata: Dict[str, Any]
    data_hash: str
    val_data_hash: str


@dataclass
class TrainingSetup:
    """What :func:`prepare` builds; the trainer's loop only reads and steps it.

    Attributes
    ----------
    data : DataPlan
    model : torch.nn.Module
        The plain student (optimiser, EMA, checkpoints and evaluation use it).
    train_model : torch.nn.Module
        What training steps call: the DistributedDataParallel wrapper when distributed, else ``model``.
    energy_model : EnergyModel
        Reference energies, scale and shift of the student (eV).
    train_loader, val_loader : torch.utils.data.DataLoader
    optimizer : torch.optim.AdamW
    schedule : LRSchedule
    ema : ExponentialMovingAverage
    scale : float
        The student's energy scale (RMS of the training forces, eV/Angstrom): the loss normalisation.
    steps_per_epoch : int
    """

    data: DataPlan
    model: nn.Module
    train_model: nn.Module
    energy_model: EnergyModel
    train_loader: Any
    val_loader: Any
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    ema: ExponentialMovingAverage
    scale: float
    steps_per_epoch: int


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; other names are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"run.device = {name!r} but CUDA is not available here; use auto or cpu")
    return torch.device(name)


def plan_data(cfg: TrainConfig) -> DataPlan:
    """Split the data (or take the separate validation and test files) and hash it."""
    d = cfg.data
    with ds.open_labelled(d.path) as labelled:
        dataset_metadata = labelled.metadata
        structure_molecules = labelled.structure_molecule()
    if d.validation_path:
        with ds.open_labelled(d.validation_path) as v:
            val_molecules = v.structure_molecule()
        test_molecules: List[str] = []
        if d.test_path:
            with ds.open_labelled(d.test_path) as t:
                test_molecules = t.structure_molecule()
        split = ds.DataSplit("files", np.arange(len(structure_molecules)), np.arange(len(val_molecules)),
                             np.arange(len(test_molecules)), sorted(set(structure_molecules)),
                             sorted(set(val_molecules)), sorted(set(test_molecules)))
    else:
        split = ds.split_indices(structure_molecules, d.split, validation_fraction=d.validation_fraction,
                                 test_fraction=d.test_fraction, seed=cfg.run.seed)
    split.train = ds.limit_structures(split.train, d.max_structures, cfg.run.seed)
    if len(split.validation) == 0:
        raise ConfigError(
            "the validation set is empty (early stopping, best.pt and the EMA need one): raise "
            "data.validation_fraction, or set data.validation_path"
        )
    data_hash = ds.dataset_sha256(d.path)
    return DataPlan(path=d.path, val_path=d.validation_path or d.path, test_path=d.test_path or d.path,
                    split=split, dataset_metadata=dataset_metadata, data_hash=data_hash,
                    val_data_hash=ds.dataset_sha256(d.validation_path) if d.validation_path else data_hash)


def student_elements(m: ModelConfig, train_z: List[int], val_z: List[int]) -> List[int]:
    """The elements a new student supports: ``model.elements`` (checked against the data) or the training data's."""
    if m.elements is not None:
        elements = sorted({to_atomic_number(e) for e in m.elements})
        missing = sorted((set(train_z) | set(val_z)) - set(elements))
        if missing:
            raise ConfigError(f"model.elements = {m.elements} lacks atomic numbers {missing} that occur in "
                              "the data; add them or set model.elements to null (the data's elements)")
        return elements
    extra = sorted(set(val_z) - set(train_z))
    if extra:
        raise ConfigError(f"validation structures contain elements {extra} that no training structure "
                          "has; list them in model.elements or change the split")
    return list(train_z)


def starting_weights(init_from: str) -> Tuple[nn.Module, Dict[str, Any]]:
    """The model of ``init_from`` and a payload with its ``preset`` and ``teacher`` (as recorded, or None):
    a training checkpoint, a compiled student file, or the name of a shipped student (``original``, ``tiny``, ...)."""
    from openmm_distill.errors import IncompatibleFileError
    from openmm_distill.export.eager import eager_model
    from openmm_distill.export.student import resolve_student_path
    from openmm_distill.export.torchscript import load_compiled

    path = resolve_student_path(init_from)
    try:
        model, payload = load_checkpoint(path)
        return model, {**payload, "teacher": (payload.get("provenance") or {}).get("teacher")}
    except IncompatibleFileError:
        module, meta = load_compiled(path)  # a compiled student carries its weights
        return eager_model(module, meta), {"preset": meta.get("preset"), "teacher": meta.get("teacher")}


def student_from_checkpoint(m: ModelConfig, train: Dict[str, np.ndarray], val_z: List[int],
                            data_teacher: Any) -> Tuple[nn.Module, EnergyModel]:
    """Fine-tuning: the student of ``model.init_from``, with its weights and energy model kept.

    When the training data comes from another teacher than the student's (a GFN2-xTB student
    fine-tuned on SevenNet labels), the reference energies and shift are refitted on the training
    data: the two teachers' energy zeros differ by eV per atom, which the weights should not have to
    learn. The scale (the network's output unit) is kept with the weights.
    """
    overrides = [k for k in ("n_interactions", "cutoff", "n_rbf", "elements") if getattr(m, k) is not None]
    if overrides:
        raise ConfigError(f"model.init_from={m.init_from} fixes the architecture and elements (only model.hidden "
                          f"may widen it); set {', '.join('model.' + k for k in overrides)} to null")
    model, payload = starting_weights(m.init_from)
    if payload.get("preset") and payload["preset"] != m.preset:
        raise ConfigError(f"model.init_from={m.init_from} holds a {payload['preset']!r} student but model.preset is "
                          f"{m.preset!r}; set model.preset={payload['preset']}")
    if m.hidden is not None and m.hidden != model.hidden:
        old_hidden = model.hidden
        model = widen(model, m.hidden)
        logger.info("widened the student of %s from %d to %d feature channels (%s parameters), energies unchanged",
                    m.init_from, old_hidden, m.hidden, f"{count_parameters(model):,}")
    elements = list(model.elements)
    train_z = sorted(int(z) for z in np.unique(train["atomic_numbers"]))
    missing = sorted((set(train_z) | set(val_z)) - set(elements))
    if missing:
        raise ConfigError(f"the data has atomic numbers {missing} that the student in {m.init_from} does not "
                          f"support (it has {elements}); fine-tuning cannot add elements")
    kept = energy_model_of(model, float(np.sqrt(np.mean(np.asarray(train["forces"], dtype=np.float64) ** 2))))
    start_teacher = payload.get("teacher")
    if start_teacher and data_teacher and recorded_teacher(start_teacher) != recorded_teacher(data_teacher):
        fit = fit_energy_model(train["atomic_numbers"], train["n_atoms"], train["energy"], train["forces"], elements)
        energy_model = replace(fit, scale=kept.scale)
        apply_energy_model(model, energy_model)
        logger.info("fine-tuning from %s (preset %s, teacher %s) on labels of %s: weights and scale kept, reference "
                    "energies and shift refitted on the training data", m.init_from, payload.get("preset"),
                    teacher_label(start_teacher), teacher_label(data_teacher))
        return model, energy_model
    logger.info("fine-tuning from %s (preset %s): weights and energy model kept", m.init_from, payload.get("preset"))
    return model, kept


def build_model(cfg: TrainConfig, plan: DataPlan) -> Tuple[nn.Module, EnergyModel]:
    """The student and its data-derived energy model (reference energies, scale, shift), in float32."""
    m = cfg.model
    train_arrays = ds.read_subset(plan.path, plan.split.train)
    train_z = sorted(int(z) for z in np.unique(train_arrays["atomic_numbers"]))
    val_z = ds.dataset_elements(plan.val_path, plan.split.validation)
    if m.init_from:
        return student_from_checkpoint(m, train_arrays, val_z, plan.dataset_metadata.get("teacher"))
    elements = student_elements(m, train_z, val_z)
    overrides = {k: getattr(m, k) for k in ("hidden", "n_interactions", "cutoff", "n_rbf") if getattr(m, k) is not None}
    model = build_student(m.preset, elements=elements, **overrides)
    energy_model = fit_energy_model(train_arrays["atomic_numbers"], train_arrays["n_atoms"], train_arrays["energy"],
                                    train_arrays["forces"], elements)
    apply_energy_model(model, energy_model)
    return model, energy_model


def wrap_for_training(model: nn.Module, device: torch.device, distributed: bool) -> nn.Module:
    """What training steps call: a DistributedDataParallel wrapper when distributed, else the student itself.

    Every rank built the same weights from the same seed; DDP also broadcasts rank 0's at construction.
    """
    if not distributed:
        return model
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    # The readout's [1, hidden] weight gets gradients with strides (1, 1) from the double
    # backward; DDP's bucket view has (hidden, 1): the same memory layout, but DDP warns.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=False)  # every parameter gets a gradient


def make_loaders(cfg: TrainConfig, plan: DataPlan, dtype: torch.dtype) -> Tuple[Any, Any]:
    """Training and validation loaders, built once; :func:`datasets.reseed` fixes each epoch's order.

    Distributed: each rank keeps batches rank, rank + W, ... of the (same) epoch order; training
    drops the ragged tail so all ranks step equally often. No-ops in a single process.
    """
    d = cfg.data
    train_loader = ds.make_loader(plan.path, plan.split.train, d.batch_size, shuffle=True, dtype=dtype,
                                  num_workers=d.num_workers, in_memory=d.in_memory)
    val_loader = ds.make_loader(plan.val_path, plan.split.validation, d.validation_batch_size, shuffle=False,
                                dtype=dtype, num_workers=d.num_workers, in_memory=d.in_memory)
    return ddp.shard_loader(train_loader, drop_ragged=True), ddp.shard_loader(val_loader, drop_ragged=False)


def make_test_loader(cfg: TrainConfig, plan: DataPlan, dtype: torch.dtype):
    """The held-out structures' loader (sharded over ranks when distributed; the sums are reduced)."""
    d = cfg.data
    loader = ds.make_loader(plan.test_path, plan.split.test, d.validation_batch_size, shuffle=False, dtype=dtype,
                            num_workers=d.num_workers, in_memory=d.in_memory)
    return ddp.shard_loader(loader, drop_ragged=False)


def _weight_decay_groups(model: nn.Module, weight_decay: float) -> List[Dict[str, Any]]:
    """Decay weight matrices only; biases and embeddings are not regularised towards zero."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimiser(cfg: TrainConfig, model: nn.Module,
                   steps_per_epoch: int) -> Tuple[torch.optim.Optimizer, LRSchedule, ExponentialMovingAverage]:
    """AdamW (weight decay on weight matrices only), the learning-rate schedule and the weight average."""
    o = cfg.optim
    optimizer = torch.optim.AdamW(_weight_decay_groups(model, o.weight_decay), lr=o.lr, betas=tuple(o.betas))
    schedule = LRSchedule(optimizer, o.lr, o.scheduler, total_steps=o.epochs * steps_per_epoch,
                          warmup_steps=int(math.ceil(o.warmup_epochs * steps_per_epoch)),
                          min_ratio=o.min_lr_ratio, plateau_factor=o.plateau_factor,
                          plateau_patience=o.plateau_patience)
    return optimizer, schedule, ExponentialMovingAverage(model, o.ema_decay)


def prepare(cfg: TrainConfig, device: torch.device, dtype: torch.dtype, distributed: bool) -> TrainingSetup:
    """Build a run's :class:`TrainingSetup` from a resolved config (see the module docstring for the order)."""
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    keep_freed_memory()  # batches allocate the same large edge tensors every step
    seed_everything(cfg.run.seed)
    plan = plan_data(cfg)
    model, energy_model = build_model(cfg, plan)
    # The run's dtype, whatever the student came in (a fresh one is float32, a fine-tuned
    # checkpoint may be float64); the energy buffers stay float64.
    model = cast_model(model, dtype)
    model.to(device)
    train_model = wrap_for_training(model, device, distributed)
    train_loader, val_loader = make_loaders(cfg, plan, dtype)
    steps_per_epoch = len(train_loader)
    d = cfg.data
    if steps_per_epoch == 0:
        raise ConfigError(
            f"{len(plan.split.train)} training structures in batches of {d.batch_size} give fewer batches "
            f"than the {ddp.world_size()} processes; lower data.batch_size or start fewer processes"
        )
    optimizer, schedule, ema = make_optimiser(cfg, model, steps_per_epoch)
    setup = TrainingSetup(data=plan, model=model, train_model=train_model, energy_model=energy_model,
                          train_loader=train_loader, val_loader=val_loader, optimizer=optimizer, schedule=schedule,
                          ema=ema, scale=float(model.energy_scale), steps_per_epoch=steps_per_epoch)
    split = plan.split
    logger.info(
        "student %s: %d parameters, elements %s; %d train / %d validation / %d test structures (split: %s); "
        "energy scale %.4g eV (force RMS), device %s, %s",
        cfg.model.preset, count_parameters(model), list(model.elements), len(split.train), len(split.validation),
        len(split.test), split.method, setup.scale, device, cfg.run.dtype,
    )
    if distributed:
        logger.info("data-parallel: %d processes (backend %s), %d steps per epoch each, effective batch "
                    "%d x %d = %d structures (optim.lr is not rescaled)", ddp.world_size(),
                    torch.distributed.get_backend(), steps_per_epoch, d.batch_size, ddp.world_size(),
                    d.batch_size * ddp.world_size())
    return setup

