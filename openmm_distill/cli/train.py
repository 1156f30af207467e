"""``openmm-distill train``: train a student from a YAML recipe."""
from __future__ import annotations

HELP = "train a student on a labelled dataset from a YAML recipe"
DESCRIPTION = """Train a PaiNN student on teacher energies and forces from an HDF5 dataset.

A recipe (a YAML file, or a built-in name: original, tiny, ultra-tiny, smoke,
original_explored; files in openmm_distill/recipes) has the sections model, data, optim, loss and run; any
key can be overridden with --set SECTION.KEY=VALUE (values are read as YAML:
numbers, true/false, null, [lists]). Unknown keys are errors.

The run folder (run.output_dir) receives config.yaml (the resolved recipe),
last.pt (resume point), best.pt (EMA weights with the lowest validation force
MAE), metrics.csv, loss_curves.png, summary.json and, at the end, student.pt:
the compiled TorchScript student for OpenMM (see `openmm-distill evaluate`).

examples:
  openmm-distill train tiny --set data.path=data/organics.h5
  openmm-distill train original --set data.path=d.h5 --set run.output_dir=runs/orig --set optim.lr=3e-4
  openmm-distill train original --set data.path=d.h5 --set run.output_dir=runs/orig --resume
  openmm-distill train --show-keys

data-parallel on several GPUs (or CPU processes), effective batch = batch_size x 4:
  torchrun --nproc_per_node=4 -m openmm_distill.cli train original --set data.path=d.h5
"""


def add_arguments(parser) -> None:
    parser.add_argument("config", nargs="?", help="YAML training recipe, or a built-in name (see training/README.md)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a recipe key, e.g. --set optim.lr=1e-3 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in run.output_dir from its last.pt, exactly where it stopped")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh even if run.output_dir already holds a run")
    parser.add_argument("--show-keys", action="store_true",
                        help="print every recipe key with its default and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bars, only per-epoch lines")


def run(args) -> int:
    import logging
    import sys

    from openmm_distill.training.config import describe_keys, load_config

    if args.show_keys:
        print(describe_keys())
        return 0
    if not args.config:
        print("openmm-distill train: error: a recipe (CONFIG.yaml) is required; see --help", file=sys.stderr)
        return 2
    overrides = list(args.overrides) + (["run.progress=false"] if args.quiet else [])
    from openmm_distill.recipes import find_recipe

    config = load_config(find_recipe(args.config), overrides)
    from openmm_distill.training import distributed as ddp

    # Under torchrun (several processes) only rank 0 reports progress; the others log warnings only.
    logging.basicConfig(level=logging.INFO if ddp.is_main() else logging.WARNING,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from openmm_distill.training.finish import finish_run
    from openmm_distill.training.trainer import Trainer

    try:
        result = Trainer(config).fit(resume=args.resume, overwrite=args.overwrite)
    finally:
        ddp.cleanup()  # leave the torchrun process group (no-op in a single process)
    if not ddp.is_main():
        return 0
    result = finish_run(result)  # compile best.pt, write summary.json (rank 0 only)
    m = result.best_metrics
    print(f"best epoch {result.best_epoch} of {result.epochs_run}"
          f"{' (stopped early)' if result.stopped_early else ''}: validation force MAE "
          f"{m.get('force_mae', float('nan')):.4f} eV/A, R^2 {m.get('force_r2', float('nan')):.4f}, "
          f"angle {m.get('angle_deg', float('nan')):.1f} deg, energy MAE "
          f"{m.get('energy_mae_mev_per_atom', float('nan')):.2f} meV/atom")
    if result.compiled_path:
        print(f"compiled student: {result.compiled_path}")
    print(f"run folder: {result.output_dir}")
    return 0
