"""``openmm-distill info``: show a compiled student's metadata."""
from __future__ import annotations

HELP = "show the metadata embedded in a compiled student (or list shipped students)"
DESCRIPTION = HELP + ".\n\nexample:\n  openmm-distill info original\n  openmm-distill info my_student.pt --json"


def add_arguments(parser) -> None:
    parser.add_argument("student", nargs="?", help="shipped student name or compiled file; omit to list shipped ones")
    parser.add_argument("--json", action="store_true", help="print the full metadata as JSON")


def run(args) -> int:
    import json

    from openmm_distill.export.student import available_students, load_student, metadata_summary

    if not args.student:
        names = available_students()
        print("shipped students: " + (", ".join(names) if names else "none"))
        return 0
    student = load_student(args.student)
    if args.json:
        print(json.dumps(student.metadata, indent=1))
    else:
        print(f"{student.path}")
        print(metadata_summary(student.metadata))
    return 0
