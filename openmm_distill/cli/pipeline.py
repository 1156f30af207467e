"""``openmm-distill pipeline``: molecules -> labels -> student -> OpenMM -> report, in one command."""
from __future__ import annotations

HELP = "molecules -> teacher labels -> fine-tuned student -> protocols -> active learning, from one YAML config"
DESCRIPTION = """From your molecules to a validated student, in one command:

  label-train / label-validation / label-test   sample geometries, label them with the teacher (HDF5)
  start                                         the starting student (training.init_from; default: the
                                                shipped student of the recipe's size) as a checkpoint
  train                                         fine-tune it (or train from scratch), compile it
  protocols                                     accuracy, NVE, stability (and throughput): a verdict per molecule
  explore-N, merge-N, train-N, protocols-N      round N of active learning, while a molecule is not
                                                "production" (loop.max_rounds, loop.budget_minutes)

Molecules (`molecules:` in the config) are catalog names, SMILES, CSV (name,smiles) or
.smi lists, or SDF/MOL/PDB files with explicit hydrogens. With training molecules only,
the validation and test sets are held-out conformers and hot MD geometries of those
molecules. A molecule with an element the starting student does not know is refused
before any labelling (the way out: training.init_from: scratch).

Each stage is skipped when its inputs (config values and upstream files, by
content hash) are unchanged since its last successful run, so rerunning after a
crash or a config edit redoes only what changed. Without CONFIG the built-in
demo runs (a few small molecules, GFN2-xTB, the shipped tiny student fine-tuned;
about 3 min on 2 CPU cores). Built-in configs: default, shipped (reproduces the
shipped students' catalog training; hours).

The final student is OUTPUT_DIR/student.pt (the best round's), summary.md says which
molecule reached which verdict in each round and what each stage cost.

examples:
  openmm-distill pipeline                       # built-in demo
  openmm-distill pipeline my_pipeline.yaml -o runs/mine
  openmm-distill pipeline --set "molecules=[ethanol, my_ligands.sdf]" -o runs/mine
  openmm-distill pipeline --set training.init_from=scratch --set training.set.optim.epochs=60
  openmm-distill pipeline --set training.set.optim.epochs=10 --force train
"""


def add_arguments(parser) -> None:
    parser.add_argument("config", nargs="?", default=None, help="pipeline YAML (default: built-in demo)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. protocols.nve_ps=5 (repeatable)")
    parser.add_argument("--force", action="append", default=[], metavar="STAGE",
                        help="rerun a stage even if up to date (repeatable; 'all' for every stage)")
    parser.add_argument("-o", "--output-dir", default=None, help="override output_dir")


def run(args) -> int:
    from openmm_distill.pipeline import load_pipeline_config, run_pipeline

    overrides = list(args.set) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    cfg = load_pipeline_config(args.config, overrides)
    result = run_pipeline(cfg, force=args.force)
    print("\n=== pipeline finished ===")
    print(f"stages run: {', '.join(result.ran) or 'none'}; up to date: {', '.join(result.skipped) or 'none'}")
    for name, verdict in result.verdicts.items():
        print(f"  {name:30s} {verdict}")
    print(f"loop:    {result.stop_reason}")
    print(f"student: {result.student}")
    print(f"summary: {result.report}")
    print(f"use it:  od.create_system(topology, {str(result.student)!r})")
    return 0
