"""``openmm-distill pipeline``: molecules -> labels -> student -> OpenMM -> report, in one command."""
from __future__ import annotations

HELP = "run the whole pipeline (sample, label, train, compile, validate) from one YAML config"
DESCRIPTION = """Run every stage from molecules to a validated student:

  label-train / label-validation / label-test   sample geometries, label them with the teacher (HDF5)
  train                                         train the student, compile it to TorchScript
  protocols                                     accuracy, NVE, stability and throughput report

Each stage is skipped when its inputs (config values and upstream files, by
content hash) are unchanged since its last successful run, so rerunning after a
crash or a config edit redoes only what changed. Without CONFIG the built-in
demo config runs (a handful of molecules, GFN2-xTB, the tiny preset; ~1.5 min
on 2 CPU cores). Built-in configs: default, shipped (reproduces the shipped
students; hours).

examples:
  openmm-distill pipeline                       # built-in demo
  openmm-distill pipeline my_pipeline.yaml
  openmm-distill pipeline --set training.set.optim.epochs=10 --force train
"""


def add_arguments(parser) -> None:
    parser.add_argument("config", nargs="?", default=None, help="pipeline YAML (default: built-in demo)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. protocols.nve_ps=5 (repeatable)")
    parser.add_argument("--force", action="append", default=[], metavar="STAGE",
                        help="rerun a stage even if up to date (repeatable; 'all' for every stage)")
    parser.add_argument("--output-dir", default=None, help="override output_dir")


def run(args) -> int:
    import json

    from openmm_distill.pipeline import load_pipeline_config, run_pipeline

    overrides = list(args.set) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    cfg = load_pipeline_config(args.config, overrides)
    result = run_pipeline(cfg, force=args.force)
    print("\n=== pipeline finished ===")
    print(f"stages run: {', '.join(result.ran) or 'none'}; skipped (up to date): {', '.join(result.skipped) or 'none'}")
    print(f"compiled student: {result.student}")
    print(f"report:           {result.report}")
    if result.summary.get("test"):
        print("test metrics:     " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                                  for k, v in result.summary["test"].items()}))
    print(f"use it:           od.create_system(topology, {str(result.student)!r})")
    return 0
