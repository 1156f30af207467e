"""The training loop: epochs of AdamW steps, validation with the EMA weights, checkpoints.

One :class:`Trainer` runs one recipe (:class:`~openmm_distill.training.config.TrainConfig`)
in one output folder. What it needs before the first step is built by
:func:`openmm_distill.training.setup.prepare`; what it must remember to
continue is :class:`openmm_distill.training.state.TrainingState`; compiling
``best.pt`` and writing ``summary.json`` afterwards is the caller's step
(:func:`openmm_distill.training.finish.finish_run`)::

    output_dir/
        config.yaml        the resolved config (every key, absolute paths)
        last.pt            raw weights + full trainer state (resume from here)
        best.pt            EMA weights of the epoch with the lowest validation force MAE
        metrics.csv        one row per epoch (train and validation metrics)
        loss_curves.png    the same, plotted
        student.pt         best.pt compiled to TorchScript for OpenMM (finish_run)
        summary.json       final numbers (best epoch, validation and test metrics, paths) (finish_run)

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

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from openmm_distill.errors import ConfigError, DistillError
from openmm_distill.metrics import METRIC_NAMES, MetricAccumulator
from openmm_distill.models import load_checkpoint
from openmm_distill.models.casting import cast_model
from openmm_distill.training import distributed as ddp
from openmm_distill.training.batching import batch_neighbor_list, to_device
from openmm_distill.training.config import TrainConfig, resolve_paths, save_config
from openmm_distill.training.datasets import reseed
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
from openmm_distill.training.seeding import epoch_generator
from openmm_distill.training.setup import TrainingSetup, make_test_loader, prepare, resolve_device
from openmm_distill.training.state import BEST, LAST, TrainingState, restore, save_best, save_last

logger = logging.getLogger("openmm_distill.training")

CONFIG_FILE = "config.yaml"
PLOT = "loss_curves.png"
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
        Validation metrics (EMA weights) at ``best_epoch``; see :mod:`openmm_distill.metrics`.
    test_metrics : dict
        Metrics of ``best.pt`` on the held-out test structures (empty when there are none).
    stopped_early : bool
    finished : bool
        False when the run was stopped on purpose before the end (``stop_after``).
    compiled_path : pathlib.Path or None
        ``student.pt`` once :func:`openmm_distill.training.finish.finish_run` compiled it.
    history : list of dict
        The rows of ``metrics.csv``.
    teacher : dict
        The training data's teacher (from the dataset's metadata).
    data_sha256, validation_data_sha256 : str
        Content hashes of the training and validation data.
    data_split : dict
        How the structures were split (molecule names or structure indices per part).
    energy_model : dict
        The student's reference energies, scale and shift (eV).
    config : TrainConfig or None
        The run's resolved config (absolute paths).
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
    teacher: Dict[str, Any] = field(default_factory=dict)
    data_sha256: str = ""
    validation_data_sha256: str = ""
    data_split: Dict[str, Any] = field(default_factory=dict)
    energy_model: Dict[str, Any] = field(default_factory=dict)
    config: Optional[TrainConfig] = None

    @property
    def best_checkpoint(self) -> Path:
        return self.output_dir / BEST


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
    >>> from openmm_distill.training import Trainer, finish_run, load_config
    >>> result = finish_run(Trainer(load_config(find_recipe("tiny"), ["data.path=data.h5"])).fit())  # doctest: +SKIP
    >>> result.best_metrics["force_mae"], result.compiled_path                                        # doctest: +SKIP
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
        self.setup: Optional[TrainingSetup] = None
        self.state = TrainingState()
        self._hessian_source: Optional[str] = None

    def prepare(self) -> TrainingSetup:
        """Build (once) the data split, student, loaders, optimiser, schedule and EMA."""
        if self.setup is None:
            self.setup = prepare(self.config, self.device, self.dtype, self.distributed)
        return self.setup

    def _setup_hessian(self) -> None:
        """Decide where teacher Hessian rows come from (dataset or finite differences) and check the teacher."""
        lo = self.config.loss
        if lo.hessian_weight <= 0 or self._hessian_source is not None:
            return
        sample = next(iter(self.setup.train_loader))
        if "hessian_row_index" in sample and "hessian_row" in sample:
            self._hessian_source = "dataset"
            return
        if self.teacher is None:
            from openmm_distill.teachers import get_teacher

            name = lo.hessian_teacher or self.setup.data.dataset_metadata.get("teacher", {}).get("name") or "gfn2-xtb"
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
            energy, batch["energy"], batch["n_atoms"], forces, batch["forces"], self.setup.scale,
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
        cfg, setup = self.config, self.setup
        setup.model.train()
        reseed(setup.train_loader, cfg.run.seed, epoch)
        # Each data-parallel rank samples its own Hessian rows (rank 0 and single processes: stream 1).
        hessian_generator = epoch_generator(cfg.run.seed, epoch, _HESSIAN_STREAM + _RANK_STREAM_STRIDE * ddp.rank())
        acc = MetricAccumulator(cfg.loss.angular_min_force)
        bar = self._progress(setup.train_loader, f"epoch {epoch} train", len(setup.train_loader))
        for raw in bar:
            batch = to_device(raw, self.device, self.dtype)
            energy, forces, grad, positions = self._energy_forces(setup.train_model, batch, create_graph=True)
            hessian = self._hessian_term(batch, grad, positions, hessian_generator)
            terms = self._loss(batch, energy, forces, hessian)
            if not torch.isfinite(terms.total):
                raise TrainingDivergedError(
                    f"non-finite loss at epoch {epoch} ({terms.detached()}); lower optim.lr or check the data"
                )
            setup.optimizer.zero_grad(set_to_none=True)
            total = terms.total
            if self.distributed:
                # DDP (find_unused_parameters=False) needs a gradient for every parameter; a zero-weighted
                # term gives one to any the loss might not reach (a safeguard: today all are reached).
                # Value and gradients are unchanged.
                total = ddp.ensure_all_parameters_used(total, setup.model)
            total.backward()  # DDP averages the gradients over ranks here
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(setup.model.parameters(), cfg.optim.grad_clip)
            setup.optimizer.step()
            setup.schedule.step()
            setup.ema.update(setup.model)
            acc.update(energy.detach(), batch["energy"], batch["n_atoms"], forces.detach(), batch["forces"])
            acc.add_losses(terms.detached())
            bar.set_postfix(loss=f"{float(terms.total.detach()):.4g}")
        # Distributed: sums over every rank's batches (no-op in a single process).
        return ddp.all_reduce_accumulator(acc).compute()

    def evaluate_loader(self, model: nn.Module, loader, desc: str = "validation") -> Dict[str, float]:
        """Metrics and mean losses of ``model`` over a loader (no parameter gradients, no Hessian term)."""
        self.prepare()  # the loss needs the student's energy scale
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
        with self.setup.ema.average_parameters(self.setup.model):
            return self.evaluate_loader(self.setup.model, self.setup.val_loader)

    # ------------------------------------------------------------------- fit
    def fit(self, resume: bool = False, *, overwrite: bool = False, stop_after: Optional[int] = None) -> TrainResult:
        """Train until ``optim.epochs`` or early stopping, then evaluate ``best.pt`` on the test structures.

        Compiling ``best.pt`` and writing ``summary.json`` is the caller's next step
        (:func:`openmm_distill.training.finish.finish_run`).

        Parameters
        ----------
        resume : bool
            Continue from ``output_dir/last.pt`` (exactly; see the module docstring).
        overwrite : bool
            Start afresh even if ``output_dir`` holds a previous run's ``last.pt``.
        stop_after : int, optional
            Stop after this many completed epochs without finishing, as if the job had
            been killed; for tests and time-sliced clusters.

        Returns
        -------
        TrainResult
        """
        setup = self.prepare()
        cfg, state = self.config, self.state
        last = self.output_dir / LAST
        if resume:
            if not last.is_file():
                raise ConfigError(f"--resume: no {LAST} in {self.output_dir} to resume from")
            restore(last, cfg, setup, state)
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
        log.set_rows(state.history)
        try:
            while state.epoch < cfg.optim.epochs and not state.stopped_early:
                if stop_after is not None and state.epoch >= stop_after:
                    self._check_ranks()
                    return self._result(finished=False)
                self._run_epoch(state.epoch + 1, log)
            if state.stopped_early:
                logger.info("early stopping: no improvement of %s for %d epochs (best epoch %d)", MONITOR,
                            cfg.optim.early_stopping_patience, state.best_epoch)
            self._check_ranks()
            return self._finish()
        finally:
            log.close()

    def _run_epoch(self, epoch: int, log) -> None:
        """Train one epoch, validate, record, checkpoint."""
        cfg, setup, state = self.config, self.setup, self.state
        t0 = time.perf_counter()
        train = self.train_epoch(epoch)
        t_train = time.perf_counter() - t0
        val = self.validate()
        improved = state.record_validation(epoch, val["force_mae"])
        setup.schedule.epoch_end(val["force_mae"])
        row = {"epoch": epoch, "lr": setup.schedule.lr, "time_s": time.perf_counter() - t0, "train_time_s": t_train}
        row.update({f"train_{k}": _finite(v) for k, v in train.items() if k != "n_structures"})
        row.update({f"val_{k}": _finite(v) for k, v in val.items() if k != "n_structures"})
        state.history.append(row)
        log.append(row)
        if improved:
            save_best(self.output_dir, cfg, setup, state, val)
        patience = cfg.optim.early_stopping_patience
        if patience and state.bad_epochs >= patience:
            state.stopped_early = True
        save_last(self.output_dir, cfg, setup, state)
        logger.info(
            "epoch %d/%d  loss %.4g/%.4g  force MAE %.4f/%.4f eV/A  E MAE %.2f/%.2f meV/atom  "
            "angle %.1f/%.1f deg  lr %.3g  %.1fs%s",
            epoch, cfg.optim.epochs, train["loss"], val["loss"], train["force_mae"], val["force_mae"],
            train["energy_mae_mev_per_atom"], val["energy_mae_mev_per_atom"], train["angle_deg"],
            val["angle_deg"], row["lr"], row["time_s"], "  *" if improved else "",
        )

    def _check_ranks(self) -> None:
        """Distributed: check that all ranks hold the same weights (and write checksums for tests)."""
        if not (self.distributed or os.environ.get(CHECKSUM_ENV)):
            return
        sums = ddp.check_parameters_in_sync(self.setup.model)
        if os.environ.get(CHECKSUM_ENV):
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / f"param_checksum.rank{ddp.rank()}.txt").write_text(sums[ddp.rank()] + "\n")

    # ---------------------------------------------------------------- finish
    def _result(self, finished: bool, test_metrics=None) -> TrainResult:
        state, plan = self.state, self.setup.data
        best_row = next((r for r in state.history if r["epoch"] == state.best_epoch), {})
        best = {k[4:]: v for k, v in best_row.items() if k.startswith("val_")}
        return TrainResult(output_dir=self.output_dir, epochs_run=state.epoch, best_epoch=state.best_epoch,
                           best_metrics=best, test_metrics=test_metrics or {}, stopped_early=state.stopped_early,
                           finished=finished, history=[dict(r) for r in state.history],
                           teacher=plan.dataset_metadata.get("teacher", {}), data_sha256=plan.data_hash,
                           validation_data_sha256=plan.val_data_hash, data_split=plan.split.summary(),
                           energy_model=self.setup.energy_model.as_dict(), config=self.config)

    def _finish(self) -> TrainResult:
        """Plot the history and evaluate best.pt on the test structures."""
        cfg = self.config
        from openmm_distill.training.plots import plot_history

        if self.state.history and ddp.is_main():
            plot_history(self.state.history, self.output_dir / PLOT,
                         title=f"{cfg.model.preset} student: {Path(cfg.data.path).name}")
        ddp.barrier()  # distributed: rank 0 has finished writing best.pt
        if not (self.output_dir / BEST).is_file():
            raise DistillError(f"no {BEST} in {self.output_dir}: no epoch produced a finite validation force MAE")
        test_metrics: Dict[str, float] = {}
        if len(self.setup.data.split.test):
            best_model, _ = load_checkpoint(self.output_dir / BEST)
            best_model.to(self.device)
            if self.dtype == torch.float64:
                best_model = cast_model(best_model, torch.float64)
            loader = make_test_loader(cfg, self.setup.data, self.dtype)
            test_metrics = {k: v for k, v in self.evaluate_loader(best_model, loader, "test").items()
                            if k in METRIC_NAMES or k == "n_structures"}
        return self._result(finished=True, test_metrics=test_metrics)


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

    Returns the :class:`TrainResult` of the finished run; compile it with
    :func:`openmm_distill.training.finish.finish_run` (rank 0 only). Under ``torchrun``
    the process group is left at the end (a no-op in a single process).
    """
    try:
        return Trainer(config, teacher=teacher).fit(resume=resume, overwrite=overwrite)
    finally:
        ddp.cleanup()
