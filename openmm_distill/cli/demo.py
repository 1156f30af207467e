"""``openmm-distill demo``: a compiled student running MD in OpenMM, in one command."""
from __future__ import annotations

HELP = "run a short OpenMM simulation with a student (shipped, or built and compiled on the spot)"
DESCRIPTION = """Load a shipped student (or build and compile one if none is shipped), put it in
an OpenMM System for a molecule (a catalog name, a structure file or a SMILES), and run a
short Langevin MD simulation, printing energies and steps/s.

example:
  openmm-distill demo --student tiny --molecule aspirin --steps 2000
"""


def add_arguments(parser) -> None:
    parser.add_argument("--student", default="tiny", help="shipped student name or compiled file (default: tiny)")
    parser.add_argument("--molecule", default="aspirin", help="catalog name, structure file (SDF/MOL/PDB with explicit H) or SMILES")
    parser.add_argument("--steps", type=int, default=1000, help="MD steps (default: 1000)")
    parser.add_argument("--timestep-fs", type=float, default=0.5, help="time step in fs (default: 0.5)")
    parser.add_argument("--temperature", type=float, default=300.0, help="Langevin temperature in K (default: 300)")
    parser.add_argument("--platform", default=None, help="OpenMM platform (default: best available)")
    parser.add_argument("--backend", default="torch", choices=["torch", "python", "inductor"],
                        help="TorchForce, PythonForce, or PythonForce with the network compiled by TorchInductor "
                             "(about 2x faster on CPU; compiles for 20 s to 2 min first)")
    parser.add_argument("--workdir", default="runs/demo", help="where a freshly compiled student goes")


def _student_path(args):
    from pathlib import Path

    from openmm_distill.errors import UnknownNameError
    from openmm_distill.export.student import available_students

    if Path(args.student).is_file() or args.student in available_students():
        return args.student
    import torch

    from openmm_distill.export import compile_student
    from openmm_distill.models import build_student, preset_names

    if args.student not in preset_names():
        raise UnknownNameError(f"--student {args.student!r} is neither a file, a shipped student "
                         f"({available_students()}) nor a preset ({preset_names()})")
    out = Path(args.workdir) / f"{args.student}-untrained.pt"
    print(f"no shipped student {args.student!r}: compiling an UNTRAINED {args.student} student to {out} "
          "(numbers below show the machinery, not chemistry)")
    torch.manual_seed(0)
    compile_student(build_student(args.student), out, preset=args.student, metadata={"trained": False})
    return str(out)


def run(args) -> int:
    import time

    from openmm_distill import api as od
    from openmm_distill.systems.resolve import resolve_system
    from openmm_distill.timing import ns_per_day
    from openmm_distill.units import MS_PER_S

    import openmm
    from openmm import unit

    student = od.load_student(_student_path(args))
    molsys = resolve_system(args.molecule)
    topology, positions = molsys.topology, molsys.positions
    system = od.create_system(topology, student, backend=args.backend)
    integrator = openmm.LangevinMiddleIntegrator(args.temperature * unit.kelvin, 1 / unit.picosecond,
                                                 args.timestep_fs * unit.femtosecond)
    sim = od.create_simulation(topology, system, integrator, positions, platform=args.platform)
    sim.context.setVelocitiesToTemperature(args.temperature * unit.kelvin, 1)
    print(f"student {student.name} ({student.metadata.get('preset')}, {student.metadata['n_parameters']:,} params) "
          f"on {args.molecule} ({topology.getNumAtoms()} atoms), platform {sim.context.getPlatform().getName()}, "
          f"backend {args.backend}")
    sim.step(10)  # warm-up (TorchScript optimises on the first calls)
    report_every = max(1, args.steps // 5)
    t0 = time.perf_counter()
    for done in range(report_every, args.steps + 1, report_every):
        sim.step(report_every)
        st = sim.context.getState(getEnergy=True)
        pe = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        ke = st.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        print(f"  step {done:>7}  potential {pe:14.3f} kJ/mol  kinetic {ke:10.3f} kJ/mol")
    elapsed = time.perf_counter() - t0
    n = report_every * (args.steps // report_every)
    ms_per_step = MS_PER_S * elapsed / n
    print(f"{n / elapsed:.1f} steps/s ({ms_per_step:.2f} ms/step, {ns_per_day(ms_per_step, args.timestep_fs):.2f} "
          f"ns/day at {args.timestep_fs} fs)")
    return 0
