#!/usr/bin/env python
"""NVT stability of a teacher itself (e.g. SevenNet-0), so a student's failure can be told apart from its teacher's.

    python protocols/teacher_stability.py --teacher sevennet --systems ethanol,aspirin --temperatures 500
    python protocols/teacher_stability.py --teacher sevennet --systems histidine_dipeptide --temperatures 500 \
        --length-ps 10 --timestep-fs 1.0      # as `openmm-distill protocol stability` ran its student

The teacher's ASE calculator drives the same Langevin integrator, watchdog and
trajectory analysis as ``stability.py`` does for a student (through an
``openmm.PythonForce``). One folder per system under --output, joined into one
stability.json and summary.md there. Teachers are 10-100x slower than
students: 2 ps of SevenNet-0 at 21 atoms is ~4,000 force calls (~6 min on one core).
"""
import argparse

import openmm_distill  # noqa: F401  (first: imports torch before openmm)
from openmm_distill.cli.label import add_teacher_arguments, teacher_options_from_args
from openmm_distill.cli.protocol import add_stability_options, stability_settings
from openmm_distill.cpu_runtime import limit_threads
from openmm_distill.protocols.teachers import run_teacher_stability_protocol
from openmm_distill.systems.resolve import system_specs
from openmm_distill.teachers import get_teacher


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_teacher_arguments(parser)
    parser.add_argument("--systems", help="comma-separated catalog names, structure files, SMILES or water:N")
    parser.add_argument("--split", choices=("train", "validation", "test"), help="add the catalog molecules of a split")
    parser.add_argument("--max-systems", type=int, help="use only the first N systems")
    parser.add_argument("--full", action="store_true", help="full settings (100 ps, sparser watchdog and frames)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and OpenMP (default 1)")
    parser.add_argument("--seed", type=int, help="random seed (default 1, as for a student)")
    add_stability_options(parser)  # the flags of `openmm-distill protocol stability`
    parser.add_argument("--output", help="output folder (default runs/protocols/teacher-<name>/stability)")
    args = parser.parse_args(argv)

    limit_threads(args.threads)
    teacher = get_teacher(args.teacher, **teacher_options_from_args(args))
    settings = stability_settings(args)
    systems = system_specs(args.systems, args.split, args.max_systems)
    result = run_teacher_stability_protocol(teacher, systems, settings, args.output)
    print(result.summary)
    print(f"\nresults in {result.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
