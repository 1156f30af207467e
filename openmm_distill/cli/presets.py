"""``openmm-distill presets``: the student sizes and their parameter counts."""
from __future__ import annotations

HELP = "list student presets with their sizes and parameter counts"
DESCRIPTION = HELP + ".\n\nCounts are for the default organic element set (H C N O F P S Cl)."


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    import json

    from openmm_distill.models import PRESETS, build_student, count_parameters

    rows = []
    for name, preset in PRESETS.items():
        rows.append({"preset": name, "architecture": preset.architecture, "hidden": preset.hidden,
                     "interactions": preset.n_interactions, "cutoff_angstrom": preset.cutoff,
                     "parameters": count_parameters(build_student(name)), "use": preset.description})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'preset':<12}{'arch':<7}{'hidden':>7}{'layers':>8}{'cutoff/A':>10}{'parameters':>12}  use")
    for r in rows:
        print(f"{r['preset']:<12}{r['architecture']:<7}{r['hidden']:>7}{r['interactions']:>8}"
              f"{r['cutoff_angstrom']:>10.1f}{r['parameters']:>12,}  {r['use']}")
    return 0
