"""``openmm-distill info``: show a compiled student's metadata."""
from __future__ import annotations

HELP = "show the metadata embedded in a compiled student (or list the shipped ones with their accuracy)"
DESCRIPTION = HELP + ".\n\nexample:\n  openmm-distill info original\n  openmm-distill info my_student.pt --json"


def add_arguments(parser) -> None:
    parser.add_argument("student", nargs="?",
                        help="shipped student name or compiled file; omit it to list the shipped students "
                             "(teacher, size, force R^2 on the test split and the blind set)")
    parser.add_argument("--json", action="store_true",
                        help="print JSON: the student's full metadata, or the shipped students' list")


def run(args) -> int:
    import json

    from openmm_distill.export.student import load_student, metadata_summary

    if not args.student:
        print(_shipped_table(args.json))
        return 0
    student = load_student(args.student)
    if args.json:
        print(json.dumps(student.metadata, indent=1))
    else:
        print(f"{student.path}")
        print(metadata_summary(student.metadata))
    return 0


def _shipped_table(as_json: bool) -> str:
    """The shipped students side by side: teacher, size, and force R^2 against that teacher."""
    import json

    from openmm_distill.export.student import SHIPPED_DIR, available_students, shipped_accuracy
    from openmm_distill.export.torchscript import read_metadata

    accuracy = shipped_accuracy()
    rows = []
    for name in available_students():
        meta = read_metadata(SHIPPED_DIR / f"{name}.pt")
        teacher = meta.get("teacher") or {}
        model = (teacher.get("settings") or {}).get("model")
        rows.append({"student": name, "preset": meta.get("preset"),
                     "teacher": teacher.get("name", "?") + (f" ({model})" if model else ""),
                     "parameters": meta.get("n_parameters"),
                     "force_r2": {split: m["force_r2"] for split, m in accuracy.get(name, {}).items()},
                     "card": str(SHIPPED_DIR / f"{name}.md")})
    if as_json:
        return json.dumps(rows, indent=1)
    if not rows:
        return "no shipped students"

    def r2(row, split):
        value = row["force_r2"].get(split)
        return "-" if value is None else f"{value:.4f}"

    lines = [f"{'student':<20}{'teacher':<22}{'parameters':>11}  force R^2 test / blind (vs its teacher)"]
    lines += [f"{r['student']:<20}{r['teacher']:<22}{r['parameters'] or 0:>11,}  {r2(r, 'test')} / {r2(r, 'blind')}"
              for r in rows]
    lines.append(f"model cards: {SHIPPED_DIR}/<student>.md; details: openmm-distill info <student>")
    return "\n".join(lines)
