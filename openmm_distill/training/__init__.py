"""Training students on teacher-labelled datasets, and evaluating compiled students.

>>> from openmm_distill.training import Trainer, load_config
>>> cfg = load_config(find_recipe("tiny"), ["data.path=data.h5", "run.output_dir=runs/tiny"])  # doctest: +SKIP
>>> result = finish_run(Trainer(cfg).fit())                     # doctest: +SKIP
>>> result.compiled_path                                        # runs/tiny/student.pt  # doctest: +SKIP

>>> from openmm_distill.training import evaluate_compiled
>>> print(evaluate_compiled("runs/tiny/student.pt", "data.h5", split="test").format())  # doctest: +SKIP

Modules, one job each: :mod:`.config` (recipes), :mod:`.datasets` (split,
hash, loaders), :mod:`.reference_energies`, :mod:`.losses`,
:mod:`.hessian`, :mod:`.ema`, :mod:`.schedules`, :mod:`.seeding`,
:mod:`.history` (CSV/TensorBoard), :mod:`.plots`, :mod:`.setup` (everything
before the first step), :mod:`.state` (what a checkpoint restores), :mod:`.trainer`
(the loop), :mod:`.finish` (compile and summary, the caller's step),
:mod:`.evaluate`. Metric definitions and the per-preset accuracy targets live
below training, in :mod:`openmm_distill.metrics` and :mod:`openmm_distill.targets`
(the protocols use them too). Units: Angstrom, eV, eV/Angstrom.
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
from openmm_distill.training.finish import finish_run
from openmm_distill.training.reference_energies import fit_energy_model, fit_reference_energies
from openmm_distill.training.trainer import Trainer, TrainResult, train

__all__ = [
    "DataConfig", "EvaluationReport", "LossConfig", "ModelConfig", "OptimConfig",
    "RunConfig", "TrainConfig", "TrainResult", "Trainer",
    "config_from_dict", "evaluate_compiled", "finish_run", "fit_energy_model", "fit_reference_energies", "load_config",
    "save_config", "train",
]
