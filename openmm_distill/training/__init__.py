"""Training students on teacher-labelled datasets, and evaluating compiled students.

>>> from openmm_distill.training import Trainer, load_config
>>> cfg = load_config("training/tiny.yaml", ["data.path=data.h5", "run.output_dir=runs/tiny"])  # doctest: +SKIP
>>> result = Trainer(cfg).fit()                                 # doctest: +SKIP
>>> result.compiled_path                                        # runs/tiny/student.pt  # doctest: +SKIP

>>> from openmm_distill.training import evaluate_compiled
>>> print(evaluate_compiled("runs/tiny/student.pt", "data.h5", split="test").format())  # doctest: +SKIP

Modules, one job each: :mod:`.config` (recipes), :mod:`.datasets` (split,
hash, loaders), :mod:`.reference_energies`, :mod:`.losses`, :mod:`.metrics`,
:mod:`.hessian`, :mod:`.ema`, :mod:`.schedules`, :mod:`.seeding`,
:mod:`.history` (CSV/TensorBoard), :mod:`.plots`, :mod:`.trainer`,
:mod:`.targets`, :mod:`.evaluate`. Units: Angstrom, eV, eV/Angstrom.
"""
from openmm_distill.training.config import (
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    config_from_dict,
    load_config,
    save_config,
)
from openmm_distill.training.evaluate import EvaluationReport, evaluate_compiled
from openmm_distill.training.metrics import MetricAccumulator
from openmm_distill.training.reference_energies import fit_energy_model, fit_reference_energies
from openmm_distill.training.targets import TARGETS, Targets, check_targets
from openmm_distill.training.trainer import TrainResult, Trainer, train

__all__ = [
    "DataConfig", "EvaluationReport", "LossConfig", "MetricAccumulator", "ModelConfig", "OptimConfig",
    "RunConfig", "TARGETS", "Targets", "TrainConfig", "TrainResult", "Trainer", "check_targets",
    "config_from_dict", "evaluate_compiled", "fit_energy_model", "fit_reference_energies", "load_config",
    "save_config", "train",
]
