"""``openmm-distill explore``: run a student hot on training molecules and label where it went."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from openmm_distill.cli.label import (
    add_molecule_arguments,
    add_output_arguments,
    add_teacher_arguments,
    collect_molecules,
    teacher_options_from_args,
)
from openmm_distill.errors import ConfigError

HELP = "find where a student fails (hot Langevin MD on training molecules) and label those geometries"
DESCRIPTION = """One round of active learning. The student runs Langevin MD at high
temperature on each molecule under the stability protocol's watchdog (broken
or fused bonds, detached hydrogens, huge forces). Frames on a schedule, plus
the frames just before a failure and the failing frame, are labelled by the
teacher into an HDF5 dataset. A per-run record (which molecule failed, when,
why) goes to OUTPUT with the suffix .runs.json.

If the command is killed, run it again: each molecule's explored frames are
kept as soon as its MD ends, until they are labelled (a folder beside OUTPUT
with the suffix .explored), so only the molecules not yet explored run again,
and the labelling resumes.

Merge the result into the training set and fine-tune the student from its
checkpoint (model.init_from in the recipe). Explore training molecules only:
frames of a test molecule would leak it into training.

examples:
  openmm-distill explore --student original --split train -o data/explore.h5 --jobs 2
  openmm-distill explore --student runs/original/student.pt --input openmm_distill/recipes/data/train_analogues.csv \\
      --limit 200 --temperatures 700 900 --length-ps 4 -o data/explore.h5 --jobs 2 --workers 2
then:
  openmm-distill dataset merge data/train.h5 data/explore.h5 -o data/train_explored.h5
  openmm-distill train original --set model.init_from=runs/original/best.pt \\
      --set data.path=data/train_explored.h5 --set optim.epochs=4 --set optim.lr=3e-4
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from openmm_distill.active_learning.exploration import ExplorationSettings

    default = ExplorationSettings()  # the flags' defaults are the library's, not a second copy
    parser.add_argument("--student", required=True, help="shipped student name or compiled .pt file")
    add_molecule_arguments(parser)
    md = parser.add_argument_group("exploration MD (defaults: ExplorationSettings in "
                                   "openmm_distill.active_learning.exploration)")
    md.add_argument("--temperatures", type=float, nargs="+", metavar="K", default=list(default.temperatures_k),
                    help="Langevin temperatures, K (default %(default)s)")
    md.add_argument("--length-ps", type=float, default=default.length_ps,
                    help="length of each run, ps (default %(default)g)")
    md.add_argument("--timestep-fs", type=float, default=default.timestep_fs, help="time step, fs (default %(default)g)")
    md.add_argument("--frame-interval-fs", type=float, default=default.frame_interval_fs,
                    help="keep one frame this often, fs (default %(default)g)")
    md.add_argument("--frames-before-failure", type=int, default=default.frames_before_failure,
                    help="after a failure also keep this many frames before it, one watchdog interval "
                         f"({default.watchdog_interval_fs:g} fs) apart (default %(default)s)")
    md.add_argument("--seed", type=int, default=default.seed, help="master seed (default %(default)s)")
    md.add_argument("--jobs", type=int, default=1, help="molecules simulated at once, one process each (default 1)")
    add_output_arguments(parser)
    add_teacher_arguments(parser)
    parser.add_argument("--workers", type=int, default=1, help="labelling processes, each single-threaded (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from openmm_distill.active_learning.exploration import ExplorationSettings, explore_resumable
    from openmm_distill.data.labelling import label
    from openmm_distill.pipeline.stages import file_sha256

    if os.path.exists(args.output) and not args.overwrite:
        raise ConfigError(f"{args.output} already exists; pass --overwrite to replace it")
    molecules = collect_molecules(args)
    settings = ExplorationSettings(temperatures_k=tuple(args.temperatures), length_ps=args.length_ps,
                                   timestep_fs=args.timestep_fs, frame_interval_fs=args.frame_interval_fs,
                                   frames_before_failure=args.frames_before_failure, seed=args.seed)
    root, _ = os.path.splitext(args.output)
    runs_path, cache_dir = f"{root}.runs.json", f"{root}.explored"
    # What the frames depend on; a cache made otherwise is not reused. JSON round trip: tuples become lists.
    header = json.loads(json.dumps({
        "student": args.student,
        # A shipped student's name has no file here to hash; its version is the package's.
        "student_sha256": file_sha256(args.student) if os.path.isfile(args.student) else None,
        "settings": {k: v for k, v in vars(settings).items() if k != "thresholds"},
        "molecules": [list(m) for m in molecules]}))
    if not args.resume and os.path.isdir(cache_dir):
        shutil.rmtree(cache_dir)
    print(f"exploring {len(molecules)} molecules with {args.student} at "
          f"{', '.join(f'{t:g}' for t in settings.temperatures_k)} K for {settings.length_ps:g} ps each",
          file=sys.stderr)
    result = explore_resumable(args.student, molecules, settings, cache_dir, header, jobs=args.jobs,
                               show_progress=not args.quiet, log=lambda message: print(message, file=sys.stderr))
    print(result.summary())
    with open(runs_path, "w") as handle:
        json.dump({"student": args.student, "settings": header["settings"],
                   "runs": result.runs_as_dicts()}, handle, indent=1)
    print(f"wrote {runs_path}")
    geometries = result.geometries
    if not geometries:
        print("no geometries kept: nothing to label")
        shutil.rmtree(cache_dir)
        return 0
    report = label(geometries, args.output, teacher=args.teacher,
                   teacher_options=teacher_options_from_args(args), n_workers=args.workers, resume=args.resume,
                   overwrite=args.overwrite, compression=args.compression,
                   creation_command=" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
                   progress=not args.quiet)
    print(report.summary())
    # The labelled file holds every frame now; the cache has done its job.
    shutil.rmtree(cache_dir)
    return 0
