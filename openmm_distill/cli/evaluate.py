"""``openmm-distill evaluate``: accuracy of a compiled student against a dataset's teacher labels."""
from __future__ import annotations

HELP = "measure a compiled student's accuracy on a labelled dataset and check its targets"
DESCRIPTION = """Evaluate a compiled student (the TorchScript file OpenMM runs) on an HDF5 dataset.

The student is called exactly as in OpenMM (positions in nm, energy in kJ/mol;
converted back to eV and eV/A here) on every selected structure. Printed:
force R^2, force MAE and RMSE (eV/A), mean angular error between student and
teacher forces (degrees; atoms with teacher |F| < --min-force left out) and
energy MAE (meV/atom), each checked against the targets of the student's preset:

  preset       force R^2   force MAE   angle     energy MAE
  original     >= 0.99     <= 0.08     <= 8 deg  <= 5 meV/atom
  tiny         >= 0.98     <= 0.12     <= 12     <= 8
  ultra-tiny   >= 0.95     <= 0.20     <= 20     <= 15

--split picks the structures: all (default), or train/validation/test as the
student was trained (split recorded in its metadata; otherwise the molecule
catalog's split by molecule name).

examples:
  openmm-distill evaluate --student runs/tiny/student.pt --data data/organics.h5 --split test
  openmm-distill evaluate --student tiny.pt --data mine.h5 --json report.json
"""


def add_arguments(parser) -> None:
    parser.add_argument("--student", required=True, help="compiled student (.pt TorchScript file)")
    parser.add_argument("--data", required=True, help="HDF5 dataset with teacher labels")
    parser.add_argument("--split", default="all", choices=["all", "train", "validation", "test"],
                        help="structures to evaluate (default: all)")
    parser.add_argument("--preset", default=None, help="check this preset's targets instead of the student's own")
    parser.add_argument("--max-structures", type=int, default=None, help="evaluate at most this many structures")
    parser.add_argument("--min-force", type=float, default=0.05,
                        help="teacher force norm (eV/A) below which atoms are left out of the angular error")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the report as JSON ('-' = stdout)")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit with status 3 if a target is missed")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")


def run(args) -> int:
    import json
    import sys

    from openmm_distill.training.evaluate import evaluate_compiled

    report = evaluate_compiled(args.student, args.data, split=args.split, preset=args.preset,
                               max_structures=args.max_structures, min_force=args.min_force, progress=args.progress)
    if args.json == "-":
        json.dump(report.as_dict(), sys.stdout, indent=1)
        print()
    else:
        print(report.format())
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(report.as_dict(), handle, indent=1)
            print(f"report written to {args.json}")
    if args.fail_on_miss and report.passed is False:
        return 3
    return 0
