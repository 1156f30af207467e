"""``openmm-distill protocol``: validate a compiled student (NVE, throughput, accuracy, stability, report)."""
from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional

from openmm_distill.cpu_runtime import limit_threads
from openmm_distill.errors import ConfigError
from openmm_distill.systems.resolve import split_list, system_specs

HELP = "validate a student: NVE energy drift, throughput, accuracy vs teacher, NVT stability, full report"
DESCRIPTION = """Run a validation protocol on a compiled student. Results go to an output folder
as JSON, PNG figures and a Markdown summary (default runs/protocols/<student>/<protocol>).
Quick defaults take about two minutes on a 2-core CPU; --full runs the long versions
(100 ps NVE and NVT, more structures, larger boxes).

Systems: catalog names (ready structures for ethanol, aspirin, alanine_dipeptide, water_box;
any other catalog molecule from its SMILES), structure files (SDF/MOL/PDB with explicit
hydrogens), SMILES, or water:N (a periodic box of N waters).

examples:
  openmm-distill protocol nve --student tiny --systems ethanol,aspirin
  openmm-distill protocol throughput --student ultra-tiny.pt,tiny.pt,original.pt --full
  openmm-distill protocol accuracy --student tiny --dataset data/test.h5
  openmm-distill protocol stability --student tiny --temperatures 300,500 --length-ps 10
  openmm-distill protocol report --student tiny --split test --max-systems 5

a whole split in parts (array-job tasks, or batches on a small machine), then one table:
  openmm-distill protocol nve --student original --split test --full --shard 0/4 -o runs/nve/part0
  ...                                                                  --shard 3/4 -o runs/nve/part3
  openmm-distill protocol merge runs/nve/part0 runs/nve/part1 runs/nve/part2 runs/nve/part3 -o runs/nve/all

NVE and stability keep each finished system in <output>/systems/; if a run is killed, the same
command again simulates only the systems that were not finished.

when a stability run failed, was it the student or its teacher? (seconds per failed run):
  openmm-distill protocol failures runs/protocols/tiny/stability
"""

PROTOCOL_HELP = {
    "nve": "NVE energy conservation: Langevin thermalisation, then velocity Verlet; drift in meV/atom/ps",
    "throughput": "MD steps/s and ns/day of students vs teachers (GFN2-xTB, Orb-v2) and amber14",
    "accuracy": "forces and energies against the teacher (dataset file or freshly sampled geometries)",
    "stability": "NVT Langevin at several temperatures under a watchdog; time to failure, DCD, mdtraj analysis",
    "report": "all four protocols, a verdict per system, and the model card's Validation section",
}
MERGE_HELP = "join the output folders of NVE or stability runs made in parts (--shard, batches) into one"
FAILURES_HELP = ("look at the failed runs of a stability output folder with the teacher: did the student make the "
                 "failing geometry too easy, or does its teacher allow it too?")
FAILURES_DESCRIPTION = FAILURES_HELP + """

For each failed run: student and teacher energies on the last --window trajectory frames (the
failing frame last) and on --baseline frames spread over the run before them, which measure the
student's usual energy error on its own trajectory. A failing frame whose error is more than three
times that usual error (and 0.1 eV) below it is a student error. Also the force each model puts
along the bond that changed most. Seconds per failed run, where the teacher's own MD to the same
time takes hours. Writes failures.json, summary.md and a plot per failed run (default
<folder>/failures).

examples:
  openmm-distill protocol failures runs/protocols/tiny/stability
  openmm-distill protocol failures runs/stab --student tiny-sevennet0    # a sweep still running
  openmm-distill protocol failures runs/stab --teacher gfn2-xtb          # another teacher than the student's
"""


# A split holds dozens of molecules; quick runs take the first few.
QUICK_SPLIT_LIMIT = 3


def _positive_float(text: str) -> float:
    """A time, length, temperature or threshold: a number > 0 (argparse reports anything else)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _floats(text: str) -> tuple:
    """Comma-separated positive numbers (temperatures, K)."""
    try:
        return tuple(_positive_float(x) for x in text.split(",") if x.strip())
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _common(p: argparse.ArgumentParser, *, multi_student: bool = False) -> None:
    from openmm_distill.systems.catalog import SPLITS

    p.add_argument("--student", required=True,
                   help="shipped student name or compiled file" + (" (comma-separated for several)" if multi_student
                                                                  else ""))
    p.add_argument("--systems", help="comma-separated systems (names, files, SMILES, water:N); "
                                     "default depends on the protocol")
    p.add_argument("--split", choices=SPLITS, help="add the catalog molecules of this split (quick mode: the first "
                                                   f"{QUICK_SPLIT_LIMIT} unless --max-systems is given)")
    p.add_argument("--max-systems", type=int, help="use only the first N systems")
    p.add_argument("-o", "--output", help="output folder (default runs/protocols/<student>/<protocol>)")
    p.add_argument("--full", action="store_true", help="long runs instead of the quick defaults")
    p.add_argument("--platform", help="OpenMM platform (default: best available: CUDA, OpenCL, CPU)")
    p.add_argument("--precision", choices=["single", "mixed", "double"],
                   help="CUDA/OpenCL precision (default mixed; CPU forces are single precision regardless)")
    p.add_argument("--backend", default="torch", choices=["torch", "python", "inductor"],
                   help="TorchForce, PythonForce, or PythonForce with the network compiled by TorchInductor "
                        "(about 2x faster on CPU; compiles for 20 s to 2 min first)")
    p.add_argument("--threads", type=int, help="CPU threads for torch and OpenMP (set 1 on a busy shared machine)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--quiet", "--no-progress", dest="no_progress", action="store_true", help="no progress bars")


def _nve_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("NVE")
    g.add_argument("--temperature", type=_positive_float, help="thermalisation temperature, K (default 300)")
    g.add_argument("--timestep-fs", type=_positive_float, help="time step, fs (default 0.5)")
    g.add_argument("--equilibration-ps", type=_positive_float, help="Langevin thermalisation, ps (quick 1, full 10)")
    g.add_argument("--length-ps", type=_positive_float, help="NVE length, ps (quick 5, full 100)")
    g.add_argument("--report-interval-fs", type=_positive_float, help="energy sampling interval, fs (quick 5, full 10)")
    g.add_argument("--max-drift", type=_positive_float, help="pass threshold on |drift|, meV/atom/ps (default 0.1)")
    g.add_argument("--max-relative-drift", type=_positive_float, help="optional threshold on drift x length, %% of <KE>")
    g.add_argument("--minimize-iterations", type=int, help="minimise before MD (default 0: no)")


def add_stability_options(p: argparse.ArgumentParser) -> None:
    """The stability protocol's settings (shared with protocols/teacher_stability.py, so a teacher runs as its student did)."""
    g = p.add_argument_group("stability")
    g.add_argument("--temperatures", type=_floats, help="comma-separated NVT temperatures, K (default 300,500)")
    g.add_argument("--length-ps", dest="stability_length_ps", type=_positive_float,
                   help="NVT length per temperature, ps (quick 2, full 100)")
    g.add_argument("--timestep-fs", type=_positive_float, help="time step, fs (default 0.5)")
    g.add_argument("--watchdog-interval", type=_positive_int, help="steps between watchdog checks (quick 20, full 50)")
    g.add_argument("--frame-interval-fs", type=_positive_float, help="DCD frame interval, fs (quick 50, full 250)")
    g.add_argument("--max-force", type=_positive_float, help="watchdog force limit, eV/Å (default 50)")
    g.add_argument("--max-bond-change", type=_positive_float, help="watchdog bond-length change limit, Å (default 0.5)")
    g.add_argument("--max-hydrogen-distance", type=_positive_float, help="watchdog H-partner distance limit, Å (default 2.5)")


def _accuracy_options(p: argparse.ArgumentParser, with_sampling: bool = True) -> None:
    g = p.add_argument_group("accuracy")
    g.add_argument("--dataset", help="HDF5 dataset with teacher labels (else geometries are sampled and labelled live)")
    g.add_argument("--teacher", help="teacher for live labels (default: the student's, else gfn2-xtb)")
    g.add_argument("--teacher-weights", help="Orb-v2 checkpoint for --teacher orb-v2")
    if with_sampling:
        g.add_argument("--conformers", type=int, help="RDKit conformers per molecule (quick 3, full 10)")
        g.add_argument("--displacements", type=int, help="displaced copies per conformer (quick 7, full 19)")
        g.add_argument("--sigma", type=_positive_float, help="displacement std per coordinate, Å (default 0.05)")
        g.add_argument("--max-structures", type=int, help="cap on structures (quick: 200 from a dataset)")
        g.add_argument("--min-force", type=float, help="angular errors skip atoms below this teacher force, eV/Å")


def _throughput_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("throughput")
    g.add_argument("--teachers", help="comma-separated teachers to time, or 'none' (default gfn2-xtb,orb-v2)")
    g.add_argument("--orb-weights", help="pretrained Orb-v2 checkpoint (default: random weights, same cost)")
    g.add_argument("--no-classical", action="store_true", help="do not time amber14")
    g.add_argument("--teacher-max-atoms", type=int, help="skip teachers above this size (quick 100, full 700)")
    g.add_argument("--min-time-s", type=_positive_float, help="timing window per OpenMM engine, s (quick 1.5, full 10)")
    g.add_argument("--teacher-steps", type=int, help="timed ASE MD steps per teacher (quick 3, full 10)")
    g.add_argument("--timestep-fs", type=_positive_float, help="time step for ns/day, fs (default 0.5)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    for name, text in PROTOCOL_HELP.items():
        p = sub.add_parser(name, help=text, description=text, formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(p, multi_student=name == "throughput")
        if name in ("nve", "stability"):
            p.add_argument("--jobs", type=_positive_int, default=1,
                           help="systems simulated at once, one process and one thread each (default 1); "
                                "e.g. --split test --full --jobs 16 on a 16-core machine")
            p.add_argument("--shard", metavar="I/N",
                           help="run only systems I, I+N, I+2N, ... of the list (0-based), e.g. one array-job "
                                "task; join the parts' folders with `openmm-distill protocol merge`")
        if name in ("nve", "stability", "report"):
            p.add_argument("--no-resume", dest="resume", action="store_false",
                           help="simulate every system again; by default a rerun into the same output folder "
                                "reuses the systems (NVE, stability) that a killed run of the same student and "
                                "settings finished")
        if name == "nve":
            _nve_options(p)
        elif name == "stability":
            add_stability_options(p)
        elif name == "accuracy":
            _accuracy_options(p)
        elif name == "throughput":
            _throughput_options(p)
        else:
            _accuracy_options(p, with_sampling=False)
            g = p.add_argument_group("report")
            g.add_argument("--no-throughput", action="store_true", help="skip the throughput protocol")
            g.add_argument("--throughput-teachers", default="gfn2-xtb,orb-v2",
                           help="teachers timed in the report, or 'none' (default gfn2-xtb,orb-v2)")
            g.add_argument("--no-model-card", action="store_true", help="do not update <student>.md")
            g.add_argument("--model-card", help="model card to update (default <student>.md next to the student)")
    p = sub.add_parser("merge", help=MERGE_HELP, description=MERGE_HELP + ". The parts must have measured the "
                       "same student with the same settings, and no system twice. Writes <protocol>.json and "
                       "summary.md; per-system files stay in the parts' folders.")
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="output folders of the parts")
    p.add_argument("-o", "--output", required=True, help="folder for the merged JSON and summary")
    _failures_options(sub.add_parser("failures", help=FAILURES_HELP, description=FAILURES_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter))


def _failures_options(p: argparse.ArgumentParser) -> None:
    from openmm_distill.teachers.registry import available_teachers

    p.add_argument("folder", metavar="FOLDER", help="output folder of `openmm-distill protocol stability`")
    p.add_argument("--student", help="the student that ran (default: the one recorded in FOLDER/stability.json)")
    p.add_argument("--teacher", choices=available_teachers(),
                   help="teacher to compare with (default: the one recorded in the student, with its options)")
    p.add_argument("--teacher-option", action="append", default=[], metavar="KEY=VALUE",
                   help="option of --teacher, value parsed as YAML (e.g. model=7net-0) (repeatable)")
    p.add_argument("--window", type=_positive_int, default=15,
                   help="last frames looked at per failed run, the failing one last (default 15)")
    p.add_argument("--baseline", type=_positive_int, default=40,
                   help="frames spread over the run before the window, for the student's usual error (default 40)")
    p.add_argument("-o", "--output", help="output folder (default FOLDER/failures)")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--quiet", "--no-progress", dest="no_progress", action="store_true", help="no progress bars")


# -- args -> settings (shared with the scripts in protocols/) --------------------------------------

def _get(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def nve_settings(args: argparse.Namespace):
    from openmm_distill.protocols import NVESettings

    make = NVESettings.full if _get(args, "full") else NVESettings.quick
    return make(temperature_k=_get(args, "temperature"), timestep_fs=_get(args, "timestep_fs"),
                equilibration_ps=_get(args, "equilibration_ps"), length_ps=_get(args, "length_ps"),
                report_interval_fs=_get(args, "report_interval_fs"),
                max_abs_drift_mev_per_atom_per_ps=_get(args, "max_drift"),
                max_relative_drift_percent=_get(args, "max_relative_drift"),
                minimize_iterations=_get(args, "minimize_iterations"), seed=_get(args, "seed"))


def stability_settings(args: argparse.Namespace):
    from dataclasses import replace

    from openmm_distill.protocols import StabilitySettings, WatchdogThresholds

    make = StabilitySettings.full if _get(args, "full") else StabilitySettings.quick
    defaults = WatchdogThresholds()
    thresholds = replace(defaults, **{k: v for k, v in {
        "max_force_ev_per_angstrom": _get(args, "max_force"),
        "max_bond_deviation_angstrom": _get(args, "max_bond_change"),
        "max_hydrogen_distance_angstrom": _get(args, "max_hydrogen_distance")}.items() if v is not None})
    return make(temperatures_k=_get(args, "temperatures"), length_ps=_get(args, "stability_length_ps"),
                timestep_fs=_get(args, "timestep_fs"), watchdog_interval_steps=_get(args, "watchdog_interval"),
                frame_interval_fs=_get(args, "frame_interval_fs"), seed=_get(args, "seed"), thresholds=thresholds)


def accuracy_settings(args: argparse.Namespace):
    from openmm_distill.protocols import AccuracySettings

    make = AccuracySettings.full if _get(args, "full") else AccuracySettings.quick
    return make(n_conformers=_get(args, "conformers"), n_displacements=_get(args, "displacements"),
                displacement_sigma_angstrom=_get(args, "sigma"), max_structures=_get(args, "max_structures"),
                min_force=_get(args, "min_force"), seed=_get(args, "seed"))


def _teacher_list(text: Optional[str], default: tuple) -> tuple:
    from openmm_distill.teachers.registry import available_teachers

    if text is None:
        return default
    names = () if text.strip().lower() in ("", "none") else tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [n for n in names if n.lower() not in available_teachers()]
    if unknown:
        raise ConfigError(f"unknown teacher {unknown[0]!r} in {text!r}; allowed: {', '.join(available_teachers())} "
                          "or 'none'")
    return names


def throughput_settings(args: argparse.Namespace):
    from openmm_distill.protocols import ThroughputSettings

    make = ThroughputSettings.full if _get(args, "full") else ThroughputSettings.quick
    return make(teachers=_teacher_list(_get(args, "teachers"), ("gfn2-xtb", "orb-v2")),
                orb_weights=_get(args, "orb_weights"), classical=False if _get(args, "no_classical") else None,
                teacher_max_atoms=_get(args, "teacher_max_atoms"), min_time_s=_get(args, "min_time_s"),
                teacher_steps=_get(args, "teacher_steps"), timestep_fs=_get(args, "timestep_fs"))


def run(args: argparse.Namespace) -> int:
    from openmm_distill import protocols
    from openmm_distill.protocols.throughput import FULL_SYSTEMS, QUICK_SYSTEMS

    if args.protocol == "merge":
        from openmm_distill.protocols.merge import merge_outputs

        out = merge_outputs(args.folders, args.output)
        print(out.summary)
        print(f"\nwrote {out.json_path} and {out.output_dir / 'summary.md'}")
        return 0
    if args.protocol == "failures":
        from openmm_distill.cli.label import teacher_options_from_args
        from openmm_distill.protocols.failures import run_failure_check

        limit_threads(args.threads)
        options = teacher_options_from_args(args)
        if options and not args.teacher:
            raise ConfigError("--teacher-option needs --teacher (the student's own teacher comes with its options)")
        out = run_failure_check(args.folder, args.student, args.teacher, teacher_options=options,
                                window=args.window, baseline=args.baseline, output_dir=args.output,
                                show_progress=not args.no_progress)
        print(out.summary)
        print(f"\nwrote {len(out.files)} files to {out.output_dir}")
        return 0
    limit_threads(args.threads)
    if args.split and args.max_systems is None and not args.full:
        args.max_systems = QUICK_SPLIT_LIMIT + len(split_list(args.systems))
    kw: Dict[str, Any] = dict(platform=args.platform, precision=args.precision, backend=args.backend,
                              show_progress=not args.no_progress)
    name = args.protocol
    if name == "throughput":
        students: List[str] = split_list(args.student)
        systems = system_specs(args.systems, args.split, args.max_systems,
                                      default=FULL_SYSTEMS if args.full else QUICK_SYSTEMS)
        out = protocols.run_throughput_protocol(students, systems, throughput_settings(args), args.output, **kw)
    else:
        systems = system_specs(args.systems, args.split, args.max_systems)
        if getattr(args, "shard", None):
            from openmm_distill.data.labelling import shard_items

            systems = shard_items(systems, args.shard)
        if name == "nve":
            out = protocols.run_nve_protocol(args.student, systems, nve_settings(args), args.output, jobs=args.jobs,
                                             resume=args.resume, **kw)
        elif name == "stability":
            out = protocols.run_stability_protocol(args.student, systems, stability_settings(args), args.output,
                                                   jobs=args.jobs, resume=args.resume, **kw)
        elif name == "accuracy":
            systems_arg = args.systems if args.dataset else systems  # with a dataset: only an optional filter
            out = protocols.run_accuracy_protocol(args.student, systems_arg, accuracy_settings(args), args.output,
                                                  dataset=args.dataset, teacher=args.teacher,
                                                  teacher_weights=args.teacher_weights,
                                                  show_progress=not args.no_progress)
        else:
            out = protocols.run_report(
                args.student, systems, full=args.full, output_dir=args.output, teacher=args.teacher,
                teacher_weights=args.teacher_weights, dataset=args.dataset, throughput=not args.no_throughput,
                throughput_teachers=_teacher_list(args.throughput_teachers, ("gfn2-xtb", "orb-v2")),
                update_card=not args.no_model_card, model_card=args.model_card,
                nve_settings=nve_settings(args), stability_settings=stability_settings(args),
                accuracy_settings=accuracy_settings(args), resume=args.resume, **kw)
    print(out.summary)
    print(f"\nwrote {len(out.files)} files to {out.output_dir}")
    if name == "report" and out.results.get("model_card"):
        print(f"updated model card {out.results['model_card']}")
    return 0
