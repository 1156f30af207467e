"""``openmm-distill evaluate``: accuracy of a compiled student against a dataset's teacher labels."""
from __future__ import annotations

import argparse

HELP = "measure a compiled student's accuracy on a labelled dataset and check its targets"
DESCRIPTION = """Evaluate a compiled student (the TorchScript file OpenMM runs) on an HDF5 dataset.

The student is called exactly as in OpenMM (positions in nm, energy in kJ/mol;
converted back to eV and eV/A here) on every selected structure. Printed:
force R^2, force MAE and RMSE (eV/A), mean angular error between student and
teacher forces (degrees; atoms with teacher |F| < --min-force left out) and
energy MAE (meV/atom), each checked against the targets of the student's preset:

{targets}

--split picks the structures: all (default), or train/validation/test as the
student was trained (split recorded in its metadata; otherwise the molecule
catalog's split by molecule name).

--coverage adds a table per functional group: how many training molecules carry
it (from the datasets or molecule lists given) and the accuracy on the evaluated
molecules that carry it, so you can see which chemistry a student knows.

--by-kind adds a table per kind of geometry (MD snapshot, conformer, normal
mode, random displacement, close contact, student MD, as recorded when the
data was sampled). On the student's own training file it tells whether more
data can help: errors as large on geometries it was trained on as on new
molecules mean the student is at its capacity (a bigger preset or longer
training helps, more data does not).

--max-structures takes a seeded random subset (the same each time), so a quick
check of a large file spans all of it.

examples:
  openmm-distill evaluate --student runs/tiny/student.pt --data data/organics.h5 --split test
  openmm-distill evaluate --student tiny.pt --data mine.h5 --json report.json
  openmm-distill evaluate --student original --data data/blind.h5 --worst 5 \
      --coverage data/train.h5 --coverage-plot coverage.png
  openmm-distill evaluate --student tiny --data data/train.h5 --max-structures 3000 --by-kind
"""


def _targets_table() -> str:
    """The preset targets (openmm_distill.targets, their one home) as the help's table."""
    from openmm_distill.targets import METRIC_LABELS, TARGETS, TEACHER_TARGETS

    lines = [f"  {'preset':12s} {'force R^2':11s} {'force MAE':11s} {'angle':9s} energy MAE"]
    for preset, t in TARGETS.items():
        lines.append(f"  {preset:12s} {'>= ' + format(t.force_r2_min, 'g'):11s} "
                     f"{'<= ' + format(t.force_mae_max, 'g'):11s} {'<= ' + format(t.angle_deg_max, 'g'):9s} "
                     f"<= {t.energy_mae_mev_per_atom_max:g} meV/atom")
    for teacher, presets in TEACHER_TARGETS.items():
        bars = "; ".join(f"{preset} " + ", ".join(f"{METRIC_LABELS[metric]} {'>=' if kind == 'min' else '<='} {bound:g}"
                                                   for metric, (kind, bound) in tighter.items())
                         for preset, tighter in presets.items())
        lines.append(f"  (a student distilled from {teacher}: {bars})")
    return "\n".join(lines)


DESCRIPTION = DESCRIPTION.format(targets=_targets_table())


def add_arguments(parser) -> None:
    parser.add_argument("--student", required=True, help="compiled student (.pt TorchScript file)")
    parser.add_argument("--data", required=True, help="HDF5 dataset with teacher labels")
    parser.add_argument("--split", default="all", choices=["all", "train", "validation", "test"],
                        help="structures to evaluate (default: all)")
    from openmm_distill.targets import TARGETS

    parser.add_argument("--preset", default=None, choices=sorted(TARGETS),
                        help="check this preset's targets instead of the student's own")
    parser.add_argument("--max-structures", type=int, default=None, metavar="N",
                        help="evaluate a seeded random subset of N structures (default: all)")
    from openmm_distill.metrics import DEFAULT_MIN_FORCE

    parser.add_argument("--min-force", type=float, default=DEFAULT_MIN_FORCE,
                        help="teacher force norm (eV/A) below which atoms are left out of the angular error "
                             "(default %(default)s)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the report as JSON ('-' = stdout)")
    parser.add_argument("--worst", type=int, default=0, metavar="N",
                        help="also print the N molecules with the lowest force R^2")
    parser.add_argument("--by-kind", action="store_true",
                        help="also print the accuracy per kind of geometry (md, conformer, normal_mode, ...)")
    parser.add_argument("--coverage", nargs="+", metavar="SOURCE", default=None,
                        help="training molecules for a per-functional-group table: .h5 datasets, .csv/.smi lists "
                             "or catalog:<split>")
    parser.add_argument("--coverage-plot", metavar="PNG", default=None,
                        help="with --coverage: also draw training counts beside the error per group")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit with status 3 if a target is missed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)  # old spelling: bars are the default now


def _metrics_table(heading: str, rows) -> list:
    """Lines of a table of (name, metrics) rows: structures, force R^2, MAE, RMSE (eV/A), energy MAE (meV/atom)."""
    lines = [f"{heading:28s} {'structures':>10s} {'force R^2':>10s} {'force MAE':>10s} {'force RMSE':>10s} "
             f"{'E MAE':>8s}"]
    for name, m in rows:
        lines.append(f"{name:28s} {int(m['n_structures']):10d} {m['force_r2']:10.4f} {m['force_mae']:10.4f} "
                     f"{m['force_rmse']:10.4f} {m['energy_mae_mev_per_atom']:8.2f}")
    return lines


def run(args) -> int:
    import json
    import sys

    from openmm_distill.errors import ConfigError
    from openmm_distill.training.evaluate import evaluate_compiled

    if args.coverage_plot and not args.coverage:
        raise ConfigError("--coverage-plot needs --coverage (the training molecules to count)")
    if args.worst < 0:
        raise ConfigError(f"--worst must be >= 0, got {args.worst}")
    if args.max_structures is not None and args.max_structures < 1:
        raise ConfigError(f"--max-structures must be >= 1, got {args.max_structures}")
    report = evaluate_compiled(args.student, args.data, split=args.split, preset=args.preset,
                               max_structures=args.max_structures, min_force=args.min_force, progress=not args.quiet)
    payload = report.as_dict()
    text = [report.format()]
    if args.worst:
        text += ["", *_metrics_table("molecule", list(report.per_molecule().items())[:args.worst])]
    if args.by_kind:
        text += ["", *_metrics_table("kind of geometry", list(report.per_kind().items()))]
    if args.coverage:
        from openmm_distill.training.coverage import coverage_markdown, coverage_plot, coverage_rows, training_smiles

        rows = coverage_rows(training_smiles(args.coverage), report.molecule_smiles, report.accumulators)
        payload["coverage"] = {"training_sources": args.coverage, "groups": rows}
        text += ["", coverage_markdown(rows)]
        if args.coverage_plot:
            coverage_plot(rows, args.coverage_plot)
            text.append(f"coverage plot written to {args.coverage_plot}")
    if args.json == "-":
        json.dump(payload, sys.stdout, indent=1)
        print()
    else:
        print("\n".join(text))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(payload, handle, indent=1)
            print(f"report written to {args.json}")
    if args.fail_on_miss and report.passed is False:
        return 3
    return 0
