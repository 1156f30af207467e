"""The training loop: data -> student -> AdamW + schedule + EMA -> checkpoints -> compiled student.

One :class:`Trainer` runs one recipe (:class:`~openmm_distill.training.config.TrainConfig`)
in one output folder::

    output_dir/
        config.yaml        the resolved config (every key, absolute paths)
        last.pt            raw weights + full trainer state (resume from here)
        best.pt            EMA weights of the epoch with the lowest validation force MAE
        metrics.csv        one row per epoch (train and validation metrics)
        loss_curves.png    the same, plotted
        student.pt         best.pt compiled to TorchScript for OpenMM (with metadata)
        summary.json       final numbers (best epoch, validation and test metrics, paths)

Exact resume. ``last.pt`` holds the optimiser, schedule, EMA and global RNG
states, the epoch counter, the best metric, the early-stopping counter and the
history. Shuffling and Hessian-row sampling draw from generators seeded by
``(seed, epoch)``, so a run resumed after epoch k repeats epochs k+1.. exactly
as an uninterrupted run would: bit for bit on the CPU with ``run.threads: 1``
(tested). With several threads the CPU BLAS may sum in a different order from
run to run (relative differences ~1e-8), and CUDA scatter-adds are not
deterministic, so there "exactly" means "to rounding".

Data-parallel training. Under ``torchrun --nproc_per_node=N`` (``WORLD_SIZE > 1``)
the same loop runs in N processes (:mod:`openmm_distill.training.distributed`):
the student is wrapped in ``DistributedDataParallel``, each process trains on
a disjoint share of every epoch's batches (the ragged tail of ``n_batches mod N``
batches is dropped so all take the same number of steps), gradients are
averaged, and the metric sums of training, validation and test are added over
processes. The effective batch is ``data.batch_size x N`` structures per step;
``optim.lr`` is not rescaled (set it yourself). Only rank 0 writes files
(checkpoints hold the unwrapped student: no ``module.`` prefix) and shows
progress bars. A single process is unaffected by any of this.

Units: Angstrom, eV and eV/Angstrom throughout; the compiled student converts
to nm and kJ/mol at its boundary.
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from openmm_distill.cpu_runtime import keep_freed_memory
from openmm_distill.errors import ConfigError, DistillError
from openmm_distill.models import build_student, count_parameters, load_checkpoint, save_checkpoint
from openmm_distill.training import datasets as ds
from openmm_distill.training import distributed as ddp
from openmm_distill.training.batching import batch_neighbor_list, to_device
from openmm_distill.training.config import TrainConfig, resolve_paths, save_config, to_atomic_number
from openmm_distill.training.ema import ExponentialMovingAverage
from openmm_distill.training.hessian import (
    check_teacher_matches_labels,
    dataset_rows_for_batch,
    hessian_row_loss,
    sample_rows,
    student_hessian_rows,
    teacher_rows_for_batch,
)
from openmm_distill.training.history import MetricLog
from openmm_distill.training.losses import distillation_loss
from openmm_distill.training.metrics import METRIC_NAMES, MetricAccumulator
from openmm_distill.training.reference_energies import (
    EnergyModel,
    apply_energy_model,
    energy_model_of,
    fit_energy_model,
)
from openmm_distill.training.schedules import LRSchedule
from openmm_distill.training.seeding import capture_rng_state, epoch_generator, restore_rng_state, seed_everything

logger = logging.getLogger("openmm_distill.training")

LAST = "last.pt"
BEST = "best.pt"
CONFIG_FILE = "config.yaml"
COMPILED = "student.pt"
PLOT = "loss_curves.png"
SUMMARY = "summary.json"
MONITOR = "val_force_mae"
# Generator streams (see seeding.epoch_generator).
_HESSIAN_STREAM = 1
# Data-parallel rank r draws its Hessian rows from stream _HESSIAN_STREAM + r * this (rank 0: unchanged).
_RANK_STREAM_STRIDE = 1000
# When set (tests), every rank writes its final parameter checksum to output_dir/param_checksum.rank<R>.txt.
CHECKSUM_ENV = "OPENMM_DISTILL_TEST_CHECKSUM"


class TrainingDivergedError(DistillError, FloatingPointError):
    """The loss became NaN or infinite (learning rate too high, or bad labels)."""


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced.

    Attributes
    ----------
    output_dir : pathlib.Path
    epochs_run : int
        Completed epochs.
    best_epoch : int
        Epoch (1-based) of ``best.pt``.
    best_metrics : dict
        Validation metrics (EMA weights) at ``best_epoch``; see :mod:`openmm_distill.training.metrics`.
    test_metrics : dict
        Metrics of ``best.pt`` on the held-out test structures (empty when there are none).
    stopped_early : bool
    finished : bool
        False when the run was stopped on purpose before the end (``stop_after``).
    compiled_path : pathlib.Path or None
        ``student.pt`` when compiled.
    history : list of dict
        The rows of ``metrics.csv``.
    """

    output_dir: Path
    epochs_run: int
    best_epoch: int
    best_metrics: Dict[str, float]
    test_metrics: Dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    finished: bool = True
    compiled_path: Optional[Path] = None
    history: List[Dict[str, float]] = field(default_factory=list)

    @property
    def last_checkpoint(self) -> Path:
        return self.output_dir / LAST

    @property
    def best_checkpoint(self) -> Path:
        return self.output_dir / BEST


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; other names are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"run.device = {name!r} but CUDA is not available here; use auto or cpu")
    return torch.device(name)


def _weight_decay_groups(model: nn.Module, weight_decay: float) -> List[Dict[str, Any]]:
    """Decay weight matrices only; biases and embeddings are not regularised towards zero."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _finite(x: float) -> float:
    return float(x) if math.isfinite(float(x)) else float("nan")


class Trainer:
    """Train a student on a labelled dataset according to a config.

    Parameters
    ----------
    config : TrainConfig
        The recipe; relative paths are resolved against ``base_dir``.
    teacher : openmm_distill.teachers.Teacher, optional
        Used only for Hessian-row distillation when the dataset carries no
        Hessian rows; default: built from ``loss.hessian_teacher`` or the
        teacher recorded in the dataset.
    base_dir : path-like, optional
        Directory relative paths in the config refer to (default: working directory).

    Examples
    --------
    >>> from openmm_distill.training import Trainer, load_config
    >>> result = Trainer(load_config("training/tiny.yaml", ["data.path=data.h5"])).fit()  # doctest: +SKIP
    >>> result.best_metrics["force_mae"], result.compiled_path                              # doctest: +SKIP
    """

    def __init__(self, config: TrainConfig, *, teacher=None, base_dir: Optional[str | os.PathLike] = None):
        self.config = resolve_paths(config, base_dir)
        if not self.config.data.path:
            raise ConfigError("data.path is empty: set it in the recipe or with --set data.path=DATASET.h5")
        self.output_dir = Path(self.config.run.output_dir)
        self.teacher = teacher
        # Under torchrun each process takes its own device (cuda:LOCAL_RANK or the CPU) and joins the
        # process group; in a single process device_for() is None and init() does nothing.
        self.device = ddp.device_for(self.config.run.device) or resolve_device(self.config.run.device)
        self.distributed = ddp.init(self.device)
        self.dtype = torch.float64 if self.config.run.dtype == "float64" else torch.float32
        self._prepared = False

    # ------------------------------------------------------------------ set-up
    def _prepare(self) -> None:
        """Split the data, build the student, fit its energy model, make optimiser, schedule and EMA."""
        if self._prepared:
            return
        cfg = self.config
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        keep_freed_memory()  # batches allocate the same large edge tensors every step
        seed_everything(cfg.run.seed)
        d = cfg.data
        with ds.open_labelled(d.path) as labelled:
            self.dataset_metadata = labelled.metadata
            structure_molecules = labelled.structure_molecule()
        if d.validation_path:
            with ds.open_labelled(d.validation_path) as v:
                val_molecules = v.structure_molecule()
            test_molecules: List[str] = []
            if d.test_path:
                with ds.open_labelled(d.test_path) as t:
                    test_molecules = t.structure_molecule()
            self.split = ds.DataSplit("files", np.arange(len(structure_molecules)), np.arange(len(val_molecules)),
                                      np.arange(len(test_molecules)), sorted(set(structure_molecules)),
                                      sorted(set(val_molecules)), sorted(set(test_molecules)))
        else:
            self.split = ds.split_indices(structure_molecules, d.split, validation_fraction=d.validation_fraction,
                                          test_fraction=d.test_fraction, seed=cfg.run.seed)
        self.split.train = ds.limit_structures(self.split.train, d.max_structures, cfg.run.seed)
        if len(self.split.validation) == 0:
            raise ConfigError(
                "the validation set is empty (early stopping, best.pt and the EMA need one): raise "
                "data.validation_fraction, or set data.validation_path"
            )
        self.val_path = d.validation_path or d.path
        self.test_path = d.test_path or d.path
        self.data_hash = ds.dataset_sha256(d.path)
        self.val_data_hash = ds.dataset_sha256(d.validation_path) if d.validation_path else self.data_hash

        # The student and its data-derived energy model (reference energies, scale, shift).
        train_arrays = ds.read_subset(d.path, self.split.train)
        m = cfg.model
        train_z = sorted(int(z) for z in np.unique(train_arrays["atomic_numbers"]))
        val_z = ds.dataset_elements(self.val_path, self.split.validation)
        if m.init_from:
            self._init_from_checkpoint(m, train_z, val_z, train_arrays["forces"])
        elif m.elements is not None:
            elements = sorted({to_atomic_number(e) for e in m.elements})
            missing = sorted((set(train_z) | set(val_z)) - set(elements))
            if missing:
                raise ConfigError(f"model.elements = {m.elements} lacks atomic numbers {missing} that occur in "
                                  "the data; add them or set model.elements to null (the data's elements)")
        else:
            elements = train_z
            extra = sorted(set(val_z) - set(elements))
            if extra:
                raise ConfigError(f"validation structures contain elements {extra} that no training structure "
                                  "has; list them in model.elements or change the split")
        if not m.init_from:
            overrides = {k: getattr(m, k) for k in ("hidden", "n_interactions", "cutoff", "n_rbf")
                         if getattr(m, k) is not None}
            self.model = build_student(m.preset, elements=elements, **overrides)
            self.energy_model: EnergyModel = fit_energy_model(
                train_arrays["atomic_numbers"], train_arrays["n_atoms"], train_arrays["energy"],
                train_arrays["forces"], elements)
            apply_energy_model(self.model, self.energy_model)
        from openmm_distill.export.deployed import cast_model

        # The run's dtype, whatever the student came in (a fresh one is float32, a fine-tuned
        # checkpoint may be float64); the energy buffers stay float64.
        self.model = cast_model(self.model, self.dtype)
        self.model.to(self.device)
        # self.model stays the plain student (optimiser, EMA, checkpoints, evaluation use it);
        # self.train_model is what training steps call: the DDP wrapper when distributed. Every rank
        # built the same weights from the same seed; DDP also broadcasts rank 0's at construction.
        self.train_model: nn.Module = self.model
        if self.distributed:
            import warnings

            from torch.nn.parallel import DistributedDataParallel

            # The readout's [1, hidden] weight gets gradients with strides (1, 1) from the double
            # backward; DDP's bucket view has (hidden, 1): the same memory layout, but DDP warns.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=False)  # every parameter gets a gradient: ensure_all_parameters_used

        # Loaders are built once; reseed() fixes each epoch's order from (seed, epoch).
        self.train_loader = ds.make_loader(d.path, self.split.train, d.batch_size, shuffle=True, dtype=self.dtype,
                                           num_workers=d.num_workers, in_memory=d.in_memory)
        self.val_loader = ds.make_loader(self.val_path, self.split.validation, d.validation_batch_size,
                                         shuffle=False, dtype=self.dtype, num_workers=d.num_workers,
                                         in_memory=d.in_memory)
        # Distributed: each rank keeps batches rank, rank + W, ... of the (same) epoch order; training
        # drops the ragged tail so all ranks step equally often. No-ops in a single process.
        self.train_loader = ddp.shard_loader(self.train_loader, drop_ragged=True)
        self.val_loader = ddp.shard_loader(self.val_loader, drop_ragged=False)
        steps_per_epoch = len(self.train_loader)
        if steps_per_epoch == 0:
            raise ConfigError(
                f"{len(self.split.train)} training structures in batches of {d.batch_size} give fewer batches "
                f"than the {ddp.world_size()} processes; lower data.batch_size or start fewer processes"
            )
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(_weight_decay_groups(self.model, o.weight_decay), lr=o.lr,
                                           betas=tuple(o.betas))
        self.schedule = LRSchedule(self.optimizer, o.lr, o.scheduler, total_steps=o.epochs * steps_per_epoch,
                                   warmup_steps=int(math.ceil(o.warmup_epochs * steps_per_epoch)),
                                   min_ratio=o.min_lr_ratio, plateau_factor=o.plateau_factor,
                                   plateau_patience=o.plateau_patience)
        self.ema = ExponentialMovingAverage(self.model, o.ema_decay)
        self.scale = float(self.model.energy_scale)
        # Trainer state (what last.pt restores).
        self.epoch = 0
        self.best_metric = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.stopped_early = False
        self.history: List[Dict[str, float]] = []
        self._hessian_source: Optional[str] = None
        self._prepared = True
        logger.info(
            "student %s: %d parameters, elements %s; %d train / %d validation / %d test structures (split: %s); "
            "energy scale %.4g eV (force RMS), device %s, %s",
            m.preset, count_parameters(self.model), list(self.model.elements), len(self.split.train),
            len(self.split.validation),
            len(self.split.test), self.split.method, self.scale, self.device, cfg.run.dtype,
        )
        if self.distributed:
            logger.info("data-parallel: %d processes (backend %s), %d steps per epoch each, effective batch "
                        "%d x %d = %d structures (optim.lr is not rescaled)", ddp.world_size(),
                        torch.distributed.get_backend(), steps_per_epoch, d.batch_size, ddp.world_size(),
                        d.batch_size * ddp.world_size())

    def _init_from_checkpoint(self, m, train_z: List[int], val_z: List[int], train_forces: np.ndarray) -> None:
        """Fine-tuning: the student, with its weights and energy model, from ``model.init_from``."""
        overrides = [k for k in ("hidden", "n_interactions", "cutoff", "n_rbf", "elements") if getattr(m, k) is not None]
        if overrides:
            raise ConfigError(f"model.init_from={m.init_from} fixes the architecture and elements; set "
                              f"{', '.join('model.' + k for k in overrides)} to null")
        self.model, payload = load_checkpoint(m.init_from)
        if payload.get("preset") and payload["preset"] != m.preset:
            raise ConfigError(f"model.init_from={m.init_from} holds a {payload['preset']!r} student but model.preset is "
                              f"{m.preset!r}; set model.preset={payload['preset']}")
        elements = list(self.model.elements)
        missing = sorted((set(train_z) | set(val_z)) - set(elements))
        if missing:
            raise ConfigError(f"the data has atomic numbers {missing} that the student in {m.init_from} does not "
                              f"support (it has {elements}); fine-tuning cannot add elements")
        forces = np.asarray(train_forces, dtype=np.float64)
        self.energy_model = energy_model_of(self.model, float(np.sqrt(np.mean(forces * forces))))
        logger.info("fine-tuning from %s (preset %s): weights and energy model kept", m.init_from,
                    payload.get("preset"))

    def _setup_hessian(self) -> None:
        """Decide where teacher Hessian rows come from (dataset or finite differences) and check the teacher."""
        lo = self.config.loss
        if lo.hessian_weight <= 0 or self._hessian_source is not None:
            return
        sample = next(iter(self.train_loader))
        if "hessian_row_index" in sample and "hessian_row" in sample:
            self._hessian_source = "dataset"
            return
        if self.teacher is None:
            from openmm_distill.teachers import get_teacher

            name = lo.hessian_teacher or self.dataset_metadata.get("teacher", {}).get("name") or "gfn2-xtb"
            self.teacher = get_teacher(name, **lo.hessian_teacher_options)
        # Check once that this teacher reproduces the labels it is meant to extend.
        b = sample
        n0 = int(b["n_atoms"][0])
        box = b["box"][0].double().numpy() if "box" in b else None
        check_teacher_matches_labels(self.teacher, b["atomic_numbers"][:n0].numpy(),
                                     b["positions"][:n0].double().numpy(), b["forces"][:n0].double().numpy(), box,
                                     tolerance=1e-3 if self.dtype == torch.float64 else 1e-2)
        self._hessian_source = "teacher"
        logger.info("Hessian rows: finite differences of %r (step %.3g Angstrom)", self.teacher, lo.hessian_step)

    # ------------------------------------------------------------- forward pass
    def _energy_forces(self, model: nn.Module, batch: Dict[str, torch.Tensor], create_graph: bool):
        """Energies [B] (eV), forces [N, 3] (eV/Angstrom), the energy gradient and the position leaf."""
        # ``model`` may be the DDP wrapper (training): attributes live on the wrapped student, the
        # forward call goes through the wrapper.
        core = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
        species = core.species_of(batch["atomic_numbers"])
        positions = batch["positions"].detach().requires_grad_(True)
        n_atoms = batch["n_atoms"]
        edge_index, shifts = batch_neighbor_list(positions, batch["batch"], n_atoms, core.cutoff, batch.get("box"))
        energy = model(species, positions, edge_index, shifts, batch["batch"], int(n_atoms.shape[0]))
        (grad,) = torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)
        return energy, -grad, grad, positions

    def _loss(self, batch, energy, forces, hessian=None):
        lo = self.config.loss
        return distillation_loss(
            energy, batch["energy"], batch["n_atoms"], forces, batch["forces"], self.scale,
            energy_weight=lo.energy_weight, force_weight=lo.force_weight, angular_weight=lo.angular_weight,
            angular_min_force=lo.angular_min_force, hessian=hessian, hessian_weight=lo.hessian_weight,
        )

    def _hessian_term(self, batch, grad, positions, generator) -> Optional[torch.Tensor]:
        lo = self.config.loss
        if lo.hessian_weight <= 0:
            return None
        structures, rows = sample_rows(batch["n_atoms"], lo.hessian_structures_per_batch, generator)
        if self._hessian_source == "dataset":
            # Structures without a stored row (index -1) are skipped.
            stored = batch["hessian_row_index"].cpu()
            structures = structures[stored[structures] >= 0]
            if len(structures) == 0:
                return None
            rows, target = dataset_rows_for_batch(batch, structures)
        else:
            target = teacher_rows_for_batch(self.teacher, batch, structures, rows, lo.hessian_step)
        pred = student_hessian_rows(grad, positions, batch["n_atoms"], structures, rows)
        return hessian_row_loss(pred, target)

    # ---------------------------------------------------------------- epochs
    def _progress(self, iterable, desc: str, total: int):
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, leave=False,
                    disable=not self.config.run.progress or not ddp.is_main(), dynamic_ncols=True)

    def train_epoch(self, epoch: int) -> Dict[str, float]:
        """One pass over the training structures (raw weights); returns running metrics and mean losses."""
        cfg = self.config
        self.model.train()
        ds.reseed(self.train_loader, cfg.run.seed, epoch)
        # Each data-parallel rank samples its own Hessian rows (rank 0 and single processes: stream 1).
        hessian_generator = epoch_generator(cfg.run.seed, epoch, _HESSIAN_STREAM + _RANK_STREAM_STRIDE * ddp.rank())
        acc = MetricAccumulator(cfg.loss.angular_min_force)
        bar = self._progress(self.train_loader, f"epoch {epoch} train", len(self.train_loader))
        for raw in bar:
            batch = to_device(raw, self.device, self.dtype)
            energy, forces, grad, positions = self._energy_forces(self.train_model, batch, create_graph=True)
            hessian = self._hessian_term(batch, grad, positions, hessian_generator)
            terms = self._loss(batch, energy, forces, hessian)
            if not torch.isfinite(terms.total):
                raise TrainingDivergedError(
                    f"non-finite loss at epoch {epoch} ({terms.detached()}); lower optim.lr or check the data"
                )
            self.optimizer.zero_grad(set_to_none=True)
            total = terms.total
            if self.distributed:
                # DDP (find_unused_parameters=False) needs a gradient for every parameter; a zero-weighted
                # term gives one to any the loss might not reach (a safeguard: today all are reached).
                # Value and gradients are unchanged.
                total = ddp.ensure_all_parameters_used(total, self.model)
            total.backward()  # DDP averages the gradients over ranks here
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
            self.optimizer.step()
            self.schedule.step()
            self.ema.update(self.model)
            acc.update(energy.detach(), batch["energy"], batch["n_atoms"], forces.detach(), batch["forces"])
            acc.add_losses(terms.detached())
            bar.set_postfix(loss=f"{float(terms.total.detach()):.4g}")
        # Distributed: sums over every rank's batches (no-op in a single process).
        return ddp.all_reduce_accumulator(acc).compute()

    def evaluate_loader(self, model: nn.Module, loader, desc: str = "validation") -> Dict[str, float]:
        """Metrics and mean losses of ``model`` over a loader (no parameter gradients, no Hessian term)."""
        model.eval()
        acc = MetricAccumulator(self.config.loss.angular_min_force)
        requires = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            for raw in self._progress(loader, desc, len(loader)):
                batch = to_device(raw, self.device, self.dtype)
                energy, forces, _, _ = self._energy_forces(model, batch, create_graph=False)
                terms = self._loss(batch, energy.detach(), forces.detach())
                acc.update(energy.detach(), batch["energy"], batch["n_atoms"], forces.detach(), batch["forces"])
                acc.add_losses(terms.detached())
        finally:
            for p, r in zip(model.parameters(), requires):
                p.requires_grad_(r)
        # Distributed: loaders are sharded by rank; adding the sums gives every rank the full-set metrics.
        return ddp.all_reduce_accumulator(acc).compute()

    def validate(self) -> Dict[str, float]:
        """Validation metrics with the EMA weights."""
        with self.ema.average_parameters(self.model):
            return self.evaluate_loader(self.model, self.val_loader)

    # ------------------------------------------------------------ checkpoints
    def _common_extra(self) -> Dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "data_sha256": self.data_hash,
            "validation_data_sha256": self.val_data_hash,
            "energy_model": self.energy_model.as_dict(),
            "split": self.split.summary(),
        }

    def _provenance(self) -> Dict[str, Any]:
        return {
            "teacher": self.dataset_metadata.get("teacher", {}),
            "data_path": self.config.data.path,
            "data_sha256": self.data_hash,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def _trainer_state(self) -> Dict[str, Any]:
        return {
            "epoch": self.epoch,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "ema": self.ema.state_dict(),
            "rng": capture_rng_state(),
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "history": [dict(r) for r in self.history],
        }

    def save_last(self) -> None:
        """Write ``last.pt``: raw weights and the full trainer state (atomic; rank 0 only)."""
        if not ddp.is_main():
            return
        extra = self._common_extra()
        extra["weights"] = "raw"
        extra["trainer_state"] = self._trainer_state()
        save_checkpoint(self.output_dir / LAST, self.model, preset=self.config.model.preset, extra=extra,
                        provenance=self._provenance())

    def save_best(self, val: Dict[str, float]) -> None:
        """Write ``best.pt``: the EMA weights that produced ``val`` (atomic; rank 0 only)."""
        if not ddp.is_main():
            return
        extra = self._common_extra()
        extra.update({"weights": "ema", "epoch": self.epoch, "validation_metrics": dict(val)})
        with self.ema.average_parameters(self.model):
            save_checkpoint(self.output_dir / BEST, self.model, preset=self.config.model.preset, extra=extra,
                            provenance=self._provenance())

    def _restore(self, path: Path) -> None:
        model, payload = load_checkpoint(path)
        extra = payload.get("extra", {})
        state = extra.get("trainer_state")
        if state is None:
            raise ConfigError(f"{path} has no trainer state (is it a best.pt?); resume needs last.pt")
        if extra.get("data_sha256") != self.data_hash:
            raise ConfigError(
                f"cannot resume: {path} was trained on data with hash {extra.get('data_sha256')}, but "
                f"data.path {self.config.data.path} has hash {self.data_hash}"
            )
        if list(payload["elements"]) != list(self.model.elements):
            raise ConfigError(f"cannot resume: checkpoint elements {payload['elements']} differ from "
                              f"{list(self.model.elements)}")
        old = extra.get("config", {})
        new = self.config.to_dict()
        changed = [f"{s}.{k}" for s in new for k in new[s] if old.get(s, {}).get(k) != new[s][k]]
        if changed:
            logger.warning("resuming with changed config keys: %s", ", ".join(changed))
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.ema.load_state_dict(state["ema"])
        restore_rng_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.best_metric = float(state["best_metric"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.stopped_early = bool(state["stopped_early"])
        self.history = [dict(r) for r in state["history"]]
        logger.info("resumed from %s after epoch %d", path, self.epoch)

    # ------------------------------------------------------------------- fit
    def fit(self, resume: bool = False, *, overwrite: bool = False, stop_after: Optional[int] = None) -> TrainResult:
        """Train until ``optim.epochs`` or early stopping, then compile the best EMA model.

        Parameters
        ----------
        resume : bool
            Continue from ``output_dir/last.pt`` (exactly; see the module docstring).
        overwrite : bool
            Start afresh even if ``output_dir`` holds a previous run's ``last.pt``.
        stop_after : int, optional
            Stop after this many completed epochs without finishing (no compile), as if
            the job had been killed; for tests and time-sliced clusters.

        Returns
        -------
        TrainResult
        """
        self._prepare()
        cfg = self.config
        last = self.output_dir / LAST
        if resume:
            if not last.is_file():
                raise ConfigError(f"--resume: no {LAST} in {self.output_dir} to resume from")
            self._restore(last)
        elif last.is_file() and not overwrite:
            raise ConfigError(
                f"{self.output_dir} already holds a run ({LAST}); continue it with --resume, start over with "
                "--overwrite, or set run.output_dir to a new folder"
            )
        # Distributed: every rank has checked last.pt before rank 0 may write anything.
        ddp.barrier()
        if ddp.is_main():
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.output_dir / CONFIG_FILE)
        self._setup_hessian()
        log = MetricLog(self.output_dir, tensorboard=cfg.run.tensorboard) if ddp.is_main() else _NoLog()
        if cfg.run.tensorboard and not log.tensorboard_enabled and ddp.is_main():
            logger.info("TensorBoard is not installed (pip install tensorboard); logging to metrics.csv only")
        log.set_rows(self.history)
        try:
            while self.epoch < cfg.optim.epochs and not self.stopped_early:
                if stop_after is not None and self.epoch >= stop_after:
                    self._check_ranks()
                    return self._result(finished=False)
                epoch = self.epoch + 1
                t0 = time.perf_counter()
                train = self.train_epoch(epoch)
                t_train = time.perf_counter() - t0
                val = self.validate()
                self.epoch = epoch
                monitored = val["force_mae"]
                improved = monitored < self.best_metric
                if improved:
                    self.best_metric, self.best_epoch, self.bad_epochs = monitored, epoch, 0
                else:
                    self.bad_epochs += 1
                self.schedule.epoch_end(monitored)
                row = {"epoch": epoch, "lr": self.schedule.lr, "time_s": time.perf_counter() - t0,
                       "train_time_s": t_train}
                row.update({f"train_{k}": _finite(v) for k, v in train.items() if k != "n_structures"})
                row.update({f"val_{k}": _finite(v) for k, v in val.items() if k != "n_structures"})
                self.history.append(row)
                log.append(row)
                if improved:
                    self.save_best(val)
                patience = cfg.optim.early_stopping_patience
                if patience and self.bad_epochs >= patience:
                    self.stopped_early = True
                self.save_last()
                logger.info(
                    "epoch %d/%d  loss %.4g/%.4g  force MAE %.4f/%.4f eV/A  E MAE %.2f/%.2f meV/atom  "
                    "angle %.1f/%.1f deg  lr %.3g  %.1fs%s",
                    epoch, cfg.optim.epochs, train["loss"], val["loss"], train["force_mae"], val["force_mae"],
                    train["energy_mae_mev_per_atom"], val["energy_mae_mev_per_atom"], train["angle_deg"],
                    val["angle_deg"], row["lr"], row["time_s"], "  *" if improved else "",
                )
            if self.stopped_early:
                logger.info("early stopping: no improvement of %s for %d epochs (best epoch %d)", MONITOR,
                            cfg.optim.early_stopping_patience, self.best_epoch)
            self._check_ranks()
            return self._finish()
        finally:
            log.close()

    def _check_ranks(self) -> None:
        """Distributed: check that all ranks hold the same weights (and write checksums for tests)."""
        if not (self.distributed or os.environ.get(CHECKSUM_ENV)):
            return
        sums = ddp.check_parameters_in_sync(self.model)
        if os.environ.get(CHECKSUM_ENV):
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / f"param_checksum.rank{ddp.rank()}.txt").write_text(sums[ddp.rank()] + "\n")

    # ---------------------------------------------------------------- finish
    def _result(self, finished: bool, test_metrics=None, compiled=None) -> TrainResult:
        best_row = next((r for r in self.history if r["epoch"] == self.best_epoch), {})
        best = {k[4:]: v for k, v in best_row.items() if k.startswith("val_")}
        return TrainResult(output_dir=self.output_dir, epochs_run=self.epoch, best_epoch=self.best_epoch,
                           best_metrics=best, test_metrics=test_metrics or {}, stopped_early=self.stopped_early,
                           finished=finished, compiled_path=compiled, history=[dict(r) for r in self.history])

    def _finish(self) -> TrainResult:
        """Plot, evaluate best.pt on the test structures, compile it, write summary.json."""
        cfg = self.config
        from openmm_distill.training.plots import plot_history

        if self.history and ddp.is_main():
            plot_history(self.history, self.output_dir / PLOT,
                         title=f"{cfg.model.preset} student: {Path(cfg.data.path).name}")
        ddp.barrier()  # distributed: rank 0 has finished writing best.pt
        if not (self.output_dir / BEST).is_file():
            raise DistillError(f"no {BEST} in {self.output_dir}: no epoch produced a finite validation force MAE")
        best_model, payload = load_checkpoint(self.output_dir / BEST)
        best_model.to(self.device)
        if self.dtype == torch.float64:
            from openmm_distill.export.deployed import cast_model

            best_model = cast_model(best_model, torch.float64)
        test_metrics: Dict[str, float] = {}
        if len(self.split.test):
            loader = ds.make_loader(self.test_path, self.split.test, cfg.data.validation_batch_size, shuffle=False,
                                    dtype=self.dtype, num_workers=cfg.data.num_workers, in_memory=cfg.data.in_memory)
            loader = ddp.shard_loader(loader, drop_ragged=False)  # distributed: sharded, sums reduced
            test_metrics = {k: v for k, v in self.evaluate_loader(best_model, loader, "test").items()
                            if k in METRIC_NAMES or k == "n_structures"}
        result = self._result(finished=True, test_metrics=test_metrics)
        if not ddp.is_main():
            # Distributed: rank 0 compiles and writes summary.json; wait until it has.
            ddp.barrier()
            result.compiled_path = self.output_dir / COMPILED if cfg.run.compile else None
            return result
        if cfg.run.compile:
            from openmm_distill.export import compile_student

            metadata = {
                "teacher": self.dataset_metadata.get("teacher", {}),
                # Same key as openmm_distill.export.student.metadata_summary shows.
                "training_data_hash": f"sha256:{self.data_hash}",
                "training_data_path": cfg.data.path,
                "validation_data_hash": f"sha256:{self.val_data_hash}",
                "training_config": cfg.to_dict(),
                "validation_metrics": {k: v for k, v in result.best_metrics.items() if k in METRIC_NAMES},
                "test_metrics": test_metrics,
                "best_epoch": self.best_epoch,
                "epochs_run": self.epoch,
                "data_split": self.split.summary(),
                "energy_model": self.energy_model.as_dict(),
            }
            compile_student(copy.deepcopy(best_model).cpu(), self.output_dir / COMPILED,
                            dtype=cfg.run.compile_dtype, preset=cfg.model.preset, metadata=metadata)
            result.compiled_path = self.output_dir / COMPILED
            logger.info("compiled student written to %s", result.compiled_path)
        summary = {
            "output_dir": str(self.output_dir),
            "preset": cfg.model.preset,
            "epochs_run": self.epoch,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "validation_metrics": result.best_metrics,
            "test_metrics": test_metrics,
            "data_sha256": self.data_hash,
            "compiled": str(result.compiled_path) if result.compiled_path else None,
            "n_parameters": count_parameters(best_model),
        }
        with open(self.output_dir / SUMMARY, "w") as handle:
            json.dump(summary, handle, indent=1)
        ddp.barrier()  # distributed: release the other ranks (see above)
        return result


class _NoLog:
    """Stands in for :class:`MetricLog` on data-parallel ranks other than 0 (they write no files)."""

    tensorboard_enabled = False

    def set_rows(self, rows) -> None:
        pass

    def append(self, row) -> None:
        pass

    def close(self) -> None:
        pass


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False, teacher=None) -> TrainResult:
    """Train a student from a config (see :class:`Trainer`); the one-call entry point.

    Under ``torchrun`` the process group is left at the end (a no-op in a single process).
    """
    try:
        return Trainer(config, teacher=teacher).fit(resume=resume, overwrite=overwrite)
    finally:
        ddp.cleanup()
