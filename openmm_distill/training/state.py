"""A training run's checkpointable state, and how it goes into ``last.pt`` and ``best.pt`` and back.

:class:`TrainingState` holds the counters a run needs to continue exactly
where it stopped (epoch, best metric, early-stopping count, history); together
with the optimiser, schedule, weight average and RNG states of the
:class:`~openmm_distill.training.setup.TrainingSetup` it is what ``last.pt``
stores. Checkpoint writes are atomic (:func:`openmm_distill.models.save_checkpoint`)
and happen on data-parallel rank 0 only.
"""
from __future__ import annotations

import datetime as _dt
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

from openmm_distill.errors import ConfigError
from openmm_distill.models import load_checkpoint, save_checkpoint
from openmm_distill.training import distributed as ddp
from openmm_distill.training.config import TrainConfig
from openmm_distill.training.seeding import capture_rng_state, restore_rng_state
from openmm_distill.training.setup import TrainingSetup

logger = logging.getLogger("openmm_distill.training")

LAST = "last.pt"
BEST = "best.pt"


@dataclass
class TrainingState:
    """Where a run stands.

    Attributes
    ----------
    epoch : int
        Completed epochs.
    best_metric : float
        Lowest validation force MAE so far (eV/Angstrom).
    best_epoch : int
        Epoch (1-based) of that value; the epoch ``best.pt`` holds.
    bad_epochs : int
        Epochs since the last improvement (early stopping counts them).
    stopped_early : bool
    history : list of dict
        One row per epoch (the rows of ``metrics.csv``).
    """

    epoch: int = 0
    best_metric: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    history: List[Dict[str, float]] = field(default_factory=list)

    def record_validation(self, epoch: int, monitored: float) -> bool:
        """Count epoch ``epoch`` with validation metric ``monitored``; returns whether it improved."""
        self.epoch = epoch
        improved = monitored < self.best_metric
        if improved:
            self.best_metric, self.best_epoch, self.bad_epochs = monitored, epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    def state_dict(self, setup: TrainingSetup) -> Dict[str, Any]:
        """Everything ``last.pt`` needs to continue: these counters, optimiser, schedule, EMA and RNG states."""
        return {
            "epoch": self.epoch,
            "optimizer": setup.optimizer.state_dict(),
            "schedule": setup.schedule.state_dict(),
            "ema": setup.ema.state_dict(),
            "rng": capture_rng_state(),
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "history": [dict(r) for r in self.history],
        }

    def load_state_dict(self, state: Dict[str, Any], setup: TrainingSetup) -> None:
        """Restore what :meth:`state_dict` saved (into ``setup``'s optimiser, schedule and EMA, and the RNGs)."""
        setup.optimizer.load_state_dict(state["optimizer"])
        setup.schedule.load_state_dict(state["schedule"])
        setup.ema.load_state_dict(state["ema"])
        restore_rng_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.best_metric = float(state["best_metric"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.stopped_early = bool(state["stopped_early"])
        self.history = [dict(r) for r in state["history"]]


def _common_extra(cfg: TrainConfig, setup: TrainingSetup) -> Dict[str, Any]:
    plan = setup.data
    return {
        "config": cfg.to_dict(),
        "data_sha256": plan.data_hash,
        "validation_data_sha256": plan.val_data_hash,
        "energy_model": setup.energy_model.as_dict(),
        "split": plan.split.summary(),
    }


def _provenance(cfg: TrainConfig, setup: TrainingSetup) -> Dict[str, Any]:
    return {
        "teacher": setup.data.dataset_metadata.get("teacher", {}),
        "data_path": cfg.data.path,
        "data_sha256": setup.data.data_hash,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def save_last(output_dir: Path, cfg: TrainConfig, setup: TrainingSetup, state: TrainingState) -> None:
    """Write ``last.pt``: raw weights and the full run state (atomic; rank 0 only)."""
    if not ddp.is_main():
        return
    extra = _common_extra(cfg, setup)
    extra["weights"] = "raw"
    extra["trainer_state"] = state.state_dict(setup)
    save_checkpoint(Path(output_dir) / LAST, setup.model, preset=cfg.model.preset, extra=extra,
                    provenance=_provenance(cfg, setup))


def save_best(output_dir: Path, cfg: TrainConfig, setup: TrainingSetup, state: TrainingState,
              val: Dict[str, float]) -> None:
    """Write ``best.pt``: the EMA weights that produced the validation metrics ``val`` (atomic; rank 0 only)."""
    if not ddp.is_main():
        return
    extra = _common_extra(cfg, setup)
    extra.update({"weights": "ema", "epoch": state.epoch, "validation_metrics": dict(val)})
    with setup.ema.average_parameters(setup.model):
        save_checkpoint(Path(output_dir) / BEST, setup.model, preset=cfg.model.preset, extra=extra,
                        provenance=_provenance(cfg, setup))


def restore(path: Path, cfg: TrainConfig, setup: TrainingSetup, state: TrainingState) -> None:
    """Continue from ``last.pt``: weights into ``setup.model``, the rest into ``setup`` and ``state``.

    Raises
    ------
    ConfigError
        When the file holds no run state (a ``best.pt``), or was trained on other data or elements.
    """
    _, payload = load_checkpoint(path)
    extra = payload.get("extra", {})
    saved = extra.get("trainer_state")
    if saved is None:
        raise ConfigError(f"{path} has no trainer state (is it a best.pt?); resume needs last.pt")
    if extra.get("data_sha256") != setup.data.data_hash:
        raise ConfigError(
            f"cannot resume: {path} was trained on data with hash {extra.get('data_sha256')}, but "
            f"data.path {cfg.data.path} has hash {setup.data.data_hash}"
        )
    if list(payload["elements"]) != list(setup.model.elements):
        raise ConfigError(f"cannot resume: checkpoint elements {payload['elements']} differ from "
                          f"{list(setup.model.elements)}")
    old = extra.get("config", {})
    new = cfg.to_dict()
    changed = [f"{s}.{k}" for s in new for k in new[s] if old.get(s, {}).get(k) != new[s][k]]
    if changed:
        logger.warning("resuming with changed config keys: %s", ", ".join(changed))
    setup.model.load_state_dict(payload["state_dict"])
    state.load_state_dict(saved, setup)
    logger.info("resumed from %s after epoch %d", path, state.epoch)
