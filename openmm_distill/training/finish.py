"""After training: compile ``best.pt`` to the deployed student and write ``summary.json``.

Compiling is its own step (as in nequip): :meth:`Trainer.fit
<openmm_distill.training.trainer.Trainer.fit>` stops at ``best.pt`` and its
test metrics, and the caller (``openmm-distill train``, the pipeline's train
stage, a notebook) calls :func:`finish_run` on the result. Under ``torchrun``
only rank 0 calls it.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any, Dict

import torch

from openmm_distill.metrics import METRIC_NAMES
from openmm_distill.models import count_parameters, load_checkpoint
from openmm_distill.models.casting import cast_model
from openmm_distill.training.config import TrainConfig
from openmm_distill.training.state import BEST
from openmm_distill.training.trainer import TrainResult

logger = logging.getLogger("openmm_distill.training")

COMPILED = "student.pt"
SUMMARY = "summary.json"


def compiled_metadata(result: TrainResult, cfg: TrainConfig) -> Dict[str, Any]:
    """What the compiled student records about its training (teacher, data, split, metrics)."""
    return {
        "teacher": result.teacher,
        # Same key as openmm_distill.export.student.metadata_summary shows.
        "training_data_hash": f"sha256:{result.data_sha256}",
        "training_data_path": cfg.data.path,
        "validation_data_hash": f"sha256:{result.validation_data_sha256}",
        "training_config": cfg.to_dict(),
        "validation_metrics": {k: v for k, v in result.best_metrics.items() if k in METRIC_NAMES},
        "test_metrics": result.test_metrics,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "data_split": result.data_split,
        "energy_model": result.energy_model,
    }


def finish_run(result: TrainResult) -> TrainResult:
    """Compile ``best.pt`` (when ``run.compile``) to ``student.pt`` and write ``summary.json``.

    Parameters
    ----------
    result : TrainResult
        What :meth:`Trainer.fit` returned for a finished run (its ``config`` says how to compile).

    Returns
    -------
    TrainResult
        ``result`` with ``compiled_path`` set when a student was compiled.
    """
    cfg = result.config
    output_dir = Path(result.output_dir)
    best_model, _ = load_checkpoint(output_dir / BEST)
    # The weights as the run trained and tested them; compile_student then casts to run.compile_dtype.
    if cfg.run.dtype == "float64":
        best_model = cast_model(best_model, torch.float64)
    if cfg.run.compile:
        from openmm_distill.export import compile_student

        compile_student(copy.deepcopy(best_model).cpu(), output_dir / COMPILED, dtype=cfg.run.compile_dtype,
                        preset=cfg.model.preset, metadata=compiled_metadata(result, cfg))
        result.compiled_path = output_dir / COMPILED
        logger.info("compiled student written to %s", result.compiled_path)
    summary = {
        "output_dir": str(output_dir),
        "preset": cfg.model.preset,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "validation_metrics": result.best_metrics,
        "test_metrics": result.test_metrics,
        "data_sha256": result.data_sha256,
        "compiled": str(result.compiled_path) if result.compiled_path else None,
        "n_parameters": count_parameters(best_model),
    }
    with open(output_dir / SUMMARY, "w") as handle:
        json.dump(summary, handle, indent=1)
    return result
